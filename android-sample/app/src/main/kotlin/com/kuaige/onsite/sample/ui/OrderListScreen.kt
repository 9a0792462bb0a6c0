package com.kuaige.onsite.sample.ui

import androidx.compose.foundation.clickable
import androidx.compose.foundation.layout.Column
import androidx.compose.foundation.layout.Row
import androidx.compose.foundation.layout.Spacer
import androidx.compose.foundation.layout.fillMaxSize
import androidx.compose.foundation.layout.fillMaxWidth
import androidx.compose.foundation.layout.padding
import androidx.compose.foundation.layout.width
import androidx.compose.foundation.lazy.LazyColumn
import androidx.compose.foundation.lazy.items
import androidx.compose.material3.Button
import androidx.compose.material3.HorizontalDivider
import androidx.compose.material3.MaterialTheme
import androidx.compose.material3.OutlinedTextField
import androidx.compose.material3.Text
import androidx.compose.runtime.Composable
import androidx.compose.runtime.collectAsState
import androidx.compose.runtime.getValue
import androidx.compose.runtime.mutableStateOf
import androidx.compose.runtime.remember
import androidx.compose.runtime.rememberCoroutineScope
import androidx.compose.runtime.setValue
import androidx.compose.ui.Modifier
import androidx.compose.ui.graphics.Color
import androidx.compose.ui.unit.dp
import com.kuaige.onsite.OrderSummary
import com.kuaige.onsite.sample.logic.FieldSession
import java.time.Duration
import java.time.Instant
import kotlinx.coroutines.launch

/** Orders sorted by the next SLA deadline, with the sync bar on top. */
@Composable
fun OrderListScreen(session: FieldSession, server: String, onOpen: (String) -> Unit) {
    val list by session.orders.state.collectAsState()
    Column(Modifier.fillMaxSize()) {
        SyncStatusBar(session.sync, server)
        list.error?.let { Text(it.message, color = MaterialTheme.colorScheme.error, modifier = Modifier.padding(8.dp)) }
        LazyColumn(Modifier.fillMaxSize()) {
            items(list.rows, key = { it.id }) { row ->
                OrderRow(row) { onOpen(row.id) }
                HorizontalDivider()
            }
        }
    }
}

@Composable
private fun OrderRow(row: OrderSummary, onClick: () -> Unit) {
    Column(Modifier.fillMaxWidth().clickable(onClick = onClick).padding(12.dp)) {
        Row {
            Text(row.customer, style = MaterialTheme.typography.titleMedium)
            Spacer(Modifier.width(8.dp))
            Text(row.priority.name.lowercase(), color = if (row.breached) Color.Red else Color.Gray)
        }
        Text("${row.equipment} · ${row.site}", style = MaterialTheme.typography.bodySmall)
        val deadline = row.slaDeadline
        if (deadline != null) {
            val left = Duration.between(Instant.now(), deadline)
            val text = if (left.isNegative) "SLA breached ${-left.toMinutes()} min ago" else "SLA in ${left.toMinutes()} min"
            Text(text, color = if (left.isNegative) Color.Red else Color.Unspecified)
        }
        Text(row.status.name.lowercase().replace('_', ' '), style = MaterialTheme.typography.labelSmall)
    }
}

@Composable
fun SyncStatusBar(model: com.kuaige.onsite.sample.logic.SyncModel, server: String) {
    val ui by model.state.collectAsState()
    val scope = rememberCoroutineScope()
    val s = ui.state
    Column(Modifier.fillMaxWidth().padding(8.dp)) {
        if (s == null || !s.enrolled) {
            var code by remember { mutableStateOf("") }
            OutlinedTextField(code, { code = it }, label = { Text("Enrolment code") })
            Button(onClick = { scope.launch { model.enrol(server, code) } }) { Text("Enrol") }
        } else {
            val pending = s.pendingJournal + s.pendingOrders + s.pendingPhotos
            Text(if (pending == 0uL) "All synced" else "$pending waiting to sync (${s.pendingPhotos} photos)")
            ui.progress?.takeIf { ui.running }?.let { Text("${it.phase.name.lowercase()}: ${it.done}/${it.total}") }
            s.wedged.forEach { Text("Photo ${it.sha256.take(8)} stuck: ${it.reason}", color = Color.Red) }
            Button(enabled = !ui.running, onClick = { scope.launch { model.syncNow() } }) { Text("Sync now") }
        }
        ui.error?.let { Text(it.message, color = MaterialTheme.colorScheme.error) }
    }
}
