// Spare parts, expert help and the service record through the boundary.
package com.kuaige.onsite.test

import com.kuaige.onsite.*
import java.io.File
import java.nio.file.Files
import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Test

class FieldTest {
    private val samples: String = File(System.getProperty("onsite.samples")).readText()
    private fun tempDir() = Files.createTempDirectory("onsite-kt-field")

    private fun move(kind: PartMovementKind, part: String, serial: String?, qty: UInt, order: String?) =
        PartMovementRequest(kind, part, serial, qty, order, null, "")

    @Test
    fun borrowRuleAndStockAreTypedErrors() {
        Onsite.open(tempDir().toString()).use { store ->
            val ids = store.orders().importJson(samples)
            val parts = store.parts()
            assertEquals(BorrowRule.Strict, parts.policy())
            val m = parts.record(move(PartMovementKind.BORROW, "FRU-5B20W77543", "SN-1", 1u, ids[0]))
            assertEquals(PartMovementKind.BORROW, m.kind)
            try {
                parts.record(move(PartMovementKind.BORROW, "FRU-X", "SN-2", 1u, ids[1]))
                fail("borrowed before returning")
            } catch (e: ApiException.PartsOutstanding) {
                assertEquals(1u, e.count)
                assertTrue(e.first, e.first.contains("SN-1"))
            }
            try {
                parts.record(move(PartMovementKind.INSTALL, "PAD", null, 3u, ids[0]))
                fail("installed parts never borrowed")
            } catch (e: ApiException.Conflict) {
            }
            try {
                parts.record(move(PartMovementKind.CLERK_ISSUE, "PAD", null, 1u, ids[0]))
                fail("a device wrote a clerk record")
            } catch (e: ApiException.InvalidInput) {
                assertEquals("kind", e.field)
            }
            parts.setPolicy(BorrowRule.Tolerance(1u))
            parts.record(move(PartMovementKind.BORROW, "FRU-X", "SN-2", 1u, ids[1]))
            val ledger = parts.ledger()
            assertEquals(2, ledger.held.size)
            assertEquals(BorrowRule.Tolerance(1u), ledger.policy)
            val owed = parts.closeout(ids[0])
            assertFalse(owed.clear)
            assertEquals(1u, store.orders().screen(ids[0]).partsOwed)
            assertEquals(2, parts.movements().size)
        }
    }

    @Test
    fun helpIsQueuedOfflineAndShownOnTheOrderScreen() {
        Onsite.open(tempDir().toString()).use { store ->
            val id = store.orders().importJson(samples)[0]
            try {
                store.help().ask(id, HelpQuestion(" ", null, emptyList(), false, false))
                fail("an empty question was accepted")
            } catch (e: ApiException.InvalidInput) {
                assertEquals("question", e.field)
            }
            val r = store.help().ask(id, HelpQuestion("Which connector feeds the panel?", null, emptyList(), true, false))
            val threads = store.help().threads(id)
            assertEquals(r.id, threads.single().request.id)
            assertFalse("not sent while offline", threads.single().sent)
            assertTrue(threads.single().answers.isEmpty())
            assertEquals(1, store.orders().screen(id).help.size)
            assertTrue(store.help().costs().isEmpty())
        }
    }

    @Test
    fun serviceRecordExportsAndVerifies() {
        val dir = tempDir()
        Onsite.open(dir.toString()).use { store ->
            store.orders().importJson(samples)
            val summary = store.profile().summary()
            assertEquals(0u, summary.orders)
            val path = dir.resolve("record.json").toString()
            assertEquals(0u, store.profile().export(path))
            val ok = verifyServiceRecord(path, store.publicKey(), null)
            assertTrue(ok.text, ok.ok)
            val wrongKey = verifyServiceRecord(path, ByteArray(65) { 4 }, null)
            assertFalse(wrongKey.ok)
            val genuine = File(path).readText()
            val inflated = genuine.replace("\"orders\":0", "\"orders\":12")
            assertTrue("the record names its order count", inflated != genuine)
            File(path).writeText(inflated)
            assertFalse("inflated", verifyServiceRecord(path, null, null).ok)
            assertFalse(verifyServiceRecord(dir.resolve("missing.json").toString(), null, null).ok)
        }
    }
}
