package com.kuaige.onsite.sample.ui

import androidx.compose.foundation.Canvas
import androidx.compose.foundation.background
import androidx.compose.foundation.layout.Column
import androidx.compose.foundation.layout.Row
import androidx.compose.foundation.layout.fillMaxWidth
import androidx.compose.foundation.layout.height
import androidx.compose.foundation.layout.padding
import androidx.compose.material3.Button
import androidx.compose.material3.OutlinedButton
import androidx.compose.material3.OutlinedTextField
import androidx.compose.material3.Text
import androidx.compose.runtime.Composable
import androidx.compose.runtime.getValue
import androidx.compose.runtime.mutableIntStateOf
import androidx.compose.runtime.mutableStateOf
import androidx.compose.runtime.remember
import androidx.compose.runtime.setValue
import androidx.compose.ui.Modifier
import androidx.compose.ui.geometry.Offset
import androidx.compose.ui.graphics.Color
import androidx.compose.ui.graphics.Path
import androidx.compose.ui.graphics.drawscope.Stroke
import androidx.compose.ui.input.pointer.pointerInput
import androidx.compose.ui.unit.dp
import com.kuaige.onsite.ChargeBasis
import com.kuaige.onsite.ChargeLine
import com.kuaige.onsite.CustomerDecision
import com.kuaige.onsite.ReceiptRequest
import com.kuaige.onsite.TransitionRequest
import com.kuaige.onsite.sample.logic.OrderDetailModel
import com.kuaige.onsite.sample.logic.SignaturePad

/** The customer reviews and signs; the strokes (with time and pressure) go into the receipt. */
@Composable
fun SignatureScreen(model: OrderDetailModel, onDone: () -> Unit) {
    val pad = remember { SignaturePad() }
    var redraw by remember { mutableIntStateOf(0) }
    var name by remember { mutableStateOf("") }
    var diagnosis by remember { mutableStateOf("") }
    var work by remember { mutableStateOf("") }
    Column(Modifier.padding(12.dp)) {
        OutlinedTextField(diagnosis, { diagnosis = it }, label = { Text("Diagnosis") })
        OutlinedTextField(work, { work = it }, label = { Text("Work done") })
        OutlinedTextField(name, { name = it }, label = { Text("Customer name") })
        Canvas(
            Modifier.fillMaxWidth().height(220.dp).background(Color.White).pointerInput(Unit) {
                awaitPointerEventScope {
                    while (true) {
                        val event = awaitPointerEvent()
                        event.changes.forEach { c ->
                            val t = c.uptimeMillis
                            if (c.pressed && !c.previousPressed) pad.down(c.position.x, c.position.y, t, c.pressure)
                            else if (c.pressed) pad.move(c.position.x, c.position.y, t, c.pressure)
                            c.consume()
                        }
                        redraw++
                    }
                }
            },
        ) {
            redraw.let { }
            pad.strokes().forEach { s ->
                val path = Path()
                s.points.forEachIndexed { i, p -> if (i == 0) path.moveTo(p.x, p.y) else path.lineTo(p.x, p.y) }
                drawPath(path, Color.Black, style = Stroke(width = 4f))
            }
            if (pad.strokes().isEmpty()) drawCircle(Color.LightGray, 4f, Offset(size.width / 2, size.height / 2))
        }
        Row {
            OutlinedButton(onClick = { pad.clear(); redraw++ }) { Text("Clear") }
            Button(enabled = name.isNotBlank(), onClick = {
                val request = ReceiptRequest(
                    diagnosis = diagnosis, workDone = work,
                    charges = listOf(ChargeLine("上门服务费", 0, ChargeBasis.WARRANTY)), currency = "CNY",
                    rating = null, ratingComment = null, signerName = name,
                    decision = CustomerDecision.Signed(pad.strokes()), correctionReason = null,
                )
                if (model.sign(request) != null) {
                    model.transition(TransitionRequest.Complete)
                    onDone()
                }
            }) { Text("Sign") }
        }
    }
}
