package com.kuaige.onsite.sample.ui

import androidx.compose.foundation.layout.Column
import androidx.compose.foundation.layout.padding
import androidx.compose.material3.Button
import androidx.compose.material3.OutlinedTextField
import androidx.compose.material3.Text
import androidx.compose.runtime.Composable
import androidx.compose.runtime.getValue
import androidx.compose.runtime.mutableStateOf
import androidx.compose.runtime.remember
import androidx.compose.runtime.rememberCoroutineScope
import androidx.compose.runtime.setValue
import androidx.compose.ui.Modifier
import androidx.compose.ui.unit.dp
import com.kuaige.onsite.sample.OnsiteApp
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.launch
import kotlinx.coroutines.withContext

/** First run: the dispatcher's code makes the device key (attested for it) and enrols. */
@Composable
fun FirstRunScreen(app: OnsiteApp, server: String, onEnrolled: () -> Unit) {
    var code by remember { mutableStateOf("") }
    var error by remember { mutableStateOf<String?>(null) }
    val scope = rememberCoroutineScope()
    Column(Modifier.padding(16.dp)) {
        Text("扫描或输入派工的注册码 / Enter the dispatcher's enrolment code")
        OutlinedTextField(code, { code = it }, label = { Text("Enrolment code") })
        Button(onClick = {
            scope.launch {
                // Key generation (StrongBox) and the store's first open take a moment.
                val session = withContext(Dispatchers.Default) { app.openForEnrolment(code) }
                if (session.sync.enrol(server, code) != null) onEnrolled() else error = session.sync.state.value.error?.message
            }
        }) { Text("Enrol") }
        error?.let { Text(it) }
    }
}
