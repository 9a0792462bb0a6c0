//! Order documents in the store: create, edit (targeted autosurgeon writes, one chunk per
//! edit, compaction in the same transaction), merge a peer's document, read. The summary
//! row and the journal entry of each write commit in the same SQLite transaction.

use std::collections::HashMap;

use automerge::{AutoCommit, ReadDoc, ROOT};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::summary::{read_summary, write_summary, OrderSummary};
use super::{doc_error, load_head, outgoing, sync_store, Error, Stamp, Store, COMPACT_CHUNKS, COMPACT_KEEP_UNSENT, COMPACT_MIN_BYTES};
use crate::evidence::journal::{self, Draft, JournalKind};
use crate::order::{document, WorkOrder};

const CACHE_DOCS: usize = 64;

/// A top-level field an edit changed, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Status,
    Appointment,
    /// The last element of `transitions` is new.
    AppendTransition,
    /// The last element of `notes` is new.
    AppendNote,
    /// `checklist.template` was set.
    ChecklistTemplate,
    /// The last element of `checklist.answers` is new.
    AppendAnswer,
    /// The last element of `receipts` is new.
    AppendReceipt,
    /// The last element of `help` is new.
    AppendHelp,
}

/// Where an order's document stands on disk: what compaction decides on.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Layout {
    pub(super) snapshot_len: i64,
    /// Highest `seq` in `order_changes` (0 when there are none).
    pub(super) last_seq: i64,
    pub(super) chunks: i64,
    pub(super) chunk_bytes: i64,
}

pub(super) struct Cached {
    pub(super) doc: AutoCommit,
    pub(super) order: WorkOrder,
    pub(super) layout: Layout,
    /// The summary row as last written.
    pub(super) summary: OrderSummary,
    pub(super) used: u64,
    /// The ids of the lists edits append to, found once per cached document (a lookup on a
    /// root with a long history is a seek each time). Only edits change a cached document;
    /// merges drop the entry.
    pub(super) lists: ListIds,
}

/// List objects by their path in the document ("notes", "checklist.answers").
pub(super) type ListIds = std::collections::HashMap<&'static str, automerge::ObjId>;

/// Peer documents: transitions by any device, completion on a receipt the document carries.
const PEER_RULE: crate::sync::authz::LifecycleRule<'static> = crate::sync::authz::LifecycleRule { author: None, delivered_receipts: None };

pub(super) fn hydrate_order(id: &str, doc: &AutoCommit) -> Result<WorkOrder, Error> {
    document::hydrate(doc).map_err(|e| doc_error(id, e))
}

/// An order's Automerge document with its hydrated order.
pub struct OrderDocument {
    doc: AutoCommit,
    pub order: WorkOrder,
}

impl OrderDocument {
    /// The fields whose concurrent values a merge resolved.
    pub fn conflicts(&self) -> Result<Vec<document::FieldConflict>, Error> {
        document::conflicts(&self.doc).map_err(|e| doc_error(&self.order.id, e))
    }
}

fn write_field(doc: &mut AutoCommit, lists: &mut ListIds, order: &WorkOrder, change: Change) -> Result<(), autosurgeon::ReconcileError> {
    match change {
        Change::Status => autosurgeon::reconcile_prop(doc, ROOT, "status", order.status),
        Change::Appointment => autosurgeon::reconcile_prop(doc, ROOT, "appointment", order.appointment),
        Change::AppendTransition => append(doc, lists, "transitions", order.transitions.last()),
        Change::AppendNote => append(doc, lists, "notes", order.notes.last()),
        Change::ChecklistTemplate => {
            let checklist = object(doc, &ROOT, "checklist", automerge::ObjType::Map)?;
            // A new template may come with a new answers list: look it up again.
            lists.remove("checklist.answers");
            autosurgeon::reconcile_prop(doc, checklist, "template", &order.checklist.template)
        }
        Change::AppendAnswer => append(doc, lists, "checklist.answers", order.checklist.answers.last()),
        Change::AppendReceipt => {
            // Documents created before receipts existed have no list yet.
            if doc.get(&ROOT, "receipts")?.is_none() {
                let id = automerge::transaction::Transactable::put_object(doc, &ROOT, "receipts", automerge::ObjType::List)?;
                lists.insert("receipts", id);
            }
            append(doc, lists, "receipts", order.receipts.last())
        }
        Change::AppendHelp => {
            if doc.get(&ROOT, "help")?.is_none() {
                let id = automerge::transaction::Transactable::put_object(doc, &ROOT, "help", automerge::ObjType::List)?;
                lists.insert("help", id);
            }
            append(doc, lists, "help", order.help.last())
        }
    }
}

fn object(doc: &AutoCommit, parent: &automerge::ObjId, key: &str, ty: automerge::ObjType) -> Result<automerge::ObjId, autosurgeon::ReconcileError> {
    match doc.get(parent, key)? {
        Some((automerge::Value::Object(t), id)) if t == ty => Ok(id),
        _ => Err(autosurgeon::ReconcileError::Automerge(automerge::AutomergeError::InvalidOp(ty))),
    }
}

/// The list at `path` (a root key, or `checklist.answers`), looked up once per cached document.
fn list_id(doc: &AutoCommit, lists: &mut ListIds, path: &'static str) -> Result<automerge::ObjId, autosurgeon::ReconcileError> {
    if let Some(id) = lists.get(path) {
        return Ok(id.clone());
    }
    let id = match path.split_once('.') {
        Some((parent, key)) => {
            let parent = object(doc, &ROOT, parent, automerge::ObjType::Map)?;
            object(doc, &parent, key, automerge::ObjType::List)?
        }
        None => object(doc, &ROOT, path, automerge::ObjType::List)?,
    };
    lists.insert(path, id.clone());
    Ok(id)
}

fn append<T: autosurgeon::Reconcile>(
    doc: &mut AutoCommit,
    lists: &mut ListIds,
    path: &'static str,
    item: Option<&T>,
) -> Result<(), autosurgeon::ReconcileError> {
    let Some(item) = item else { return Ok(()) };
    let list = list_id(doc, lists, path)?;
    let len = doc.length(&list);
    autosurgeon::reconcile_insert(doc, list, len, item)
}

impl Store {
    /// Creates the document for a new order. Refuses an id that exists.
    pub fn insert(&self, order: &WorkOrder, summary: &OrderSummary, stamp: Stamp, draft: &Draft) -> Result<(), Error> {
        let mut doc = document::create(order, self.actor.clone(), "import", order.created_at.0).map_err(|e| doc_error(&order.id, e))?;
        let snapshot = doc.save();
        let mut w = self.writer();
        let w = &mut *w;
        let tx = w.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let exists: bool = tx.query_row("SELECT EXISTS (SELECT 1 FROM orders WHERE id = ?1)", [&order.id], |r| r.get(0))?;
        if exists {
            return Err(Error::AlreadyExists { id: order.id.clone() });
        }
        write_summary(&tx, None, summary)?;
        tx.execute("INSERT INTO order_docs (order_id, snapshot) VALUES (?1, ?2)", params![order.id, snapshot])?;
        sync_store::mark_dirty(&tx, &order.id)?;
        let head = self.journal_tx(&tx, &mut w.head, stamp, std::slice::from_ref(draft))?;
        tx.commit()?;
        w.head = Some(head);
        w.tick += 1;
        let used = w.tick;
        let layout = Layout { snapshot_len: snapshot.len() as i64, ..Layout::default() };
        w.cache.insert(order.id.clone(), Cached { doc, order: order.clone(), layout, summary: summary.clone(), used, lists: ListIds::new() });
        evict(&mut w.cache);
        Ok(())
    }

    /// Applies an edit: `f` changes the order and names the fields it changed; the change is
    /// committed to the document and persisted (chunk + summary) in one SQLite transaction.
    /// On any error nothing is persisted and the cached document is dropped.
    pub fn edit<R, E: From<Error>>(
        &self,
        id: &str,
        message: &str,
        stamp: Stamp,
        f: impl FnOnce(&mut WorkOrder) -> Result<(R, Vec<Change>, Option<Draft>), E>,
        summarize: impl FnOnce(&WorkOrder) -> OrderSummary,
    ) -> Result<(R, WorkOrder), E> {
        self.edit_bound(id, message, stamp, |o, _| f(o), summarize, |_, _: &mut R, _| Ok(()))
    }

    /// [`Store::edit`] for edits that bind the journal: `f` also sees the journal head the
    /// edit's entry will follow, and `after` writes rows of its own in the same transaction,
    /// knowing the seq of the edit's journal entry.
    pub fn edit_bound<R, E: From<Error>>(
        &self,
        id: &str,
        message: &str,
        stamp: Stamp,
        f: impl FnOnce(&mut WorkOrder, &journal::Head) -> Result<(R, Vec<Change>, Option<Draft>), E>,
        summarize: impl FnOnce(&WorkOrder) -> OrderSummary,
        after: impl FnOnce(&rusqlite::Transaction<'_>, &mut R, u64) -> Result<(), Error>,
    ) -> Result<(R, WorkOrder), E> {
        let mut w = self.writer();
        let w = &mut *w;
        w.tick += 1;
        let tick = w.tick;
        if !w.cache.contains_key(id) {
            let (doc, layout) = self.load_doc(&w.conn, id)?;
            let doc = doc.with_actor(self.actor.clone());
            let order = hydrate_order(id, &doc)?;
            let summary = read_summary(&w.conn, id)?;
            w.cache.insert(id.to_string(), Cached { doc, order, layout, summary, used: tick, lists: ListIds::new() });
            evict(&mut w.cache);
        }
        if w.head.is_none() {
            w.head = Some(load_head(&w.conn)?);
        }
        let head_now = w.head.clone().unwrap_or_else(journal::Head::genesis);
        let Some(entry) = w.cache.get_mut(id) else {
            return Err(Error::NotFound { id: id.to_string() }.into());
        };
        entry.used = tick;
        // `f` edits the cached order in place (no copy of a long order per edit); if it or
        // anything after it fails, the entry is dropped and the next use reloads it.
        let (mut out, changes, draft) = match f(&mut entry.order, &head_now) {
            Ok(v) => v,
            Err(e) => {
                w.cache.remove(id);
                return Err(e);
            }
        };
        if changes.is_empty() {
            // Nothing to write: whatever `f` touched must not outlive this call in the cache.
            let order = entry.order.clone();
            w.cache.remove(id);
            return Ok((out, order));
        }
        let next = &entry.order;
        let time_ms = stamp.at_ms;
        let head_before = w.head.clone();
        let result = (|| -> Result<(Layout, OrderSummary, journal::Head, bool), Error> {
            let heads = entry.doc.get_heads();
            for c in &changes {
                write_field(&mut entry.doc, &mut entry.lists, next, *c).map_err(|e| doc_error(id, e))?;
            }
            document::commit(&mut entry.doc, message, time_ms);
            let chunk = entry.doc.save_after(&heads);
            let summary = summarize(next);
            let tx = w.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            write_summary(&tx, Some(&entry.summary), &summary)?;
            let layout = append_chunk(&tx, id, &chunk, &mut entry.doc, entry.layout, next.status.is_terminal())?;
            let newly_dirty = !w.dirty.contains(id);
            if newly_dirty {
                sync_store::mark_dirty(&tx, id)?;
            }
            let mut head = head_before.clone();
            let head = match &draft {
                Some(d) => self.journal_tx(&tx, &mut head, stamp, std::slice::from_ref(d))?,
                None => head.map_or_else(|| load_head(&tx), Ok)?,
            };
            after(&tx, &mut out, head.written)?;
            tx.commit()?;
            Ok((layout, summary, head, newly_dirty))
        })();
        match result {
            Ok((layout, summary, head, newly_dirty)) => {
                if newly_dirty {
                    w.dirty.insert(id.to_string());
                }
                entry.layout = layout;
                entry.summary = summary;
                let order = entry.order.clone();
                w.head = Some(head);
                Ok((out, order))
            }
            Err(e) => {
                w.cache.remove(id);
                Err(e.into())
            }
        }
    }

    /// Merges another replica's document (from a peer or a server) into the local one, or
    /// stores it as a new order. Returns the merged order.
    pub fn merge(&self, bytes: &[u8], summarize: impl FnOnce(&WorkOrder) -> OrderSummary, stamp: Stamp) -> Result<WorkOrder, Error> {
        let mut incoming = AutoCommit::load(bytes).map_err(|e| doc_error("<incoming>", e))?;
        let incoming_order = hydrate_order("<incoming>", &incoming)?;
        crate::order::import::validate_order_id(&incoming_order.id).map_err(|e| doc_error("<incoming>", e))?;
        let id = incoming_order.id.clone();
        let refused = |f: crate::sync::authz::Forbidden| Error::Refused { id: id.clone(), reason: f.to_string() };
        crate::sync::shape::check_document(&incoming, &incoming_order).map_err(refused)?;
        let mut w = self.writer();
        let w = &mut *w;
        let exists: bool = w.conn.query_row("SELECT EXISTS (SELECT 1 FROM orders WHERE id = ?1)", [&id], |r| r.get(0))?;
        if !exists {
            // A whole order from a peer: its history must be a legal path from the start.
            crate::sync::authz::check_history(&incoming_order, &PEER_RULE).map_err(refused)?;
            drop(incoming_order);
            let mut doc = incoming.with_actor(self.actor.clone());
            let order = hydrate_order(&id, &doc)?;
            let snapshot = doc.save();
            let tx = w.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            write_summary(&tx, None, &summarize(&order))?;
            tx.execute("INSERT INTO order_docs (order_id, snapshot) VALUES (?1, ?2)", params![id, snapshot])?;
            let draft = merge_draft(&id, &mut doc, true);
            let head = self.journal_tx(&tx, &mut w.head, stamp, &[draft])?;
            tx.commit()?;
            w.head = Some(head);
            return Ok(order);
        }
        w.cache.remove(&id);
        let (doc, layout) = self.load_doc(&w.conn, &id)?;
        let mut doc = doc.with_actor(self.actor.clone());
        let heads = doc.get_heads();
        let before = hydrate_order(&id, &doc)?;
        doc.merge(&mut incoming).map_err(|e| doc_error(&id, e))?;
        let merged = hydrate_order(&id, &doc)?;
        if merged.id != id {
            return Err(doc_error(&id, "the merged document changed its id"));
        }
        // A crafted peer file must not move the lifecycle (or anything else) outside the
        // rules; the cached document is dropped above, so nothing of it stays.
        crate::sync::shape::check_document(&doc, &merged).map_err(refused)?;
        crate::sync::authz::check_lifecycle(&before, &merged, &PEER_RULE).map_err(refused)?;
        let chunk = doc.save_after(&heads);
        if !chunk.is_empty() {
            let tx = w.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            write_summary(&tx, None, &summarize(&merged))?;
            append_chunk(&tx, &id, &chunk, &mut doc, layout, merged.status.is_terminal())?;
            let draft = merge_draft(&id, &mut doc, false);
            let head = self.journal_tx(&tx, &mut w.head, stamp, &[draft])?;
            tx.commit()?;
            w.head = Some(head);
        }
        Ok(merged)
    }

    /// The whole document in Automerge's `save()` format (to hand to a peer or a server).
    pub fn document_bytes(&self, id: &str) -> Result<Vec<u8>, Error> {
        let conn = self.reader();
        Ok(self.load_doc(&conn, id)?.0.save())
    }

    /// One order's document and its hydrated order, loaded once (reader connection): for
    /// screens that need both the order and what only the document knows (conflicts).
    pub fn open_document(&self, id: &str) -> Result<OrderDocument, Error> {
        let conn = self.reader();
        let (doc, _) = self.load_doc(&conn, id)?;
        let order = hydrate_order(id, &doc)?;
        Ok(OrderDocument { doc, order })
    }

    /// How many times a document was loaded from disk since the store opened (cache hits of
    /// edits do not count): lets tests hold screens to one load.
    pub fn document_loads(&self) -> u64 {
        self.doc_loads.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Loads one order's document (snapshot + chunks) on `conn`. Every document load goes
    /// through here, and is counted (see [`Store::document_loads`]).
    pub(super) fn load_doc(&self, conn: &Connection, id: &str) -> Result<(AutoCommit, Layout), Error> {
        self.doc_loads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let snapshot: Vec<u8> = conn
            .prepare_cached("SELECT snapshot FROM order_docs WHERE order_id = ?1")?
            .query_row([id], |r| r.get(0))
            .optional()?
            .ok_or_else(|| Error::NotFound { id: id.to_string() })?;
        let mut layout = Layout { snapshot_len: snapshot.len() as i64, ..Layout::default() };
        let mut doc = AutoCommit::load(&snapshot).map_err(|e| doc_error(id, e))?;
        let mut st = conn.prepare_cached("SELECT seq, bytes FROM order_changes WHERE order_id = ?1 ORDER BY seq")?;
        let mut rows = st.query([id])?;
        let mut chunks: Vec<Vec<u8>> = Vec::new();
        while let Some(row) = rows.next()? {
            let seq: i64 = row.get(0)?;
            let bytes: Vec<u8> = row.get(1)?;
            layout.last_seq = seq;
            layout.chunks += 1;
            layout.chunk_bytes += bytes.len() as i64;
            chunks.push(bytes);
        }
        let chunks: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
        crate::order::document::load_chunks(&mut doc, &chunks).map_err(|e| doc_error(id, e))?;
        Ok((doc, layout))
    }

    /// Loads and hydrates one order (reader connection; never touches the writer).
    pub fn get(&self, id: &str) -> Result<WorkOrder, Error> {
        let conn = self.reader();
        let (doc, _) = self.load_doc(&conn, id)?;
        hydrate_order(id, &doc)
    }
}

pub(super) fn merge_draft(id: &str, doc: &mut AutoCommit, new: bool) -> Draft {
    let heads: Vec<String> = doc.get_heads().iter().map(|h| h.to_string()).collect();
    Draft::new(JournalKind::Merge, Some(id), serde_json::json!({ "new_order": new, "heads": heads }))
}

pub(super) fn evict(cache: &mut HashMap<String, Cached>) {
    while cache.len() > CACHE_DOCS {
        let Some(oldest) = cache.iter().min_by_key(|(_, c)| c.used).map(|(k, _)| k.clone()) else { break };
        cache.remove(&oldest);
    }
}

/// Appends one change chunk, compacting into the snapshot when the policy says so.
/// Returns the new layout.
///
/// Changes the server lacks stay readable as chunks, so a push sends them as stored
/// (`outgoing.rs`): while an order synced before has more than [`COMPACT_KEEP_UNSENT`]
/// chunks after its push mark, compaction waits (up to 4x the usual limits); with fewer, the
/// snapshot takes everything and those chunks are kept after it too (loading skips the
/// changes it already has). A terminal order, or one with no mark, is compacted whole.
pub(super) fn append_chunk(
    tx: &rusqlite::Transaction<'_>,
    id: &str,
    chunk: &[u8],
    doc: &mut AutoCommit,
    layout: Layout,
    terminal: bool,
) -> Result<Layout, Error> {
    let seq = layout.last_seq + 1;
    let chunks = layout.chunks + 1;
    let chunk_bytes = layout.chunk_bytes + chunk.len() as i64;
    let limit = COMPACT_MIN_BYTES.max(layout.snapshot_len);
    let append = |tx: &rusqlite::Transaction<'_>| -> Result<Layout, Error> {
        tx.prepare_cached("INSERT INTO order_changes (order_id, seq, bytes) VALUES (?1, ?2, ?3)")?.execute(params![id, seq, chunk])?;
        Ok(Layout { last_seq: seq, chunks, chunk_bytes, ..layout })
    };
    if !terminal && chunks <= COMPACT_CHUNKS && chunk_bytes <= limit {
        return append(tx);
    }
    let hard = chunks > 4 * COMPACT_CHUNKS || chunk_bytes > 4 * limit;
    // The chunks after the push mark are unsent (the new one too); no mark: unknown.
    let mark = if terminal || hard { None } else { outgoing::push_mark(tx, id)? };
    if mark.is_some_and(|m| seq - m > COMPACT_KEEP_UNSENT) {
        return append(tx);
    }
    // The unsent chunks, kept after the new snapshot.
    let mut kept: Vec<Vec<u8>> = Vec::new();
    if let Some(m) = mark {
        let mut st = tx.prepare_cached("SELECT bytes FROM order_changes WHERE order_id = ?1 AND seq > ?2 ORDER BY seq")?;
        kept = st.query_map(params![id, m], |r| r.get(0))?.collect::<Result<_, _>>()?;
        kept.push(chunk.to_vec());
    }
    let snapshot = doc.save();
    if layout.chunks > 0 {
        tx.prepare_cached("DELETE FROM order_changes WHERE order_id = ?1")?.execute([id])?;
    }
    let updated = tx.prepare_cached("UPDATE order_docs SET snapshot = ?2 WHERE order_id = ?1")?.execute(params![id, snapshot])?;
    if updated != 1 {
        return Err(Error::NotFound { id: id.to_string() });
    }
    // The chunks are renumbered from here: a mark on the old numbers means nothing now.
    outgoing::forget_push_mark(tx, id)?;
    let mut out = Layout { snapshot_len: snapshot.len() as i64, ..Layout::default() };
    if mark.is_some() {
        for (seq, bytes) in (1..).zip(&kept) {
            tx.prepare_cached("INSERT INTO order_changes (order_id, seq, bytes) VALUES (?1, ?2, ?3)")?.execute(params![id, seq, bytes])?;
            out = Layout { last_seq: seq, chunks: seq, chunk_bytes: out.chunk_bytes + bytes.len() as i64, ..out };
        }
        // The server has the snapshot but for the kept chunks.
        outgoing::set_push_mark(tx, id, 0)?;
    }
    Ok(out)
}
