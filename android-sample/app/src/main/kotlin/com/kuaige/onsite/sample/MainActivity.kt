package com.kuaige.onsite.sample

import android.Manifest
import android.os.Bundle
import androidx.activity.ComponentActivity
import androidx.activity.compose.setContent
import androidx.activity.result.contract.ActivityResultContracts
import androidx.compose.material3.MaterialTheme
import androidx.compose.runtime.getValue
import androidx.compose.runtime.mutableStateOf
import androidx.compose.runtime.remember
import androidx.compose.runtime.setValue
import com.kuaige.onsite.sample.ui.CaptureScreen
import com.kuaige.onsite.sample.ui.FirstRunScreen
import com.kuaige.onsite.sample.ui.OrderDetailScreen
import com.kuaige.onsite.sample.ui.OrderListScreen
import com.kuaige.onsite.sample.ui.SignatureScreen

/** Screens: list -> detail -> (camera | signature). State lives in the logic layer's models. */
class MainActivity : ComponentActivity() {
    private sealed interface Route {
        data object FirstRun : Route
        data object List : Route
        data class Detail(val id: String) : Route
        data class Capture(val id: String, val step: String?) : Route
        data class Sign(val id: String) : Route
    }

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        val app = application as OnsiteApp
        registerForActivityResult(ActivityResultContracts.RequestMultiplePermissions()) { granted ->
            if (granted[Manifest.permission.ACCESS_FINE_LOCATION] == true) app.location.start()
        }.launch(arrayOf(Manifest.permission.CAMERA, Manifest.permission.ACCESS_FINE_LOCATION))

        setContent {
            MaterialTheme {
                var route by remember { mutableStateOf<Route>(if (app.ready) Route.List else Route.FirstRun) }
                when (val r = route) {
                    Route.FirstRun -> FirstRunScreen(app, BuildConfig.ONSITE_SERVER) { route = Route.List }
                    Route.List -> OrderListScreen(app.session, BuildConfig.ONSITE_SERVER) { route = Route.Detail(it) }
                    is Route.Detail -> OrderDetailScreen(
                        model = app.session.detail(r.id),
                        onBack = { route = Route.List },
                        onCapture = { step -> route = Route.Capture(r.id, step) },
                        onSign = { route = Route.Sign(r.id) },
                    )
                    is Route.Capture -> CaptureScreen(app.session.detail(r.id), r.step) { route = Route.Detail(r.id) }
                    is Route.Sign -> SignatureScreen(app.session.detail(r.id)) { route = Route.Detail(r.id) }
                }
            }
        }
    }
}
