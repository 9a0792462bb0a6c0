//! What the sync engine needs from the store: which orders have unsent edits and the
//! changes to send, applying the server's changes, rebasing a refused order, the photo
//! outbox and the journal upload window. Every write is one transaction.

use automerge::{AutoCommit, ChangeHash};
use rusqlite::{params, OptionalExtension, TransactionBehavior};

use super::documents::{append_chunk, hydrate_order, merge_draft};
use super::outgoing::{forget_push_mark, push_mark, set_push_mark};
use super::summary::{write_summary, OrderSummary};
use super::{doc_error, Error, Stamp, Store};
use crate::evidence::journal::{Draft, JournalKind};
use crate::evidence::Entry;
use crate::order::WorkOrder;

/// Marks an order as having unsent local edits (in the edit's transaction).
pub(crate) fn mark_dirty(tx: &rusqlite::Transaction<'_>, id: &str) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO sync_docs (order_id, dirty, gen) VALUES (?1, 1, 1) \
         ON CONFLICT (order_id) DO UPDATE SET dirty = 1, gen = gen + 1",
    )?
    .execute([id])?;
    Ok(())
}

pub fn heads_to_bytes(heads: &[ChangeHash]) -> Vec<u8> {
    heads.iter().flat_map(|h| h.0).collect()
}

pub fn heads_from_bytes(bytes: &[u8]) -> Vec<ChangeHash> {
    bytes.chunks_exact(32).filter_map(|c| <[u8; 32]>::try_from(c).ok().map(ChangeHash)).collect()
}

/// An order with local edits the server has not acknowledged.
#[derive(Debug, Clone)]
pub struct PendingDoc {
    pub id: String,
    pub gen: i64,
    pub synced_heads: Vec<ChangeHash>,
}

/// Where an order stands with the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocState {
    Active,
    /// Reassigned or withdrawn: kept locally, no longer synced.
    Removed,
    /// Created on this device and unknown to the server (never sent again).
    LocalOnly,
}

impl DocState {
    fn as_str(self) -> &'static str {
        match self {
            DocState::Active => "active",
            DocState::Removed => "removed",
            DocState::LocalOnly => "local_only",
        }
    }
}

/// A photo waiting for upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxBlob {
    pub sha256: String,
    pub size: u64,
    pub attempts: u32,
}

/// Counts for the sync status screen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncCounts {
    pub pending_orders: u64,
    pub pending_blobs: u64,
    pub pending_journal: u64,
    pub removed_orders: u64,
    /// Photos that failed permanently, with the reason.
    pub wedged_blobs: Vec<(String, String)>,
}

/// A signed receipt row as uploaded.
#[derive(Debug, Clone)]
pub struct ReceiptRow {
    pub order_id: String,
    pub revision: u32,
    pub canonical: Vec<u8>,
    pub strokes: Option<Vec<u8>>,
    pub message: Vec<u8>,
    pub signature: Vec<u8>,
    pub journal_seq: u64,
}

/// An inclusion proof the server returned, as stored (JSON).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredProof {
    pub seq: u64,
    pub json: String,
}

impl Store {
    pub fn pending_docs(&self) -> Result<Vec<PendingDoc>, Error> {
        // From here on, an edit of these orders must bump `gen` again.
        self.writer().dirty.clear();
        let conn = self.reader();
        let mut st = conn.prepare_cached("SELECT order_id, gen, synced_heads FROM sync_docs WHERE dirty = 1 AND state = 'active' ORDER BY order_id")?;
        let rows = st.query_map([], |r| Ok(PendingDoc { id: r.get(0)?, gen: r.get(1)?, synced_heads: heads_from_bytes(&r.get::<_, Vec<u8>>(2)?) }))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Forgets what the server has of `id`, so the next push sends the whole document.
    pub fn forget_synced(&self, id: &str) -> Result<(), Error> {
        let w = self.writer();
        w.conn.execute("UPDATE sync_docs SET synced_heads = x'', dirty = 1, gen = gen + 1 WHERE order_id = ?1", [id])?;
        forget_push_mark(&w.conn, id)?;
        Ok(())
    }

    pub fn set_doc_state(&self, id: &str, state: DocState, reason: Option<&str>) -> Result<(), Error> {
        let w = self.writer();
        w.conn.execute(
            "INSERT INTO sync_docs (order_id, dirty, state, reason) VALUES (?1, 0, ?2, ?3) \
             ON CONFLICT (order_id) DO UPDATE SET state = ?2, reason = ?3",
            params![id, state.as_str(), reason],
        )?;
        Ok(())
    }

    pub fn doc_state(&self, id: &str) -> Result<Option<(DocState, Option<String>)>, Error> {
        let conn = self.reader();
        let row: Option<(String, Option<String>)> =
            conn.query_row("SELECT state, reason FROM sync_docs WHERE order_id = ?1", [id], |r| Ok((r.get(0)?, r.get(1)?))).optional()?;
        Ok(row.map(|(s, r)| {
            let s = match s.as_str() {
                "removed" => DocState::Removed,
                "local_only" => DocState::LocalOnly,
                _ => DocState::Active,
            };
            (s, r)
        }))
    }

    /// Applies the server's changes (or whole document) for `id`. Returns the merged order
    /// when anything changed. The server's changes become part of the synced state.
    pub fn apply_remote(&self, id: &str, bytes: &[u8], summarize: impl FnOnce(&WorkOrder) -> OrderSummary, stamp: Stamp) -> Result<Option<WorkOrder>, Error> {
        let mut w = self.writer();
        let w = &mut *w;
        let exists: bool = w.conn.query_row("SELECT EXISTS (SELECT 1 FROM orders WHERE id = ?1)", [id], |r| r.get(0))?;
        if !exists {
            let mut doc = AutoCommit::load(bytes).map_err(|e| doc_error(id, e))?.with_actor(self.actor.clone());
            if !doc.get_missing_deps(&[]).is_empty() {
                return Err(doc_error(id, "the server sent changes without their history"));
            }
            let order = hydrate_order(id, &doc)?;
            if order.id != id {
                return Err(doc_error(id, format!("the server sent order `{}` under this id", order.id)));
            }
            let snapshot = doc.save();
            let heads = doc.get_heads();
            let tx = w.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            write_summary(&tx, None, &summarize(&order))?;
            tx.execute("INSERT INTO order_docs (order_id, snapshot) VALUES (?1, ?2)", params![id, snapshot])?;
            tx.execute(
                "INSERT INTO sync_docs (order_id, synced_heads, dirty, state, pushed_seq) VALUES (?1, ?2, 0, 'active', 0) \
                 ON CONFLICT (order_id) DO UPDATE SET synced_heads = ?2, dirty = 0, state = 'active', reason = NULL, \
                 pushed_seq = 0, epoch = epoch + 1",
                params![id, heads_to_bytes(&heads)],
            )?;
            let draft = merge_draft(id, &mut doc, true);
            let head = self.journal_tx(&tx, &mut w.head, stamp, &[draft])?;
            tx.commit()?;
            w.head = Some(head);
            return Ok(Some(order));
        }
        w.cache.remove(id);
        let (doc, layout) = self.load_doc(&w.conn, id)?;
        let mut doc = doc.with_actor(self.actor.clone());
        let before = doc.get_heads();
        doc.load_incremental(bytes).map_err(|e| doc_error(id, e))?;
        if !doc.get_missing_deps(&[]).is_empty() {
            return Err(Error::MissingHistory { id: id.to_string() });
        }
        let after = doc.get_heads();
        if after == before {
            // Nothing new, but the server sends only orders in this engineer's scope: one that
            // was removed (reassigned away) and came back is active again.
            let back = w.conn.execute("UPDATE sync_docs SET state = 'active', reason = NULL WHERE order_id = ?1 AND state = 'removed'", [id])?;
            return (back > 0).then(|| hydrate_order(id, &doc)).transpose();
        }
        let merged = hydrate_order(id, &doc)?;
        if merged.id != id {
            return Err(doc_error(id, "the merged document changed its id"));
        }
        let (dirty, synced): (bool, Vec<u8>) = w
            .conn
            .query_row("SELECT dirty, synced_heads FROM sync_docs WHERE order_id = ?1", [id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?
            .unwrap_or((false, Vec::new()));
        let synced = if dirty {
            // The server has what it had plus what it just sent: the heads of the new changes.
            let new = doc.get_changes(&before);
            let deps: std::collections::HashSet<ChangeHash> = new.iter().flat_map(|c| c.deps().to_vec()).collect();
            let mut s = heads_from_bytes(&synced);
            s.retain(|h| !deps.contains(h));
            s.extend(new.iter().map(|c| c.hash()).filter(|h| !deps.contains(h)));
            s
        } else {
            after
        };
        let chunk = doc.save_after(&before);
        let tx = w.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let all_on_server = !dirty || push_mark(&tx, id)? == Some(layout.last_seq);
        write_summary(&tx, None, &summarize(&merged))?;
        let stored = append_chunk(&tx, id, &chunk, &mut doc, layout, merged.status.is_terminal())?;
        tx.execute(
            "INSERT INTO sync_docs (order_id, synced_heads, dirty) VALUES (?1, ?2, 0) \
             ON CONFLICT (order_id) DO UPDATE SET synced_heads = ?2, state = 'active', reason = NULL",
            params![id, heads_to_bytes(&synced)],
        )?;
        // The server has what it sent: when it had everything stored before (no local edit
        // unsent, or the mark on the last chunk), it has everything stored now.
        if all_on_server {
            set_push_mark(&tx, id, stored.last_seq)?;
        }
        let draft = merge_draft(id, &mut doc, false);
        let head = self.journal_tx(&tx, &mut w.head, stamp, &[draft])?;
        tx.commit()?;
        w.head = Some(head);
        Ok(Some(merged))
    }

    /// Replaces the document of `id` by the server's, plus `rebuild(server, local)` written
    /// on top as new local changes (the recovery from a refused push). Journaled as
    /// `sync_reset` with the local heads that were dropped.
    pub fn rebase_on_server(
        &self,
        id: &str,
        server_doc: &[u8],
        reason: &str,
        rebuild: impl FnOnce(&WorkOrder, &WorkOrder) -> WorkOrder,
        summarize: impl FnOnce(&WorkOrder) -> OrderSummary,
        stamp: Stamp,
    ) -> Result<WorkOrder, Error> {
        let mut w = self.writer();
        let w = &mut *w;
        w.cache.remove(id);
        let (mut local_doc, _) = self.load_doc(&w.conn, id)?;
        let local = hydrate_order(id, &local_doc)?;
        let mut doc = AutoCommit::load(server_doc).map_err(|e| doc_error(id, e))?.with_actor(self.actor.clone());
        let server = hydrate_order(id, &doc)?;
        if server.id != id {
            return Err(doc_error(id, "the server's document is another order"));
        }
        let server_heads = doc.get_heads();
        let rebuilt = rebuild(&server, &local);
        autosurgeon::reconcile(&mut doc, &rebuilt).map_err(|e| doc_error(id, e))?;
        crate::order::document::commit(&mut doc, JournalKind::SyncReset.as_str(), stamp.at_ms);
        let merged = hydrate_order(id, &doc)?;
        let snapshot = doc.save();
        let dropped: Vec<String> = local_doc.get_heads().iter().map(|h| h.to_string()).collect();
        let tx = w.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        write_summary(&tx, None, &summarize(&merged))?;
        tx.execute("DELETE FROM order_changes WHERE order_id = ?1", [id])?;
        tx.execute("UPDATE order_docs SET snapshot = ?2 WHERE order_id = ?1", params![id, snapshot])?;
        tx.execute(
            "UPDATE sync_docs SET synced_heads = ?2, dirty = 1, gen = gen + 1, state = 'active', reason = NULL WHERE order_id = ?1",
            params![id, heads_to_bytes(&server_heads)],
        )?;
        forget_push_mark(&tx, id)?;
        let draft = Draft::new(JournalKind::SyncReset, Some(id), serde_json::json!({ "reason": reason, "dropped_heads": dropped }));
        let head = self.journal_tx(&tx, &mut w.head, stamp, &[draft])?;
        tx.commit()?;
        w.head = Some(head);
        Ok(merged)
    }

    // ----- photo outbox -----

    pub fn pending_blobs(&self, now_ms: i64) -> Result<Vec<OutboxBlob>, Error> {
        let conn = self.reader();
        let mut st = conn.prepare_cached(
            "SELECT sha256, size, attempts FROM outbox_blobs WHERE done_at IS NULL AND wedged = 0 AND next_attempt_at <= ?1 ORDER BY enqueued_at, sha256",
        )?;
        let rows = st.query_map([now_ms], |r| Ok(OutboxBlob { sha256: r.get(0)?, size: r.get::<_, i64>(1)? as u64, attempts: r.get(2)? }))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn blob_uploaded(&self, sha256: &str, at_ms: i64) -> Result<(), Error> {
        let w = self.writer();
        w.conn.execute("UPDATE outbox_blobs SET done_at = ?2, last_error = NULL WHERE sha256 = ?1", params![sha256, at_ms])?;
        Ok(())
    }

    /// Records a failed attempt: retried after `next_attempt_at`, or never again when `wedged`.
    pub fn blob_failed(&self, sha256: &str, error: &str, next_attempt_at: i64, wedged: bool) -> Result<(), Error> {
        let w = self.writer();
        w.conn.execute(
            "UPDATE outbox_blobs SET attempts = attempts + 1, last_error = ?2, next_attempt_at = ?3, wedged = ?4 WHERE sha256 = ?1",
            params![sha256, error, next_attempt_at, wedged],
        )?;
        Ok(())
    }

    /// Puts wedged photos back in the queue (after the cause was fixed).
    pub fn retry_wedged(&self) -> Result<usize, Error> {
        let w = self.writer();
        Ok(w.conn.execute("UPDATE outbox_blobs SET wedged = 0, attempts = 0, next_attempt_at = 0 WHERE wedged = 1 AND done_at IS NULL", [])?)
    }

    pub fn sync_counts(&self, journal_acked: u64) -> Result<SyncCounts, Error> {
        let conn = self.reader();
        let pending_orders: i64 = conn.query_row("SELECT count(*) FROM sync_docs WHERE dirty = 1 AND state = 'active'", [], |r| r.get(0))?;
        let removed: i64 = conn.query_row("SELECT count(*) FROM sync_docs WHERE state = 'removed'", [], |r| r.get(0))?;
        let pending_blobs: i64 = conn.query_row("SELECT count(*) FROM outbox_blobs WHERE done_at IS NULL AND wedged = 0", [], |r| r.get(0))?;
        let last: i64 = conn.query_row("SELECT coalesce(max(seq), 0) FROM journal", [], |r| r.get(0))?;
        let mut st = conn.prepare_cached("SELECT sha256, coalesce(last_error, '') FROM outbox_blobs WHERE wedged = 1 AND done_at IS NULL ORDER BY sha256")?;
        let wedged = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<_, _>>()?;
        Ok(SyncCounts {
            pending_orders: pending_orders as u64,
            pending_blobs: pending_blobs as u64,
            pending_journal: (last as u64).saturating_sub(journal_acked),
            removed_orders: removed as u64,
            wedged_blobs: wedged,
        })
    }

    // ----- journal upload -----

    /// Journal entries after `seq`, at most `limit`.
    pub fn journal_after(&self, seq: u64, limit: usize) -> Result<Vec<Entry>, Error> {
        let conn = self.reader();
        let mut st = conn.prepare_cached("SELECT seq, body, hash, signature FROM journal WHERE seq > ?1 ORDER BY seq LIMIT ?2")?;
        let rows = st.query_map(params![seq as i64, limit as i64], |r| {
            Ok(Entry { seq: r.get::<_, i64>(0)? as u64, body: r.get(1)?, hash: r.get(2)?, signature: r.get(3)? })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Up to about `limit` entries after `seq`, ending at a signed entry (the server takes
    /// only entries a signature covers): cut back to the batch's last signed entry, or
    /// carried on to the next one when the batch has none. Empty when nothing signed
    /// follows `seq` yet.
    pub fn journal_after_sealed(&self, seq: u64, limit: usize) -> Result<Vec<Entry>, Error> {
        let mut entries = self.journal_after(seq, limit)?;
        match entries.iter().rposition(|e| e.is_signed()) {
            Some(i) => entries.truncate(i + 1),
            None => {
                let conn = self.reader();
                let next: Option<i64> = conn.query_row("SELECT MIN(seq) FROM journal WHERE seq > ?1 AND length(signature) > 0", [seq as i64], |r| r.get(0))?;
                drop(conn);
                entries = match next {
                    Some(n) => self.journal_after(seq, (n as u64 - seq) as usize)?,
                    None => Vec::new(),
                };
            }
        }
        Ok(entries)
    }

    /// The order's latest entry before `before`: its seq and hash.
    pub fn order_entry_before(&self, order: &str, before: u64) -> Result<Option<(u64, String)>, Error> {
        let conn = self.reader();
        let mut st = conn.prepare_cached("SELECT seq, hash FROM journal WHERE order_id = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT 1")?;
        Ok(st.query_row(params![order, before as i64], |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, String>(1)?))).optional()?)
    }

    /// Receipts signed by journal entries in `(after, upto]`.
    pub fn receipts_in(&self, after: u64, upto: u64) -> Result<Vec<ReceiptRow>, Error> {
        let conn = self.reader();
        let mut st = conn.prepare_cached(
            "SELECT order_id, revision, canonical, strokes, message, signature, journal_seq FROM receipts \
             WHERE journal_seq > ?1 AND journal_seq <= ?2 ORDER BY journal_seq",
        )?;
        let rows = st.query_map(params![after as i64, upto as i64], |r| {
            Ok(ReceiptRow {
                order_id: r.get(0)?,
                revision: r.get(1)?,
                canonical: r.get(2)?,
                strokes: r.get(3)?,
                message: r.get(4)?,
                signature: r.get(5)?,
                journal_seq: r.get::<_, i64>(6)? as u64,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn save_proof(&self, seq: u64, proof_json: &str) -> Result<(), Error> {
        let w = self.writer();
        w.conn.execute("INSERT OR REPLACE INTO log_proofs (seq, proof) VALUES (?1, ?2)", params![seq as i64, proof_json])?;
        Ok(())
    }

    pub fn proofs(&self) -> Result<Vec<StoredProof>, Error> {
        let conn = self.reader();
        let mut st = conn.prepare_cached("SELECT seq, proof FROM log_proofs ORDER BY seq")?;
        let rows = st.query_map([], |r| Ok(StoredProof { seq: r.get::<_, i64>(0)? as u64, json: r.get(1)? }))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
