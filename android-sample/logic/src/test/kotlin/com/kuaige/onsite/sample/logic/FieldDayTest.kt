// One engineer's field day through the sample's logic layer, against the real core (.so) and
// a real onsite-server on loopback (started by scripts/test): receive the order, walk the
// seed-003 SOP with real photos, have the customer sign, sync, export and verify the bundle.
package com.kuaige.onsite.sample.logic

import com.kuaige.onsite.ChargeBasis
import com.kuaige.onsite.ChargeLine
import com.kuaige.onsite.CustomerDecision
import com.kuaige.onsite.OrderStatus
import com.kuaige.onsite.PartUse
import com.kuaige.onsite.ReceiptRequest
import com.kuaige.onsite.StepAnswer
import com.kuaige.onsite.StepKind
import com.kuaige.onsite.TimeWindow
import com.kuaige.onsite.TransitionRequest
import java.io.File
import java.net.URI
import java.net.http.HttpClient
import java.net.http.HttpRequest
import java.net.http.HttpResponse
import java.nio.file.Files
import java.time.Instant
import kotlinx.coroutines.runBlocking
import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertNotNull
import org.junit.Assert.assertNull
import org.junit.Assert.assertTrue
import org.junit.Test

class FieldDayTest {
    private val server: String = System.getProperty("onsite.server")
    private val dispatcher: String = System.getProperty("onsite.dispatcher")
    private val samples: String = File(System.getProperty("onsite.samples")).readText()
    private val http = HttpClient.newHttpClient()

    private fun call(method: String, path: String, body: String?): String {
        val b = HttpRequest.newBuilder(URI.create(server + path)).header("authorization", "Bearer $dispatcher")
        val req = if (body == null) b.GET().build()
        else b.header("content-type", "application/json").method(method, HttpRequest.BodyPublishers.ofString(body)).build()
        val resp = http.send(req, HttpResponse.BodyHandlers.ofString())
        assertTrue("$method $path: ${resp.statusCode()} ${resp.body()}", resp.statusCode() in 200..299)
        return resp.body()
    }

    private fun jpeg(seed: Int): ByteArray {
        val img = java.awt.image.BufferedImage(800, 600, java.awt.image.BufferedImage.TYPE_INT_RGB)
        val g = img.createGraphics()
        g.paint = java.awt.GradientPaint(0f, 0f, java.awt.Color((seed * 37) % 256, 60, 120), 800f, 600f, java.awt.Color.WHITE)
        g.fillRect(0, 0, 800, 600)
        g.color = java.awt.Color((seed * 91) % 256, 200, 40)
        g.fillRect(50 + seed * 13 % 300, 80, 240, 180)
        g.dispose()
        val out = java.io.ByteArrayOutputStream()
        javax.imageio.ImageIO.write(img, "jpg", out)
        return out.toByteArray()
    }

    /** The customer signing on the pad: touch events in, strokes out. */
    private fun customerSigns(pad: SignaturePad) {
        var t = 1_000L
        pad.down(20f, 80f, t, 0.4f)
        for (i in 1..30) pad.move(20f + i * 8, 80f + (i % 7) * 4, t + i * 16, 0.5f + (i % 5) / 20f)
        t += 800
        pad.down(60f, 40f, t, 0.6f)
        for (i in 1..12) pad.move(60f + i * 3, 40f + i * 6, t + i * 16, 0.6f)
    }

    /** What the engineer enters on a non-photo step. */
    private fun engineerInput(model: OrderDetailModel, stepId: String, pad: SignaturePad): StepAnswer {
        val screen = model.state.value.screen!!
        val view = screen.checklist!!
        val step = view.steps.first { it.id == stepId }
        return when (val k = step.kind) {
            is StepKind.Confirmation -> StepAnswer.Confirmed
            is StepKind.Measurement -> StepAnswer.Measurement(((k.min ?: 0.0) + (k.max ?: 2.0)) / 2)
            is StepKind.Note -> StepAnswer.Note("done: ${step.label.en}")
            is StepKind.Choice -> StepAnswer.Choice(listOf(k.options.first().id))
            is StepKind.Barcode -> {
                val fromParts = k.expectedFromStep?.let { from ->
                    (view.steps.first { it.id == from }.current?.answer as? StepAnswer.Parts)?.parts?.firstOrNull()?.serial
                }
                StepAnswer.Barcode(fromParts ?: screen.detail.equipment.serial)
            }
            // The parts borrowed at the clerk's desk, fitted (the old one out), and returned.
            is StepKind.Parts -> {
                val id = screen.detail.id
                when (step.ledger) {
                    "install" -> StepAnswer.Parts(listOf(PartUse("FRU-5B20W77543", "SN-$id", 1u, "OLD-$id")))
                    "return" -> StepAnswer.Parts(listOf(PartUse("FRU-5B20W77543", "OLD-$id", 1u, null)))
                    else -> StepAnswer.Parts(listOf(PartUse("FRU-5B20W77543", "SN-$id", 1u, null)))
                }
            }
            is StepKind.Timer -> StepAnswer.Observation(Instant.now().minusSeconds(240), Instant.now(), true)
            is StepKind.Consent -> StepAnswer.Consent(true, k.riskSha256, "王女士", pad.strokes())
            is StepKind.Photo -> error("photo steps are answered by capturing photos")
        }
    }

    @Test
    fun receiveWalkSignSyncExportVerify(): Unit = runBlocking {
        val engineer = "eng-android-sample"
        val orderJson = samples.replace("prov-bj-chaoyang", "prov-ffi").replace("eng-017", engineer).replace("WO-20261123", "WO-AND")
        call("POST", "/v1/orders", orderJson)
        val code = Regex("\"code\":\"([A-Z0-9-]+)\"").find(call("POST", "/v1/enrolment-codes", "{\"engineer_id\":\"$engineer\"}"))!!.groupValues[1]

        FieldSession.open(Files.createTempDirectory("onsite-android-sample").toString()).use { session ->
            assertTrue(session.orders.state.value.rows.isEmpty())
            val enrolment = session.sync.enrol(server, code)
            assertNotNull(session.sync.state.value.error?.message, enrolment)
            assertEquals(engineer, enrolment!!.engineerId)

            // 1. Receive: the list fills through the change notification, sorted by SLA.
            val first = session.sync.syncNow()
            assertNotNull(session.sync.state.value.error?.message, first)
            val rows = session.orders.state.value.rows
            assertEquals(3, rows.size)
            val deadlines = rows.map { it.slaDeadline }
            assertEquals("sorted by SLA deadline", deadlines.sortedBy { it ?: Instant.MAX }, deadlines)
            val id = rows.first().id

            // 2. Travel and arrive; the order screen follows every action.
            val detail = session.detail(id)
            detail.refresh()
            val w = TimeWindow(Instant.now().plusSeconds(60), Instant.now().plusSeconds(3600))
            for (r in listOf(TransitionRequest.Accept, TransitionRequest.ContactCustomer(w), TransitionRequest.Depart,
                TransitionRequest.Arrive, TransitionRequest.StartWork)) {
                assertTrue(detail.state.value.error?.message ?: "", detail.transition(r))
            }
            assertEquals(OrderStatus.IN_PROGRESS, detail.state.value.screen!!.detail.status)
            assertFalse("complete is refused before the SOP", detail.transition(TransitionRequest.Complete))
            assertEquals(UiError.Action.NONE, detail.state.value.error!!.action)

            // 3. Walk seed 003: photo steps by camera captures, the rest by the engineer's input.
            val pad = SignaturePad()
            customerSigns(pad)
            assertTrue(detail.startChecklist("onsite-repair"))
            var seed = 0
            var guard = 0
            while (true) {
                val view = detail.state.value.screen!!.checklist!!
                val stepId = view.open.firstOrNull() ?: break
                assertTrue("stuck at $stepId", guard++ < 200)
                val step = view.steps.first { it.id == stepId }
                if (step.kind is StepKind.Photo) {
                    assertNotNull(detail.state.value.error?.message, detail.capturePhoto(stepId, jpeg(++seed)))
                } else {
                    assertTrue(detail.state.value.error?.message ?: "", detail.answer(stepId, engineerInput(detail, stepId, pad)))
                }
            }
            val screen = detail.state.value.screen!!
            assertTrue("photos stored: ${screen.photos.size}", screen.photos.size >= 4)
            assertEquals(listOf("receipt"), screen.blockers.map { it.step })

            // 4. The customer signs the receipt on the pad.
            assertTrue(detail.transition(TransitionRequest.RequestSignature))
            assertFalse(pad.isEmpty)
            val png = pad.preview()
            assertEquals(0x89.toByte(), png[0])
            val receipt = detail.sign(ReceiptRequest(
                diagnosis = "DC-in jack loose", workDone = "replaced DC-in board, verified charging",
                charges = listOf(ChargeLine("上门服务费", 8000, ChargeBasis.PAID)), currency = "CNY",
                rating = 5u, ratingComment = "准时", signerName = "王女士",
                decision = CustomerDecision.Signed(pad.strokes()), correctionReason = null,
            ))
            assertNotNull(detail.state.value.error?.message, receipt)
            assertTrue(detail.transition(TransitionRequest.Complete))
            assertEquals(OrderStatus.COMPLETED, detail.state.value.screen!!.detail.status)
            assertEquals(1, detail.state.value.screen!!.receipts.size)

            // 5. Sync: journal, order and photos reach the server; nothing stays pending.
            val pushed = session.sync.syncNow()
            assertNotNull(session.sync.state.value.error?.message, pushed)
            assertTrue(pushed!!.photosUploaded >= 4u)
            val st = session.sync.state.value.state!!
            assertEquals(0uL, st.pendingJournal)
            assertEquals(0uL, st.pendingOrders)
            assertEquals(0uL, st.pendingPhotos)
            assertNull(st.lastError)
            assertTrue(call("GET", "/v1/orders/$id", null).contains("\"status\":\"completed\""))

            // 6. Export the arbitration bundle and verify it as a third party would.
            val path = Files.createTempDirectory("onsite-android-bundle").resolve("$id.zip").toString()
            val (export, report) = detail.exportBundle(path)!!
            assertTrue(export.photos >= 4u)
            assertTrue(report.text, report.ok)
            assertEquals(id, report.orderId)
            assertTrue("the bundle carries the server's log proofs", report.checks.any { it.check == "log.inclusion" && it.passed })
        }
    }
}
