// Sync through the boundary against a real onsite-server on loopback (started by scripts/test).
package com.kuaige.onsite.test

import kotlinx.coroutines.runBlocking
import com.kuaige.onsite.*
import java.io.File
import java.net.URI
import java.net.http.HttpClient
import java.net.http.HttpRequest
import java.net.http.HttpResponse
import java.nio.file.Files
import java.time.Instant
import org.junit.Assert.assertEquals
import org.junit.Assert.assertNotNull
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Test

class SyncTest {
    private val samples: String = File(System.getProperty("onsite.samples")).readText()
    private val server: String = System.getProperty("onsite.server")
    private val dispatcher: String = System.getProperty("onsite.dispatcher")
    private val http = HttpClient.newHttpClient()

    private fun dispatch(path: String, body: String): String {
        val req = HttpRequest.newBuilder(URI.create(server + path))
            .header("authorization", "Bearer $dispatcher")
            .header("content-type", "application/json")
            .POST(HttpRequest.BodyPublishers.ofString(body)).build()
        val resp = http.send(req, HttpResponse.BodyHandlers.ofString())
        assertTrue("dispatcher $path: ${resp.statusCode()} ${resp.body()}", resp.statusCode() in 200..299)
        return resp.body()
    }

    private fun get(path: String): String {
        val req = HttpRequest.newBuilder(URI.create(server + path)).header("authorization", "Bearer $dispatcher").GET().build()
        return http.send(req, HttpResponse.BodyHandlers.ofString()).body()
    }

    private fun code(engineer: String): String =
        Regex("\"code\":\"([A-Z0-9-]+)\"").find(dispatch("/v1/enrolment-codes", "{\"engineer_id\":\"$engineer\"}"))!!.groupValues[1]

    class Recorder : SyncProgressListener {
        val phases = mutableListOf<SyncPhase>()
        override fun onProgress(phase: SyncPhase, done: ULong, total: ULong) {
            phases.add(phase)
        }
    }

    class Broken : SyncProgressListener {
        var calls = 0
        override fun onProgress(phase: SyncPhase, done: ULong, total: ULong) {
            calls++
            throw IllegalStateException("a bug in the app's progress bar")
        }
    }

    @Test
    fun enrolReceiveWorkOfflineAndSync(): Unit = runBlocking {
        dispatch("/v1/orders", samples.replace("prov-bj-chaoyang", "prov-ffi").replace("eng-017", "eng-kotlin").replace("WO-20261123", "WO-KT"))
        Onsite.open(Files.createTempDirectory("onsite-kt-sync").toString()).use { store ->
            try {
                store.sync().run(null)
                fail("synced without enrolment")
            } catch (e: ApiException.Unauthorized) {
            }
            try {
                store.sync().enrol(server, "AAAA-BBBB-CCCC")
                fail("a made-up code enrolled the device")
            } catch (e: ApiException.Unauthorized) {
            }
            val enrolment = store.sync().enrol(server, code("eng-kotlin"))
            assertEquals("prov-ffi", enrolment.provider)
            assertEquals("eng-kotlin", enrolment.engineerId)

            val progress = Recorder()
            val first = store.sync().run(progress)
            assertEquals(3uL, first.ordersPulled)
            assertTrue(first.changedOrders.containsAll(listOf("WO-KT-0001", "WO-KT-0002", "WO-KT-0003")))
            assertTrue(progress.phases.contains(SyncPhase.ORDERS))
            assertEquals(3, store.orders().list(OrderFilter(emptyList(), SortBy.SLA_DEADLINE)).size)

            // Offline work, then a sync whose progress listener throws every time.
            val id = "WO-KT-0001"
            val w = TimeWindow(Instant.now().plusSeconds(60), Instant.now().plusSeconds(3600))
            listOf(TransitionRequest.Accept, TransitionRequest.ContactCustomer(w)).forEach { store.orders().transition(id, it, null) }
            store.orders().addNote(id, "从 Kotlin 写的备注 / written from Kotlin")
            assertEquals(1uL, store.sync().state().pendingOrders)
            val broken = Broken()
            val second = store.sync().run(broken)
            assertTrue("the listener was called", broken.calls > 0)
            assertEquals(1uL, second.ordersPushed)
            assertTrue(second.pendingErrors.isEmpty())
            val state = store.sync().state()
            assertEquals(0uL, state.pendingOrders)
            assertEquals(0uL, state.pendingJournal)
            assertNotNull(state.lastSuccess)
            val onServer = get("/v1/orders/$id")
            assertTrue(onServer, onServer.contains("\"status\":\"customer_contacted\""))
            assertTrue(onServer.contains("written from Kotlin"))

            // The dispatcher's edit arrives on the next sync.
            dispatch("/v1/orders/WO-KT-0002/priority", "{\"priority\":\"low\"}")
            val third = store.sync().run(null)
            assertEquals(listOf("WO-KT-0002"), third.changedOrders)
            assertEquals(Priority.LOW, store.orders().get("WO-KT-0002").priority)
            assertTrue(store.orders().conflicts(id).isEmpty())
        }
    }

    @Test
    fun unreachableServerIsANetworkError(): Unit = runBlocking {
        Onsite.open(Files.createTempDirectory("onsite-kt-sync").toString()).use { store ->
            try {
                store.sync().enrol("http://127.0.0.1:1", "AAAA-BBBB-CCCC")
                fail("enrolled against a closed port")
            } catch (e: ApiException.Network) {
                assertTrue(e.reason.isNotEmpty())
            }
        }
    }
}
