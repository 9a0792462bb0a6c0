package com.kuaige.onsite.sample.platform

import android.annotation.SuppressLint
import android.content.Context
import android.location.Location
import android.os.Looper
import com.google.android.gms.location.LocationCallback
import com.google.android.gms.location.LocationRequest
import com.google.android.gms.location.LocationResult
import com.google.android.gms.location.LocationServices
import com.google.android.gms.location.Priority
import com.kuaige.onsite.GpsFix
import com.kuaige.onsite.LocationProvider
import com.kuaige.onsite.LocationSource

/**
 * The core asks for a fix synchronously (during an arrival or a photo), so this keeps the
 * latest fused fix and answers from it; a fix older than two minutes counts as none.
 */
class CachedLocation(context: Context) : LocationProvider {
    private val client = LocationServices.getFusedLocationProviderClient(context)
    @Volatile private var last: Location? = null

    private val callback = object : LocationCallback() {
        override fun onLocationResult(result: LocationResult) {
            last = result.lastLocation
        }
    }

    @SuppressLint("MissingPermission") // started only after the permission was granted
    fun start() {
        val request = LocationRequest.Builder(Priority.PRIORITY_HIGH_ACCURACY, 10_000).build()
        client.requestLocationUpdates(request, callback, Looper.getMainLooper())
    }

    override fun currentFix(): GpsFix? {
        val l = last ?: return null
        if (System.currentTimeMillis() - l.time > 120_000) return null
        return GpsFix(l.latitude, l.longitude, l.accuracy.toDouble(), LocationSource.FUSED, l.isMock)
    }
}
