package com.kuaige.onsite.sample.ui

import androidx.compose.foundation.layout.Column
import androidx.compose.foundation.layout.Row
import androidx.compose.foundation.layout.fillMaxSize
import androidx.compose.foundation.layout.padding
import androidx.compose.foundation.rememberScrollState
import androidx.compose.foundation.verticalScroll
import androidx.compose.material3.Button
import androidx.compose.material3.CircularProgressIndicator
import androidx.compose.material3.MaterialTheme
import androidx.compose.material3.OutlinedButton
import androidx.compose.material3.OutlinedTextField
import androidx.compose.material3.Text
import androidx.compose.runtime.Composable
import androidx.compose.runtime.LaunchedEffect
import androidx.compose.runtime.collectAsState
import androidx.compose.runtime.getValue
import androidx.compose.runtime.mutableStateOf
import androidx.compose.runtime.remember
import androidx.compose.runtime.setValue
import androidx.compose.ui.Modifier
import androidx.compose.ui.unit.dp
import com.kuaige.onsite.ChecklistStep
import com.kuaige.onsite.StepAnswer
import com.kuaige.onsite.StepKind
import com.kuaige.onsite.TimeWindow
import com.kuaige.onsite.TransitionRequest
import com.kuaige.onsite.sample.logic.OrderDetailModel
import java.time.Instant

/** The order, its lifecycle buttons, the SOP checklist, photos and receipts. */
@Composable
fun OrderDetailScreen(model: OrderDetailModel, onBack: () -> Unit, onCapture: (String?) -> Unit, onSign: () -> Unit) {
    LaunchedEffect(model.orderId) { model.refresh() }
    val ui by model.state.collectAsState()
    val screen = ui.screen ?: return
    val d = screen.detail
    Column(Modifier.fillMaxSize().verticalScroll(rememberScrollState()).padding(12.dp)) {
        OutlinedButton(onClick = onBack) { Text("Back") }
        Text("${d.customer.company} — ${d.equipment.brand} ${d.equipment.model}", style = MaterialTheme.typography.titleLarge)
        Text(d.fault.description)
        Text("Status: ${d.status.name.lowercase()}")
        if (ui.busy) CircularProgressIndicator()
        ui.error?.let { Text(it.message, color = MaterialTheme.colorScheme.error) }
        Row {
            d.nextEvents.forEach { event ->
                eventRequest(event)?.let { req -> Button(onClick = { model.transition(req) }, Modifier.padding(2.dp)) { Text(event.replace('_', ' ')) } }
            }
        }
        val checklist = screen.checklist
        if (checklist == null) {
            Button(onClick = { model.startChecklist() }) { Text("Start SOP checklist") }
        } else {
            Text(checklist.title.zh, style = MaterialTheme.typography.titleMedium)
            checklist.steps.forEach { step -> StepRow(step, open = step.id in checklist.open, model, onCapture) }
        }
        if (screen.blockers.any { it.step == "receipt" }) Button(onClick = onSign) { Text("Customer signs") }
        Text("${screen.photos.size} photos · ${screen.receipts.size} receipt(s)")
    }
}

private fun eventRequest(event: String): TransitionRequest? {
    val now = Instant.now()
    return when (event) {
        "accept" -> TransitionRequest.Accept
        "contact_customer" -> TransitionRequest.ContactCustomer(TimeWindow(now.plusSeconds(1800), now.plusSeconds(9000)))
        "depart" -> TransitionRequest.Depart
        "arrive" -> TransitionRequest.Arrive
        "start_work" -> TransitionRequest.StartWork
        "request_signature" -> TransitionRequest.RequestSignature
        "complete" -> TransitionRequest.Complete
        else -> null // reschedule, carry to workshop, unresolved: need a reason dialog
    }
}

@Composable
private fun StepRow(step: ChecklistStep, open: Boolean, model: OrderDetailModel, onCapture: (String?) -> Unit) {
    Column(Modifier.padding(vertical = 4.dp)) {
        Text("${step.label.zh} · ${step.state.name.lowercase()}", style = MaterialTheme.typography.bodyMedium)
        if (!open) return@Column
        when (val k = step.kind) {
            is StepKind.Confirmation -> Button(onClick = { model.answer(step.id, StepAnswer.Confirmed) }) { Text("Done") }
            is StepKind.Photo -> Button(onClick = { onCapture(step.id) }) { Text("Take photo (min ${k.min})") }
            is StepKind.Note -> {
                var text by remember { mutableStateOf("") }
                OutlinedTextField(text, { text = it })
                Button(onClick = { model.answer(step.id, StepAnswer.Note(text)) }) { Text("Save") }
            }
            is StepKind.Choice -> Row { k.options.forEach { o -> OutlinedButton(onClick = { model.answer(step.id, StepAnswer.Choice(listOf(o.id))) }) { Text(o.label.zh) } } }
            else -> Text("Answer this step on its own screen (${k::class.simpleName})")
        }
    }
}
