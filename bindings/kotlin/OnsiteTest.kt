// JUnit 4 tests of the generated Kotlin bindings against the real libonsite_ffi.so.
package com.kuaige.onsite.test

import kotlinx.coroutines.runBlocking
import com.kuaige.onsite.*
import java.io.File
import java.nio.file.Files
import java.time.Duration
import java.time.Instant
import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertNotEquals
import org.junit.Assert.assertNull
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Test

class OnsiteTest {
    private val samples: String = File(System.getProperty("onsite.samples")).readText()

    private fun tempDir(): String = Files.createTempDirectory("onsite-kt").toString()

    private fun all() = OrderFilter(statuses = emptyList(), sort = SortBy.SLA_DEADLINE)

    @Test
    fun createListTransition(): Unit = runBlocking {
        Onsite.open(tempDir()).use { store ->
            val ids = store.orders().importJson(samples)
            assertEquals(listOf("WO-20261123-0001", "WO-20261123-0002", "WO-20261123-0003"), ids)
            val rows = store.orders().list(all())
            assertEquals(3, rows.size)
            assertEquals(Priority.URGENT, rows[0].priority)
            assertTrue(rows.all { it.status == OrderStatus.ASSIGNED })

            val id = ids[0]
            val fix = GpsFix(39.90871, 116.46023, 6.5, LocationSource.GPS, false)
            var d = store.orders().transition(id, TransitionRequest.Accept, null)
            assertEquals(OrderStatus.ACCEPTED, d.status)
            assertEquals(listOf("contact_customer", "reschedule"), d.nextEvents)
            val start = Instant.parse("2026-11-23T03:00:00.123Z")
            val window = TimeWindow(start, start.plus(Duration.ofHours(2)))
            d = store.orders().transition(id, TransitionRequest.ContactCustomer(window), null)
            d = store.orders().transition(id, TransitionRequest.Depart, null)
            d = store.orders().transition(id, TransitionRequest.Arrive, fix)
            assertEquals(OrderStatus.ON_SITE, d.status)
            assertEquals(window, d.appointment)
            assertEquals(fix, d.transitions.last().fix)
            assertEquals(4, d.transitions.size)

            val onSite = store.orders().list(OrderFilter(listOf(OrderStatus.ON_SITE), SortBy.UPDATED))
            assertEquals(listOf(id), onSite.map { it.id })
        }
    }

    @Test
    fun illegalTransitionIsATypedException(): Unit = runBlocking {
        Onsite.open(tempDir()).use { store ->
            store.orders().importJson(samples)
            try {
                store.orders().transition("WO-20261123-0001", TransitionRequest.Complete, null)
                fail("an illegal transition was accepted")
            } catch (e: ApiException.IllegalTransition) {
                assertEquals(OrderStatus.ASSIGNED, e.from)
                assertEquals("complete", e.event)
            }
            try {
                store.orders().transition("WO-20261123-0001", TransitionRequest.Cancel("duplicate"), null)
                fail("an engineer cancelled")
            } catch (e: ApiException.NotPermitted) {
                assertTrue(e.reason.contains("cancel"))
            }
            try {
                store.orders().get("WO-missing")
                fail("found a missing order")
            } catch (e: ApiException.NotFound) {
                assertEquals("WO-missing", e.id)
            }
            try {
                store.orders().importJson(samples.replace("\"lat\": 39.9834", "\"lat\": \"north\""))
                fail("imported malformed JSON")
            } catch (e: ApiException.InvalidInput) {
                assertEquals("[1].site.lat", e.field)
            }
            // Nothing of the refused transition or import was written.
            assertEquals(OrderStatus.ASSIGNED, store.orders().get("WO-20261123-0001").status)
            assertEquals(3, store.orders().list(all()).size)
        }
    }

    @Test
    fun bytesAndTimesRoundTrip(): Unit = runBlocking {
        val a = Onsite.open(tempDir())
        val b = Onsite.open(tempDir())
        assertNotEquals(a.deviceId(), b.deviceId())
        a.orders().importJson(samples)
        // Before the epoch, to the millisecond. (uniffi's Instant encoding loses the sign of
        // times less than one second before the epoch; real orders never get near 1970.)
        val at = Instant.parse("1969-07-20T20:17:40.250Z")
        val window = TimeWindow(at, at.plusMillis(1))
        a.orders().transition("WO-20261123-0002", TransitionRequest.Accept, null)
        a.orders().transition("WO-20261123-0002", TransitionRequest.ContactCustomer(window), null)
        val bytes = a.orders().documentBytes("WO-20261123-0002")
        assertTrue(bytes.size > 100)
        val merged = b.orders().mergeDocument(bytes)
        assertEquals(a.orders().get("WO-20261123-0002"), merged)
        assertEquals(window, merged.appointment)
        assertArrayEquals(bytes, a.orders().documentBytes("WO-20261123-0002"))
        b.orders().addNote("WO-20261123-0002", "客户不在 / customer out, waiting")
        val back = a.orders().mergeDocument(b.orders().documentBytes("WO-20261123-0002"))
        assertEquals("客户不在 / customer out, waiting", back.notes.single().text)
        try {
            a.orders().mergeDocument(byteArrayOf(1, 2, 3))
            fail("merged garbage")
        } catch (e: ApiException.InvalidInput) {
            assertEquals("document", e.field)
        }
        a.destroy()
        b.destroy()
    }

    @Test
    fun damagedDatabaseAndBadPathsAreRefused(): Unit = runBlocking {
        val dir = tempDir()
        Onsite.open(dir).use { it.orders().importJson(samples) }
        val db = File(dir, "onsite.sqlite3")
        // The store is encrypted: a header edit (what used to fake a newer schema) is damage
        // that the page's HMAC catches, reported as such with the right key, file untouched.
        // (A newer schema through the key is refused as DatabaseTooNew: tests/tests/ffi.rs.)
        val bytes = db.readBytes()
        bytes[60] = 0; bytes[61] = 0; bytes[62] = 3; bytes[63] = -25
        db.writeBytes(bytes)
        try {
            Onsite.open(dir)
            fail("opened a damaged database")
        } catch (e: ApiException.Corrupt) {
            assertTrue(e.reason, e.reason.contains("right key"))
        }
        assertTrue("left untouched", bytes.contentEquals(db.readBytes()))
        val plainFile = File(tempDir(), "file").apply { writeText("x") }
        try {
            Onsite.open(File(plainFile, "sub").path)
            fail("opened a store under a file")
        } catch (e: ApiException.Storage) {
            assertTrue(e.reason.isNotEmpty())
        }
    }

    class TestClock(private val at: Instant, private val failEvery: Int) : ClockSource {
        var calls = 0
        override fun now(): Instant {
            calls += 1
            if (failEvery > 0 && calls % failEvery == 0) throw IllegalStateException("clock broke")
            return at
        }
        override fun monotonicMs(): ULong = calls.toULong() * 1000u
    }

    @Test
    fun foreignClockIsUsedAndItsFailuresAreContained(): Unit = runBlocking {
        val at = Instant.parse("2026-11-23T01:30:00Z")
        val clock = TestClock(at, failEvery = 0)
        Onsite.openWithPlatform(tempDir(), clock, null, null).use { store ->
            store.orders().importJson(samples)
            val d = store.orders().transition("WO-20261123-0001", TransitionRequest.Accept, null)
            assertEquals(at, d.transitions.single().at)
            assertTrue(clock.calls > 0)
        }
        val flaky = TestClock(at, failEvery = 2)
        Onsite.openWithPlatform(tempDir(), flaky, null, null).use { store ->
            store.orders().importJson(samples)
            repeat(5) { store.orders().addNote("WO-20261123-0001", "note $it") }
            assertEquals(5, store.orders().get("WO-20261123-0001").notes.size)
        }
    }
}

/** Walks the seed-003 on-site repair checklist through the generated bindings. */
class ChecklistTest {
    private val samples: String = File(System.getProperty("onsite.samples")).readText()
    private val sha = { s: String ->
        java.security.MessageDigest.getInstance("SHA-256").digest(s.toByteArray()).joinToString("") { "%02x".format(it) }
    }
    internal val signature = listOf(Stroke((0 until 20).map { StrokePoint(it * 5f, 40f + (it % 3), (it * 16).toUInt(), 0.6f) }))

    /** A valid answer for the step, as the app's form would produce it. */
    internal fun answerFor(order: OrderDetail, view: ChecklistView, step: ChecklistStep): StepAnswer = when (val k = step.kind) {
        is StepKind.Confirmation -> StepAnswer.Confirmed
        is StepKind.Photo -> StepAnswer.Photos((0 until maxOf(1u, k.min).toInt()).map { PhotoRef(sha("${step.id}/$it"), "photo $it") })
        is StepKind.Measurement -> StepAnswer.Measurement(((k.min ?: 0.0) + (k.max ?: 2.0)) / 2)
        is StepKind.Note -> StepAnswer.Note("done: ${step.label.en}")
        is StepKind.Choice -> StepAnswer.Choice(listOf(k.options.first().id))
        is StepKind.Barcode -> {
            val fromParts = k.expectedFromStep?.let { from ->
                (view.steps.first { it.id == from }.current?.answer as? StepAnswer.Parts)?.parts?.firstOrNull()?.serial
            }
            StepAnswer.Barcode(fromParts ?: order.equipment.serial)
        }
        // One part per order through the ledger: borrowed, fitted (the old one out), returned.
        is StepKind.Parts -> when (step.ledger) {
            "return" -> {
                val fitted = view.steps.any { it.ledger == "install" && (it.current?.answer as? StepAnswer.Parts)?.parts?.isNotEmpty() == true }
                StepAnswer.Parts(listOf(PartUse("FRU-5B20W77543", if (fitted) "OLD-${order.id}" else "SN-${order.id}", 1u, null)))
            }
            "install" -> StepAnswer.Parts(listOf(PartUse("FRU-5B20W77543", "SN-${order.id}", 1u, "OLD-${order.id}")))
            else -> StepAnswer.Parts(listOf(PartUse("FRU-5B20W77543", "SN-${order.id}", 1u, null)))
        }
        is StepKind.Timer -> {
            val now = Instant.now()
            StepAnswer.Observation(now.minusSeconds(300), now, true)
        }
        is StepKind.Consent -> StepAnswer.Consent(true, k.riskSha256, "王女士", signature)
    }

    @Test
    fun walkSeed003ToCompletionAndHitABlocker(): Unit = runBlocking {
        Onsite.open(Files.createTempDirectory("onsite-kt").toString()).use { store ->
            store.orders().importJson(samples)
            val id = "WO-20261123-0001"
            assertTrue(store.checklist().templates().map { it.id }.containsAll(listOf("onsite-repair", "workshop-intake", "os-reinstall")))
            var view = store.checklist().start(id, "onsite-repair")
            assertEquals(2u, view.templateVersion)
            assertEquals(listOf("dress_badge", "borrow_parts"), view.open)

            // A step that is not open yet is refused, and nothing is recorded.
            try {
                store.checklist().answer(id, "farewell", StepAnswer.Confirmed)
                fail("answered a locked step")
            } catch (e: ApiException.StepRefused) {
                assertEquals("farewell", e.step)
            }
            // A blocker in words the engineer understands.
            val blocker = store.checklist().blockers(id).first { it.step == "dress_badge" }
            assertEquals("not confirmed yet", blocker.reason.en)

            // A barcode that does not match keeps the step open and blocks.
            while (!view.open.contains("warranty_packing")) {
                val step = view.steps.first { it.id == view.open.first() }
                view = store.checklist().answer(id, step.id, answerFor(store.orders().get(id), view, step))
            }
            view = store.checklist().answer(id, "warranty_packing", StepAnswer.Barcode("COUNTERFEIT"))
            val wp = view.steps.first { it.id == "warranty_packing" }
            assertEquals(StepState.Open, wp.state)
            assertTrue(wp.flags.single() is StepFlag.BarcodeMismatch)

            var answered = 0
            while (view.open.isNotEmpty()) {
                val step = view.steps.first { it.id == view.open.first() }
                view = store.checklist().answer(id, step.id, answerFor(store.orders().get(id), view, step))
                answered++
            }
            assertTrue("answered $answered", answered > 15)
            assertEquals(emptyList<Blocker>(), view.blockers)
            assertEquals(2, store.checklist().history(id, "warranty_packing").size)
            val consent = view.steps.first { it.id == "customer_signs" }.current!!.answer as StepAnswer.Consent
            assertEquals(signature, consent.strokes)

            try {
                store.checklist().answer(id, "customer_signs", StepAnswer.Note("again"))
                fail("a signed consent was changed")
            } catch (e: ApiException.StepRefused) {
                assertTrue(e.reason.contains("final"))
            }
        }
    }

    @Test
    fun completionIsRefusedWhileBlockersRemain(): Unit = runBlocking {
        Onsite.open(Files.createTempDirectory("onsite-kt").toString()).use { store ->
            store.orders().importJson(samples)
            val id = "WO-20261123-0002"
            val w = TimeWindow(Instant.now(), Instant.now().plusSeconds(3600))
            listOf(TransitionRequest.Accept, TransitionRequest.ContactCustomer(w), TransitionRequest.Depart,
                TransitionRequest.Arrive, TransitionRequest.StartWork, TransitionRequest.RequestSignature)
                .forEach { store.orders().transition(id, it, null) }
            store.checklist().start(id, "os-reinstall")
            try {
                store.orders().transition(id, TransitionRequest.Complete, null)
                fail("completed with blockers")
            } catch (e: ApiException.Blocked) {
                assertEquals("consent_reinstall", e.firstStep)
            }
            try {
                store.checklist().markNotApplicable(id, "consent_reinstall", "customer busy")
                fail("marked a step n/a that the template does not allow")
            } catch (e: ApiException.StepRefused) {
                assertEquals("consent_reinstall", e.step)
            }
        }
    }
}

/** Evidence through the bindings: a JPEG made here, a JVM P-256 key as the device signer. */
class EvidenceTest {
    private val samples: String = File(System.getProperty("onsite.samples")).readText()

    internal fun jpeg(seed: Int): ByteArray = encode(seed, "jpg")

    internal fun encode(seed: Int, format: String): ByteArray {
        val img = java.awt.image.BufferedImage(640, 480, java.awt.image.BufferedImage.TYPE_INT_RGB)
        val g = img.createGraphics()
        g.paint = java.awt.GradientPaint(0f, 0f, java.awt.Color(seed % 256, 40, 90), 640f, 480f, java.awt.Color.WHITE)
        g.fillRect(0, 0, 640, 480)
        g.color = java.awt.Color.ORANGE
        g.fillOval(100 + seed % 50, 120, 200, 200)
        g.dispose()
        val out = java.io.ByteArrayOutputStream()
        javax.imageio.ImageIO.write(img, format, out)
        return out.toByteArray()
    }

    /** The platform's codecs (javax.imageio here; ImageIO/ImageDecoder on the phones). */
    class JvmImageDecoder : ImageDecoder {
        val formats = mutableListOf<String>()
        override fun decode(path: String, format: String, maxEdge: UInt): DecodedImage? {
            formats.add(format)
            val img = javax.imageio.ImageIO.read(File(path)) ?: return null
            val scale = minOf(1.0, maxEdge.toDouble() / maxOf(img.width, img.height))
            val sw = maxOf(1, (img.width * scale).toInt())
            val sh = maxOf(1, (img.height * scale).toInt())
            val small = java.awt.image.BufferedImage(sw, sh, java.awt.image.BufferedImage.TYPE_INT_RGB)
            small.createGraphics().apply {
                setRenderingHint(java.awt.RenderingHints.KEY_INTERPOLATION, java.awt.RenderingHints.VALUE_INTERPOLATION_BILINEAR)
                drawImage(img, 0, 0, sw, sh, null)
                dispose()
            }
            val rgb = ByteArray(sw * sh * 3)
            for (y in 0 until sh) for (x in 0 until sw) {
                val p = small.getRGB(x, y)
                val i = (y * sw + x) * 3
                rgb[i] = (p shr 16).toByte(); rgb[i + 1] = (p shr 8).toByte(); rgb[i + 2] = p.toByte()
            }
            return DecodedImage(img.width.toUInt(), img.height.toUInt(), sw.toUInt(), sh.toUInt(), rgb)
        }
    }

    @Test
    fun aFormatTheCoreDoesNotDecodeGetsItsThumbnailAndHashFromThePlatform(): Unit = runBlocking {
        Onsite.open(Files.createTempDirectory("onsite-kt").toString()).use { store ->
            store.orders().importJson(samples)
            val bmp = encode(11, "bmp")
            val blind = store.evidence().ingestBytes("WO-20261123-0001", null, bmp, null)
            assertEquals("unknown", blind.format)
            assertNull(blind.thumbSha256)
            assertNull(blind.phash)
            val decoder = JvmImageDecoder()
            store.setImageDecoder(decoder)
            val seen = store.evidence().ingestBytes("WO-20261123-0002", null, bmp, null)
            assertEquals(listOf("unknown"), decoder.formats)
            assertEquals(640u, seen.width)
            assertEquals(320u, seen.thumbWidth)
            assertTrue(seen.phash != null && seen.thumbSha256 != null)
            // The same picture re-saved as a JPEG is caught as a reuse of the platform-decoded one.
            val copy = store.evidence().ingestBytes("WO-20261123-0003", null, encode(11, "jpg"), null)
            assertTrue(copy.reusedOn.toString(), copy.reusedOn.any { it.orderId == "WO-20261123-0002" })
        }
    }

    /** A P-256 key from the JVM's provider, standing in for Android Keystore/StrongBox. */
    /**
     * A hardware key as slow as a secure element (`delayMs` per signature) that can hold
     * countersignatures back until `release()`: an answer that waited on one would never return.
     */
    class JvmSigner(private val delayMs: Long = 0, holdCountersignatures: Boolean = false) : DeviceSigner {
        private val pair = java.security.KeyPairGenerator.getInstance("EC").apply {
            initialize(java.security.spec.ECGenParameterSpec("secp256r1"))
        }.generateKeyPair()
        private val gate = java.util.concurrent.CountDownLatch(if (holdCountersignatures) 1 else 0)
        val countersigned = java.util.concurrent.atomic.AtomicInteger()
        @Volatile var calls = 0
        fun release() = gate.countDown()
        override fun publicKey(): ByteArray {
            val w = (pair.public as java.security.interfaces.ECPublicKey).w
            fun fixed(b: java.math.BigInteger): ByteArray {
                val raw = b.toByteArray().dropWhile { it == 0.toByte() }.toByteArray()
                return ByteArray(32 - raw.size) + raw
            }
            return byteArrayOf(4) + fixed(w.affineX) + fixed(w.affineY)
        }
        override fun sign(message: ByteArray): ByteArray {
            synchronized(this) { calls++ }
            if (String(message, Charsets.UTF_8).startsWith("onsite-countersign/")) {
                gate.await(20, java.util.concurrent.TimeUnit.SECONDS)
                countersigned.incrementAndGet()
            }
            Thread.sleep(delayMs)
            return java.security.Signature.getInstance("SHA256withECDSA").run {
                initSign(pair.private)
                update(message)
                sign() // DER, as Android Keystore returns it
            }
        }
    }

    @Test
    fun ingestJpegDetectReuseAndVerifyJournal(): Unit = runBlocking {
        val signer = JvmSigner()
        Onsite.openWithPlatform(Files.createTempDirectory("onsite-kt").toString(), null, signer, null).use { store ->
            store.orders().importJson(samples)
            val photo = jpeg(7)
            val r = store.evidence().ingestBytes("WO-20261123-0001", "repair_photo", photo, null)
            assertEquals("jpeg", r.format)
            assertEquals(640u, r.width)
            assertEquals(320u, r.thumbWidth)
            assertEquals(64, r.sha256.length)
            assertTrue(r.reusedOn.isEmpty())
            assertArrayEquals(photo, store.evidence().blob(r.sha256))
            // The same picture on another order is flagged.
            val again = store.evidence().ingestBytes("WO-20261123-0002", null, photo, null)
            assertEquals(listOf("WO-20261123-0001"), again.reusedOn.map { it.orderId })
            // An empty photo is a typed error.
            try {
                store.evidence().ingestBytes("WO-20261123-0001", null, ByteArray(0), null)
                fail("stored an empty photo")
            } catch (e: ApiException.InvalidInput) {
                assertEquals("photo", e.field)
            }
            val report = store.evidence().verifyJournal()
            assertTrue(report.problem ?: "", report.ok)
            // The session (signed by the device key), three imports, two photos each sealed at once.
            assertEquals(8uL, report.entries)
            assertNull(report.unsealedFrom)
            assertEquals(1, signer.calls)
            assertArrayEquals(signer.publicKey(), store.publicKey())
            val kinds = store.evidence().journal("WO-20261123-0001").map { it.kind }
            assertEquals(listOf("import", "photo", "seal"), kinds)
        }
    }

    @Test
    fun aSlowHardwareKeyIsUsedRarelyAndNeverWaitedOnByAnEdit(): Unit = runBlocking {
        val signer = JvmSigner(delayMs = 100, holdCountersignatures = true)
        Onsite.openWithPlatform(Files.createTempDirectory("onsite-kt").toString(), null, signer, null).use { store ->
            store.orders().importJson(samples)
            val id = "WO-20261123-0001"
            val walker = ChecklistTest()
            var view = store.checklist().start(id, "onsite-repair")
            var consents = 0
            while (view.open.isNotEmpty()) {
                val step = view.steps.first { it.id == view.open.first() }
                val answer = walker.answerFor(store.orders().get(id), view, step)
                if (answer is StepAnswer.Consent) consents++
                view = store.checklist().answer(id, step.id, answer)
            }
            // Every consent was answered while the key held its countersignatures back.
            assertEquals(3, consents)
            assertEquals(0, signer.countersigned.get())
            signer.release()
            assertTrue(store.evidence().sealJournal() >= 1u)
            val report = store.evidence().verifyJournal()
            assertTrue(report.problem ?: "", report.ok)
            assertNull(report.unsealedFrom)
            assertEquals(3uL, report.countersigned)
            // The hardware key signed the session and the three countersignatures, nothing else.
            assertEquals(1 + consents, signer.calls)
            assertEquals(3, store.evidence().journal(id).count { it.kind == "countersign" })
        }
    }
}

/** Signed receipts and arbitration bundles through the bindings. */
class ReceiptTest {
    private val samples: String = File(System.getProperty("onsite.samples")).readText()
    private val walker = ChecklistTest()
    private val photos = EvidenceTest()

    private fun request(rating: UByte? = 5u) = ReceiptRequest(
        diagnosis = "DC-in jack loose", workDone = "resoldered, verified boot",
        charges = listOf(ChargeLine("上门服务费", 8000, ChargeBasis.PAID), ChargeLine("DC-in 小板", 0, ChargeBasis.WARRANTY)),
        currency = "CNY", rating = rating, ratingComment = "好", signerName = "王女士",
        decision = CustomerDecision.Signed(walker.signature), correctionReason = null,
    )

    @Test
    fun signReceiptExportAndVerifyBundle(): Unit = runBlocking {
        val dir = Files.createTempDirectory("onsite-kt")
        Onsite.open(dir.toString()).use { store ->
            store.orders().importJson(samples)
            val id = "WO-20261123-0001"
            val w = TimeWindow(Instant.now().plusSeconds(60), Instant.now().plusSeconds(3600))
            listOf(TransitionRequest.Accept, TransitionRequest.ContactCustomer(w), TransitionRequest.Depart,
                TransitionRequest.Arrive, TransitionRequest.StartWork).forEach { store.orders().transition(id, it, null) }
            var view = store.checklist().start(id, "onsite-repair")
            var seed = 1
            while (view.open.isNotEmpty()) {
                val step = view.steps.first { it.id == view.open.first() }
                val answer = if (step.kind is StepKind.Photo) {
                    val r = store.evidence().ingestBytes(id, step.id, photos.jpeg(seed++), null)
                    StepAnswer.Photos(listOf(PhotoRef(r.sha256, step.id)))
                } else walker.answerFor(store.orders().get(id), view, step)
                view = store.checklist().answer(id, step.id, answer)
            }
            try {
                store.orders().transition(id, TransitionRequest.Complete, null)
                fail("completed before the customer signed")
            } catch (e: ApiException.IllegalTransition) {
            } catch (e: ApiException.Blocked) {
            }
            store.orders().transition(id, TransitionRequest.RequestSignature, null)
            try {
                store.receipts().sign(id, request(rating = 9u))
                fail("a rating of 9 was accepted")
            } catch (e: ApiException.InvalidInput) {
                assertEquals("rating.score", e.field)
            }
            try {
                store.orders().transition(id, TransitionRequest.Complete, null)
                fail("completed before the customer signed")
            } catch (e: ApiException.Blocked) {
                assertEquals("receipt", e.firstStep)
            }
            val r = store.receipts().sign(id, request())
            assertEquals(1u, r.revision)
            assertEquals("signed", r.decision)
            assertEquals(64, r.signature.size)
            assertTrue(r.canonicalJson.contains("\"payable_cents\":8000"))
            store.orders().transition(id, TransitionRequest.Complete, null)
            // Records holding byte arrays compare by reference in Kotlin: compare the hashes.
            assertEquals(listOf(r.receiptSha256), store.receipts().list(id).map { it.receiptSha256 })
            assertArrayEquals(r.signature, store.receipts().list(id).single().signature)
            assertTrue(store.receipts().customerCopyHtml(id, null).contains("维修服务回执单"))
            val png = renderSignaturePng(walker.signature, 300u, 120u)
            assertArrayEquals(byteArrayOf(0x89.toByte(), 0x50, 0x4E, 0x47), png.copyOfRange(0, 4))
            try {
                renderSignaturePng(listOf(Stroke(listOf(StrokePoint(Float.NaN, 0f, 0u, 0.5f)))), 10u, 10u)
                fail("NaN strokes rendered")
            } catch (e: ApiException.InvalidInput) {
                assertEquals("strokes", e.field)
            }

            val path = dir.resolve("bundle.zip").toString()
            val export = store.receipts().exportBundle(id, path, false)
            assertTrue(export.photos >= 4u)
            val report = verifyBundle(path, store.publicKey())
            assertTrue(report.text, report.ok)
            assertEquals(id, report.orderId)
            assertTrue(report.json.contains("\"ok\":true"))

            // Every 997th byte flipped in turn: never valid.
            val bytes = File(path).readBytes()
            var flips = 0
            for (pos in bytes.indices step 997) {
                val bad = bytes.copyOf()
                bad[pos] = (bad[pos].toInt() xor 0x01).toByte()
                val f = dir.resolve("bad.zip").toFile()
                f.writeBytes(bad)
                val rep = verifyBundle(f.path, null)
                if (rep.ok) {
                    // Only zip bookkeeping that no content depends on may change harmlessly.
                    assertTrue("flip at $pos accepted", rep.checks.all { it.passed })
                } else flips++
            }
            assertTrue("$flips", flips > 0)
            // Another key than the registered one: refused.
            assertTrue(!verifyBundle(path, ByteArray(65) { 4 }).ok)
        }
    }
}
