// JUnit 4 tests of the generated Kotlin bindings against the real libonsite_ffi.so.
package com.kuaige.onsite.test

import com.kuaige.onsite.*
import java.io.File
import java.nio.file.Files
import java.time.Duration
import java.time.Instant
import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertNotEquals
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Test

class OnsiteStoreTest {
    private val samples: String = File(System.getProperty("onsite.samples")).readText()

    private fun tempDir(): String = Files.createTempDirectory("onsite-kt").toString()

    private fun all() = OrderFilter(statuses = emptyList(), sort = SortBy.SLA_DEADLINE)

    @Test
    fun createListTransition() {
        OnsiteStore.open(tempDir()).use { store ->
            val ids = store.importOrders(samples)
            assertEquals(listOf("WO-20261123-0001", "WO-20261123-0002", "WO-20261123-0003"), ids)
            val rows = store.listOrders(all())
            assertEquals(3, rows.size)
            assertEquals(Priority.URGENT, rows[0].priority)
            assertTrue(rows.all { it.status == OrderStatus.ASSIGNED })

            val id = ids[0]
            val fix = GpsFix(39.90871, 116.46023, 6.5, LocationSource.GPS, false)
            var d = store.transition(id, TransitionRequest.Accept, null)
            assertEquals(OrderStatus.ACCEPTED, d.status)
            assertEquals(listOf("contact_customer", "reschedule"), d.nextEvents)
            val start = Instant.parse("2026-11-23T03:00:00.123Z")
            val window = TimeWindow(start, start.plus(Duration.ofHours(2)))
            d = store.transition(id, TransitionRequest.ContactCustomer(window), null)
            d = store.transition(id, TransitionRequest.Depart, null)
            d = store.transition(id, TransitionRequest.Arrive, fix)
            assertEquals(OrderStatus.ON_SITE, d.status)
            assertEquals(window, d.appointment)
            assertEquals(fix, d.transitions.last().fix)
            assertEquals(4, d.transitions.size)

            val onSite = store.listOrders(OrderFilter(listOf(OrderStatus.ON_SITE), SortBy.UPDATED))
            assertEquals(listOf(id), onSite.map { it.id })
        }
    }

    @Test
    fun illegalTransitionIsATypedException() {
        OnsiteStore.open(tempDir()).use { store ->
            store.importOrders(samples)
            try {
                store.transition("WO-20261123-0001", TransitionRequest.Complete, null)
                fail("an illegal transition was accepted")
            } catch (e: ApiException.IllegalTransition) {
                assertEquals(OrderStatus.ASSIGNED, e.from)
                assertEquals("complete", e.event)
            }
            try {
                store.transition("WO-20261123-0001", TransitionRequest.Cancel("duplicate"), null)
                fail("an engineer cancelled")
            } catch (e: ApiException.NotPermitted) {
                assertTrue(e.reason.contains("cancel"))
            }
            try {
                store.getOrder("WO-missing")
                fail("found a missing order")
            } catch (e: ApiException.NotFound) {
                assertEquals("WO-missing", e.id)
            }
            try {
                store.importOrders(samples.replace("\"lat\": 39.9834", "\"lat\": \"north\""))
                fail("imported malformed JSON")
            } catch (e: ApiException.InvalidInput) {
                assertEquals("[1].site.lat", e.field)
            }
            // Nothing of the refused transition or import was written.
            assertEquals(OrderStatus.ASSIGNED, store.getOrder("WO-20261123-0001").status)
            assertEquals(3, store.listOrders(all()).size)
        }
    }

    @Test
    fun bytesAndTimesRoundTrip() {
        val a = OnsiteStore.open(tempDir())
        val b = OnsiteStore.open(tempDir())
        assertNotEquals(a.deviceId(), b.deviceId())
        a.importOrders(samples)
        // Before the epoch, to the millisecond. (uniffi's Instant encoding loses the sign of
        // times less than one second before the epoch; real orders never get near 1970.)
        val at = Instant.parse("1969-07-20T20:17:40.250Z")
        val window = TimeWindow(at, at.plusMillis(1))
        a.transition("WO-20261123-0002", TransitionRequest.Accept, null)
        a.transition("WO-20261123-0002", TransitionRequest.ContactCustomer(window), null)
        val bytes = a.documentBytes("WO-20261123-0002")
        assertTrue(bytes.size > 100)
        val merged = b.mergeDocument(bytes)
        assertEquals(a.getOrder("WO-20261123-0002"), merged)
        assertEquals(window, merged.appointment)
        assertArrayEquals(bytes, a.documentBytes("WO-20261123-0002"))
        b.addNote("WO-20261123-0002", "客户不在 / customer out, waiting")
        val back = a.mergeDocument(b.documentBytes("WO-20261123-0002"))
        assertEquals("客户不在 / customer out, waiting", back.notes.single().text)
        try {
            a.mergeDocument(byteArrayOf(1, 2, 3))
            fail("merged garbage")
        } catch (e: ApiException.InvalidInput) {
            assertEquals("document", e.field)
        }
        a.destroy()
        b.destroy()
    }

    @Test
    fun newerDatabaseAndBadPathsAreRefused() {
        val dir = tempDir()
        OnsiteStore.open(dir).use { it.importOrders(samples) }
        val db = File(dir, "onsite.sqlite3")
        val bytes = db.readBytes()
        bytes[60] = 0; bytes[61] = 0; bytes[62] = 3; bytes[63] = -25 // user_version 999
        db.writeBytes(bytes)
        try {
            OnsiteStore.open(dir)
            fail("opened a database from a newer app")
        } catch (e: ApiException.DatabaseTooNew) {
            assertEquals(999u, e.found)
        }
        val plainFile = File(tempDir(), "file").apply { writeText("x") }
        try {
            OnsiteStore.open(File(plainFile, "sub").path)
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
    fun foreignClockIsUsedAndItsFailuresAreContained() {
        val at = Instant.parse("2026-11-23T01:30:00Z")
        val clock = TestClock(at, failEvery = 0)
        OnsiteStore.openWithClock(tempDir(), clock).use { store ->
            store.importOrders(samples)
            val d = store.transition("WO-20261123-0001", TransitionRequest.Accept, null)
            assertEquals(at, d.transitions.single().at)
            assertTrue(clock.calls > 0)
        }
        val flaky = TestClock(at, failEvery = 2)
        OnsiteStore.openWithClock(tempDir(), flaky).use { store ->
            store.importOrders(samples)
            repeat(5) { store.addNote("WO-20261123-0001", "note $it") }
            assertEquals(5, store.getOrder("WO-20261123-0001").notes.size)
        }
    }
}
