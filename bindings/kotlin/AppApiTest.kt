// The app-facing API at the boundary: sub-areas, change subscriptions, the location
// provider, the log sink, coroutine cancellation, and failing callbacks that must not take
// the core down.
package com.kuaige.onsite.test

import com.kuaige.onsite.*
import java.io.File
import java.net.ServerSocket
import java.nio.file.Files
import java.util.Collections
import kotlinx.coroutines.TimeoutCancellationException
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertNull
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Test

class AppApiTest {
    private val samples: String = File(System.getProperty("onsite.samples")).readText()
    private fun tempDir(): String = Files.createTempDirectory("onsite-kt-app").toString()
    private val first = "WO-20261123-0001"

    class Changes : OrderChangeListener {
        val seen: MutableList<Pair<List<String>, ChangeOrigin>> = Collections.synchronizedList(mutableListOf())
        override fun onOrdersChanged(orderIds: List<String>, origin: ChangeOrigin) {
            seen.add(orderIds to origin)
        }
    }

    class Throws : OrderChangeListener {
        var calls = 0
        override fun onOrdersChanged(orderIds: List<String>, origin: ChangeOrigin) {
            calls++
            throw IllegalStateException("a bug in the app's list screen")
        }
    }

    @Test
    fun changeListenerIsToldAndStopsOnCancelAndAThrowingOneIsContained(): Unit = runBlocking {
        Onsite.open(tempDir()).use { store ->
            val changes = Changes()
            val broken = Throws()
            val sub = store.subscribe(changes)
            val brokenSub = store.subscribe(broken)
            assertTrue(sub.isActive())
            val ids = store.orders().importJson(samples)
            assertEquals(listOf(ids to ChangeOrigin.LOCAL), changes.seen.toList())
            // The throwing listener was called and the edit still went through.
            val d = store.orders().transition(first, TransitionRequest.Accept, null)
            assertEquals(OrderStatus.ACCEPTED, d.status)
            assertEquals(2, broken.calls)
            assertEquals(listOf(first) to ChangeOrigin.LOCAL, changes.seen.last())
            store.orders().addNote(first, "customer asked us to call first")
            assertEquals(3, changes.seen.size)
            // A merged peer document is a remote change.
            val peer = Onsite.open(tempDir())
            peer.orders().mergeDocument(store.orders().documentBytes(first))
            peer.orders().addNote(first, "from the other phone")
            store.orders().mergeDocument(peer.orders().documentBytes(first))
            peer.close()
            assertEquals(listOf(first) to ChangeOrigin.REMOTE, changes.seen.last())
            sub.cancel()
            assertFalse(sub.isActive())
            store.orders().addNote(first, "nobody is listening")
            assertEquals(4, changes.seen.size)
            brokenSub.close()
        }
    }

    @Test
    fun subAreasAnswerClosedAfterTheStoreIsClosed(): Unit = runBlocking {
        val store = Onsite.open(tempDir())
        val orders = store.orders()
        orders.importJson(samples)
        store.close()
        try {
            orders.list(OrderFilter(emptyList(), SortBy.SLA_DEADLINE))
            fail("a closed store answered")
        } catch (e: ApiException.Closed) {
            // The typed case tells the app to open the store again.
        }
    }

    class FixedLocation(private val fix: GpsFix?, private val fail: Boolean) : LocationProvider {
        var calls = 0
        override fun currentFix(): GpsFix? {
            calls++
            if (fail) throw ApiException.NotPermitted("location permission revoked")
            return fix
        }
    }

    @Test
    fun locationProviderFillsMissingFixesAndItsFailuresAreContained(): Unit = runBlocking {
        val here = GpsFix(39.90871, 116.46023, 8.0, LocationSource.FUSED, false)
        val provider = FixedLocation(here, fail = false)
        Onsite.openWithPlatform(tempDir(), null, null, provider).use { store ->
            store.orders().importJson(samples)
            store.orders().transition(first, TransitionRequest.Accept, null)
            val explicit = GpsFix(31.2, 121.4, 3.0, LocationSource.GPS, false)
            val d = store.orders().transition(first, TransitionRequest.Reschedule("customer away", TimeWindow(java.time.Instant.parse("2026-11-24T01:00:00Z"), java.time.Instant.parse("2026-11-24T03:00:00Z"))), explicit)
            assertEquals(here, d.transitions[0].fix)
            assertEquals("the app's own fix wins", explicit, d.transitions[1].fix)
            assertEquals(1, provider.calls)
        }
        val failing = FixedLocation(here, fail = true)
        Onsite.openWithPlatform(tempDir(), null, null, failing).use { store ->
            store.orders().importJson(samples)
            val d = store.orders().transition(first, TransitionRequest.Accept, null)
            assertEquals(OrderStatus.ACCEPTED, d.status)
            assertNull(d.transitions[0].fix)
            assertEquals(1, failing.calls)
        }
    }

    class Lines(private val fail: Boolean) : LogSink {
        val lines: MutableList<LogRecord> = Collections.synchronizedList(mutableListOf())
        override fun log(record: LogRecord) {
            lines.add(record)
            if (fail) throw RuntimeException("logcat is full")
        }
    }

    @Test
    fun logSinkReceivesCoreLinesAndAThrowingSinkIsContained(): Unit = runBlocking {
        val sink = Lines(fail = false)
        setLogSink(sink, LogLevel.INFO)
        try {
            Onsite.open(tempDir()).use { store ->
                store.orders().importJson(samples)
                store.orders().transition(first, TransitionRequest.Accept, null)
                val line = sink.lines.firstOrNull { it.message.startsWith("transition") }
                assertTrue("core lines: ${sink.lines}", line != null)
                assertEquals(LogLevel.INFO, line!!.level)
                assertTrue(line.target, line.target.startsWith("onsite_core"))
                assertTrue(line.message, line.message.contains("order=$first"))
                assertTrue("nothing below INFO", sink.lines.none { it.level == LogLevel.DEBUG || it.level == LogLevel.TRACE })

                val broken = Lines(fail = true)
                setLogSink(broken, LogLevel.TRACE)
                val d = store.orders().transition(first, TransitionRequest.ContactCustomer(TimeWindow(java.time.Instant.parse("2026-11-24T01:00:00Z"), java.time.Instant.parse("2026-11-24T03:00:00Z"))), null)
                assertEquals(OrderStatus.CUSTOMER_CONTACTED, d.status)
                assertTrue(broken.lines.isNotEmpty())
            }
        } finally {
            setLogSink(null, LogLevel.ERROR)
        }
    }

    @Test
    fun cancellingACoroutineStopsAnAsyncCall(): Unit = runBlocking {
        // A server that accepts connections and never answers.
        ServerSocket(0).use { blackHole ->
            Onsite.open(tempDir()).use { store ->
                val started = System.nanoTime()
                try {
                    withTimeout(400) { store.sync().enrol("http://127.0.0.1:${blackHole.localPort}", "AAAA-BBBB-CCCC") }
                    fail("enrolment against a silent server returned")
                } catch (e: TimeoutCancellationException) {
                    val ms = (System.nanoTime() - started) / 1_000_000
                    assertTrue("the coroutine ended ${ms} ms after start", ms < 5_000)
                }
                // The store is still usable, and nothing was enrolled.
                assertFalse(store.sync().state().enrolled)
                assertEquals(3, store.orders().importJson(samples).size)
            }
        }
    }

    @Test
    fun orderScreenIsOneCallWithEverything(): Unit = runBlocking {
        Onsite.open(tempDir()).use { store ->
            store.orders().importJson(samples)
            var screen = store.orders().screen(first)
            assertEquals(first, screen.detail.id)
            assertNull(screen.checklist)
            assertTrue(screen.photos.isEmpty())
            val template = store.checklist().templates().first { it.id == "onsite-repair" }
            store.checklist().start(first, template.id)
            screen = store.orders().screen(first)
            assertEquals(template.id, screen.checklist!!.templateId)
            assertTrue(screen.blockers.isNotEmpty())
            assertTrue(screen.receipts.isEmpty())
            try {
                store.orders().screen("WO-missing")
                fail("a missing order had a screen")
            } catch (e: ApiException.NotFound) {
                assertEquals("WO-missing", e.id)
            }
        }
    }

    /** The platform's key (here a file, as a Keystore-wrapped key would be read). */
    class FileKey(private val file: File, private val bytes: ByteArray? = null) : StoreKeyProvider {
        override fun storeKey(): ByteArray {
            if (bytes != null) return bytes
            if (!file.exists()) file.writeBytes(ByteArray(32) { (it * 7 + 1).toByte() })
            return file.readBytes()
        }
    }

    class LockedKey : StoreKeyProvider {
        override fun storeKey(): ByteArray = throw IllegalStateException("keystore locked before first unlock")
    }

    @Test
    fun anEncryptedStoreOpensThroughTheForeignKeyAndAWrongKeyChangesNothing() {
        val root = File(tempDir())
        val dir = File(root, "data").path
        val key = FileKey(File(root, "wrapped.key"))
        Onsite.openWithPlatform(dir, null, null, null, key).use { it.orders().importJson(samples) }
        val db = File(dir, "onsite.sqlite3")
        val before = db.readBytes()
        assertFalse("no plain SQLite header", String(before.copyOfRange(0, 15)) == "SQLite format 3")
        assertFalse("the customer's name is not in the file", String(before, Charsets.ISO_8859_1).contains("Chaoyang"))
        try {
            Onsite.openWithPlatform(dir, null, null, null, FileKey(File(root, "x"), ByteArray(32) { 9 })).close()
            fail("a wrong key opened the store")
        } catch (e: ApiException.StoreKey) {
            assertEquals(KeyProblem.WRONG, e.problem)
        }
        try {
            Onsite.openWithPlatform(dir, null, null, null, LockedKey()).close()
            fail("a locked keystore opened the store")
        } catch (e: ApiException.StoreKey) {
            assertEquals(KeyProblem.UNAVAILABLE, e.problem)
        }
        assertTrue("the file is untouched", before.contentEquals(db.readBytes()))
        Onsite.openWithPlatform(dir, null, null, null, key).use { assertEquals(3, it.orders().list(OrderFilter(listOf(), SortBy.SLA_DEADLINE)).size) }
    }
}
