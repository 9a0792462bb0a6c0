//! Local persistence: SQLite (WAL, one writer connection, one reader connection) holding one
//! Automerge document per work order as a snapshot plus incremental change chunks, and a
//! summary row per order for list screens.
//!
//! Compaction policy: after an append, when an order has more than [`COMPACT_CHUNKS`] chunks,
//! or its chunks outweigh `max(COMPACT_MIN_BYTES, snapshot size)`, or the order reached a
//! terminal status (it will rarely change again), the document is saved whole into the
//! snapshot and its chunks deleted, in the same transaction as the edit.
//!
//! Write amplification: an edit dirties as few pages as possible. The chunk counters live in
//! memory (recomputed when a document is loaded) and the summary row is updated only in the
//! columns that changed, so an index is touched only when its column moved.
//!
//! Durability: `synchronous = NORMAL` in WAL mode. A committed edit is in the WAL file before
//! `edit` returns, so it survives the process being killed; see docs/adr/0003-durability.md.

mod journal_store;
pub mod parts_store;
pub mod sync_store;
pub(crate) mod receipt_store;
mod schema;

pub use journal_store::{PhotoRow, ReuseHit};

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use automerge::transaction::CommitOptions;
use automerge::{ActorId, AutoCommit, ReadDoc, ROOT};
use rusqlite::{params, Connection, ErrorCode, OpenFlags, OptionalExtension, TransactionBehavior};
use serde::Serialize;

use std::sync::Arc;

use crate::evidence::journal::{self, Draft};
use crate::evidence::Signer;
use crate::order::{Status, WorkOrder};

pub use schema::CURRENT_VERSION as SCHEMA_VERSION;

pub const DB_FILE: &str = "onsite.sqlite3";
pub const COMPACT_CHUNKS: i64 = 32;
pub const COMPACT_MIN_BYTES: i64 = 8 * 1024;
const CACHE_DOCS: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot open the database at {path}: {reason}")]
    Open { path: PathBuf, reason: String },
    #[error("the file at {path} is not a readable Onsite database ({reason}); it was left untouched")]
    Corrupt { path: PathBuf, reason: String },
    #[error("the database has schema version {found}, newer than this app supports ({supported}); update the app")]
    TooNew { found: u32, supported: u32 },
    #[error("order `{id}` not found")]
    NotFound { id: String },
    #[error("order `{id}` already exists")]
    AlreadyExists { id: String },
    #[error("the document of order `{id}` cannot be used: {reason}")]
    Document { id: String, reason: String },
    /// Changes arrived without the history they build on (nothing was applied); the whole
    /// document is needed.
    #[error("the changes to order `{id}` depend on history this device does not have")]
    MissingHistory { id: String },
    /// A peer's document breaks a rule of the order (lifecycle, ownership); nothing merged.
    #[error("the document of order `{id}` is refused: {reason}")]
    Refused { id: String, reason: String },
    #[error("storage failure: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error(transparent)]
    Journal(#[from] journal::Error),
    #[error("no device key is configured for signing")]
    NoSigner,
    #[error(transparent)]
    Parts(#[from] crate::parts::Error),
}

/// What a list screen shows; read from summary columns only.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OrderSummary {
    pub id: String,
    pub status: Status,
    pub priority: String,
    pub customer: String,
    pub site: String,
    pub equipment: String,
    pub engineer_id: String,
    pub reported_at: i64,
    pub appointment_start: Option<i64>,
    pub appointment_end: Option<i64>,
    /// Earliest running SLA deadline (UTC ms) and which clock it is.
    pub sla_deadline: Option<i64>,
    pub sla_kind: Option<String>,
    pub updated_at: i64,
    /// The running deadline has passed (computed at read time against the device clock).
    pub breached: bool,
}

/// Sort orders for list screens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortBy {
    /// Earliest running SLA deadline first (ties: higher priority first); orders without one last.
    #[default]
    SlaDeadline,
    /// Most recently changed first.
    Updated,
}

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
struct Layout {
    snapshot_len: i64,
    /// Highest `seq` in `order_changes` (0 when there are none).
    last_seq: i64,
    chunks: i64,
    chunk_bytes: i64,
}

struct Cached {
    doc: AutoCommit,
    order: WorkOrder,
    layout: Layout,
    /// The summary row as last written.
    summary: OrderSummary,
    used: u64,
}

struct Writer {
    conn: Connection,
    cache: HashMap<String, Cached>,
    tick: u64,
    /// The journal's head, loaded on first use.
    head: Option<journal::Head>,
    /// Orders already marked dirty in `sync_docs` since the sync engine last read them, so
    /// repeated edits skip the write (the engine's read clears the entry, so edits during a
    /// push bump `gen` again).
    dirty: std::collections::HashSet<String>,
}

/// Wall and monotonic readings for a write (journaled with it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub at_ms: i64,
    pub mono_ms: u64,
}

pub struct Store {
    path: PathBuf,
    actor: ActorId,
    device_id: String,
    // Field order is drop order: the read-only connection closes first, so the writer is
    // the last connection and checkpoints the WAL into the main file on close.
    reader: Mutex<Connection>,
    writer: Mutex<Writer>,
    signer: std::sync::RwLock<Option<Arc<dyn Signer>>>,
    /// The part ledger folded up to the movement with this id (the last one), so a parts
    /// answer checks against it without re-reading every movement.
    pub(crate) ledger_cache: Mutex<Option<(String, crate::parts::Ledger)>>,
}

fn classify_open_error(path: &Path, e: rusqlite::Error) -> Error {
    match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) | Some(ErrorCode::DatabaseCorrupt) => {
            Error::Corrupt { path: path.to_path_buf(), reason: e.to_string() }
        }
        _ => Error::Open { path: path.to_path_buf(), reason: e.to_string() },
    }
}

/// Peer documents: transitions by any device, completion on a receipt the document carries.
const PEER_RULE: crate::sync::authz::LifecycleRule<'static> = crate::sync::authz::LifecycleRule { author: None, delivered_receipts: None };

fn doc_error(id: &str, reason: impl ToString) -> Error {
    Error::Document { id: id.to_string(), reason: reason.to_string() }
}

fn hydrate_order(id: &str, doc: &AutoCommit) -> Result<WorkOrder, Error> {
    autosurgeon::hydrate(doc).map_err(|e| doc_error(id, e))
}

fn write_field(doc: &mut AutoCommit, order: &WorkOrder, change: Change) -> Result<(), autosurgeon::ReconcileError> {
    match change {
        Change::Status => autosurgeon::reconcile_prop(doc, ROOT, "status", order.status),
        Change::Appointment => autosurgeon::reconcile_prop(doc, ROOT, "appointment", order.appointment),
        Change::AppendTransition => append(doc, &ROOT, "transitions", order.transitions.last()),
        Change::AppendNote => append(doc, &ROOT, "notes", order.notes.last()),
        Change::ChecklistTemplate => {
            let checklist = object(doc, &ROOT, "checklist", automerge::ObjType::Map)?;
            autosurgeon::reconcile_prop(doc, checklist, "template", &order.checklist.template)
        }
        Change::AppendAnswer => {
            let checklist = object(doc, &ROOT, "checklist", automerge::ObjType::Map)?;
            append(doc, &checklist, "answers", order.checklist.answers.last())
        }
        Change::AppendReceipt => {
            // Documents created before receipts existed have no list yet.
            if doc.get(&ROOT, "receipts")?.is_none() {
                automerge::transaction::Transactable::put_object(doc, &ROOT, "receipts", automerge::ObjType::List)?;
            }
            append(doc, &ROOT, "receipts", order.receipts.last())
        }
        Change::AppendHelp => {
            if doc.get(&ROOT, "help")?.is_none() {
                automerge::transaction::Transactable::put_object(doc, &ROOT, "help", automerge::ObjType::List)?;
            }
            append(doc, &ROOT, "help", order.help.last())
        }
    }
}

fn object(doc: &AutoCommit, parent: &automerge::ObjId, key: &str, ty: automerge::ObjType) -> Result<automerge::ObjId, autosurgeon::ReconcileError> {
    match doc.get(parent, key)? {
        Some((automerge::Value::Object(t), id)) if t == ty => Ok(id),
        _ => Err(autosurgeon::ReconcileError::Automerge(automerge::AutomergeError::InvalidOp(ty))),
    }
}

fn append<T: autosurgeon::Reconcile>(
    doc: &mut AutoCommit,
    parent: &automerge::ObjId,
    key: &str,
    item: Option<&T>,
) -> Result<(), autosurgeon::ReconcileError> {
    let Some(item) = item else { return Ok(()) };
    let list = object(doc, parent, key, automerge::ObjType::List)?;
    let len = doc.length(&list);
    autosurgeon::reconcile_insert(doc, list, len, item)
}

impl Store {
    /// Opens (creating if needed) the database in `dir`.
    pub fn open(dir: &Path) -> Result<Self, Error> {
        std::fs::create_dir_all(dir).map_err(|e| Error::Open { path: dir.to_path_buf(), reason: e.to_string() })?;
        let path = dir.join(DB_FILE);
        let mut conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| classify_open_error(&path, e))?;
        Self::prepare(&conn).map_err(|e| classify_open_error(&path, e))?;
        schema::migrate(&mut conn).map_err(|e| match e {
            Error::Sqlite(inner) => classify_open_error(&path, inner),
            other => other,
        })?;
        let device_id = Self::ensure_device_id(&conn)?;
        let actor = ActorId::from(hex_decode(&device_id).unwrap_or_else(|| device_id.as_bytes().to_vec()));
        let reader = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| classify_open_error(&path, e))?;
        reader.busy_timeout(std::time::Duration::from_secs(5))?;
        Ok(Self {
            path,
            actor,
            device_id,
            reader: Mutex::new(reader),
            writer: Mutex::new(Writer { conn, cache: HashMap::new(), tick: 0, head: None, dirty: Default::default() }),
            signer: std::sync::RwLock::new(None),
            ledger_cache: Mutex::new(None),
        })
    }

    fn prepare(conn: &Connection) -> rusqlite::Result<()> {
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // journal_mode answers with a row; reading it also proves the file is a database.
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(mode, "could not switch the database to WAL");
        }
        conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")?;
        Ok(())
    }

    fn ensure_device_id(conn: &Connection) -> Result<String, Error> {
        if let Some(id) = conn
            .query_row("SELECT value FROM meta WHERE key = 'device_id'", [], |r| r.get::<_, String>(0))
            .optional()?
        {
            return Ok(id);
        }
        let id = ActorId::random().to_hex_string();
        conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('device_id', ?1)", [&id])?;
        Ok(conn.query_row("SELECT value FROM meta WHERE key = 'device_id'", [], |r| r.get(0))?)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// This device's stable id (also its Automerge actor id), created on first open.
    pub fn device_id(&self) -> &str {
        &self.device_id
    }

    fn writer(&self) -> std::sync::MutexGuard<'_, Writer> {
        // A panic while holding the lock cannot leave SQLite inconsistent (transactions roll
        // back on drop), and the cache is dropped below, so recovering the guard is safe.
        match self.writer.lock() {
            Ok(g) => g,
            Err(poisoned) => {
                let mut g = poisoned.into_inner();
                g.cache.clear();
                g
            }
        }
    }

    fn reader(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.reader.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Creates the document for a new order. Refuses an id that exists.
    pub fn insert(&self, order: &WorkOrder, summary: &OrderSummary, stamp: Stamp, draft: &Draft) -> Result<(), Error> {
        let mut doc = AutoCommit::new().with_actor(self.actor.clone());
        autosurgeon::reconcile(&mut doc, order).map_err(|e| doc_error(&order.id, e))?;
        doc.commit_with(CommitOptions::default().with_message("import").with_time(order.created_at.0 / 1000));
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
        w.cache.insert(order.id.clone(), Cached { doc, order: order.clone(), layout, summary: summary.clone(), used });
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
            let (doc, layout) = load_doc(&w.conn, id)?;
            let doc = doc.with_actor(self.actor.clone());
            let order = hydrate_order(id, &doc)?;
            let summary = read_summary(&w.conn, id)?;
            w.cache.insert(id.to_string(), Cached { doc, order, layout, summary, used: tick });
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
        let mut next = entry.order.clone();
        let (mut out, changes, draft) = f(&mut next, &head_now)?;
        if changes.is_empty() {
            return Ok((out, next));
        }
        let time_ms = stamp.at_ms;
        let head_before = w.head.clone();
        let result = (|| -> Result<(Layout, OrderSummary, journal::Head, bool), Error> {
            let heads = entry.doc.get_heads();
            for c in &changes {
                write_field(&mut entry.doc, &next, *c).map_err(|e| doc_error(id, e))?;
            }
            entry.doc.commit_with(CommitOptions::default().with_message(message).with_time(time_ms / 1000));
            let chunk = entry.doc.save_after(&heads);
            let summary = summarize(&next);
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
            after(&tx, &mut out, head.seq)?;
            tx.commit()?;
            Ok((layout, summary, head, newly_dirty))
        })();
        match result {
            Ok((layout, summary, head, newly_dirty)) => {
                if newly_dirty {
                    w.dirty.insert(id.to_string());
                }
                entry.order = next.clone();
                entry.layout = layout;
                entry.summary = summary;
                w.head = Some(head);
                Ok((out, next))
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
        crate::order::import::validate_order_id(&incoming_order.id)
            .map_err(|e| doc_error("<incoming>", e))?;
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
        let (doc, layout) = load_doc(&w.conn, &id)?;
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
        Ok(load_doc(&conn, id)?.0.save())
    }

    /// Loads and hydrates one order (reader connection; never touches the writer).
    pub fn get(&self, id: &str) -> Result<WorkOrder, Error> {
        let conn = self.reader();
        let (doc, _) = load_doc(&conn, id)?;
        hydrate_order(id, &doc)
    }

    /// Summary rows, optionally only some statuses; reads summary columns only.
    pub fn list(&self, statuses: &[Status], sort: SortBy) -> Result<Vec<OrderSummary>, Error> {
        let conn = self.reader();
        let order_by = match sort {
            SortBy::SlaDeadline => {
                "sla_deadline IS NULL, sla_deadline, \
                 CASE priority WHEN 'urgent' THEN 0 WHEN 'normal' THEN 1 ELSE 2 END, id"
            }
            SortBy::Updated => "updated_at DESC, id",
        };
        // Orders the dispatcher reassigned away stay stored (nothing accepted is lost) but
        // leave the list.
        let mut filter = "WHERE NOT EXISTS (SELECT 1 FROM sync_docs s WHERE s.order_id = orders.id AND s.state = 'removed')".to_string();
        if !statuses.is_empty() {
            let list: Vec<String> = statuses.iter().map(|s| format!("'{}'", s.as_str())).collect();
            filter.push_str(&format!(" AND status IN ({})", list.join(",")));
        }
        let sql = format!("SELECT {SUMMARY_COLUMNS} FROM orders {filter} ORDER BY {order_by}");
        let mut st = conn.prepare_cached(&sql)?;
        let rows = st.query_map([], summary_from_row)?;
        let mut out = Vec::new();
        for row in rows {
            out.push(row??);
        }
        Ok(out)
    }

    /// Bytes the documents of all orders take (snapshots + chunks), and the order count.
    pub fn document_footprint(&self) -> Result<(i64, i64), Error> {
        let conn = self.reader();
        Ok(conn.query_row(
            "SELECT (SELECT COALESCE(SUM(length(snapshot)), 0) FROM order_docs) + \
                    (SELECT COALESCE(SUM(length(bytes)), 0) FROM order_changes), \
                    (SELECT COUNT(*) FROM orders)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?)
    }

    /// SQLite's own `quick_check`; `Ok(())` when the file is sound.
    pub fn check_integrity(&self) -> Result<(), Error> {
        let conn = self.reader();
        let verdict: String = conn.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
        if verdict == "ok" {
            Ok(())
        } else {
            Err(Error::Corrupt { path: self.path.clone(), reason: verdict })
        }
    }
}

fn merge_draft(id: &str, doc: &mut AutoCommit, new: bool) -> Draft {
    let heads: Vec<String> = doc.get_heads().iter().map(|h| h.to_string()).collect();
    Draft::new("merge", Some(id), serde_json::json!({ "new_order": new, "heads": heads }))
}

/// Reads the journal head (last entry and last time ticket) from the database.
pub(crate) fn load_head(conn: &Connection) -> Result<journal::Head, Error> {
    let last: Option<(i64, String, Vec<u8>)> = conn
        .query_row("SELECT seq, hash, body FROM journal ORDER BY seq DESC LIMIT 1", [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let Some((seq, hash, body)) = last else { return Ok(journal::Head::genesis()) };
    let parse = |seq: i64, body: &[u8]| -> Result<journal::Body, Error> {
        serde_json::from_slice(body).map_err(|e| Error::Journal(journal::Error::Malformed { seq: seq as u64, reason: e.to_string() }))
    };
    let b = parse(seq, &body)?;
    let ticket: Option<(i64, Vec<u8>)> = conn
        .query_row("SELECT seq, body FROM journal WHERE kind = 'time_ticket' ORDER BY seq DESC LIMIT 1", [], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let ticket = match ticket {
        Some((tseq, tbody)) => Some((tseq as u64, parse(tseq, &tbody)?.mono_ms)),
        None => None,
    };
    Ok(journal::Head { seq: seq as u64, hash, at_ms: b.at_ms, mono_ms: b.mono_ms, ticket })
}

fn evict(cache: &mut HashMap<String, Cached>) {
    while cache.len() > CACHE_DOCS {
        let Some(oldest) = cache.iter().min_by_key(|(_, c)| c.used).map(|(k, _)| k.clone()) else { break };
        cache.remove(&oldest);
    }
}

const SUMMARY_COLUMNS: &str = "id, status, priority, customer, site, equipment, engineer_id, reported_at, \
     appointment_start, appointment_end, sla_deadline, sla_kind, updated_at";

type RowResult = rusqlite::Result<Result<OrderSummary, Error>>;

fn summary_from_row(r: &rusqlite::Row<'_>) -> RowResult {
    let id: String = r.get(0)?;
    let status: String = r.get(1)?;
    let status = match Status::parse(&status) {
        Ok(s) => s,
        Err(e) => return Ok(Err(doc_error(&id, e))),
    };
    Ok(Ok(OrderSummary {
        id,
        status,
        priority: r.get(2)?,
        customer: r.get(3)?,
        site: r.get(4)?,
        equipment: r.get(5)?,
        engineer_id: r.get(6)?,
        reported_at: r.get(7)?,
        appointment_start: r.get(8)?,
        appointment_end: r.get(9)?,
        sla_deadline: r.get(10)?,
        sla_kind: r.get(11)?,
        updated_at: r.get(12)?,
        breached: false,
    }))
}

fn read_summary(conn: &Connection, id: &str) -> Result<OrderSummary, Error> {
    conn.prepare_cached(&format!("SELECT {SUMMARY_COLUMNS} FROM orders WHERE id = ?1"))?
        .query_row([id], summary_from_row)
        .optional()?
        .ok_or_else(|| Error::NotFound { id: id.to_string() })?
}

/// The summary's columns (all but `id`) as SQL values, in `SUMMARY_COLUMNS` order.
fn summary_values(s: &OrderSummary) -> [(&'static str, rusqlite::types::Value); 12] {
    use rusqlite::types::Value;
    [
        ("status", Value::Text(s.status.as_str().to_string())),
        ("priority", Value::Text(s.priority.clone())),
        ("customer", Value::Text(s.customer.clone())),
        ("site", Value::Text(s.site.clone())),
        ("equipment", Value::Text(s.equipment.clone())),
        ("engineer_id", Value::Text(s.engineer_id.clone())),
        ("reported_at", Value::Integer(s.reported_at)),
        ("appointment_start", s.appointment_start.map_or(Value::Null, Value::Integer)),
        ("appointment_end", s.appointment_end.map_or(Value::Null, Value::Integer)),
        ("sla_deadline", s.sla_deadline.map_or(Value::Null, Value::Integer)),
        ("sla_kind", s.sla_kind.clone().map_or(Value::Null, Value::Text)),
        ("updated_at", Value::Integer(s.updated_at)),
    ]
}

/// Writes the summary row: all of it when `old` is `None`, else only the changed columns.
fn write_summary(tx: &rusqlite::Transaction<'_>, old: Option<&OrderSummary>, s: &OrderSummary) -> rusqlite::Result<()> {
    use rusqlite::types::Value;
    let columns = summary_values(s);
    let Some(old) = old.filter(|o| o.id == s.id) else {
        let mut values = vec![Value::Text(s.id.clone())];
        values.extend(columns.into_iter().map(|(_, v)| v));
        tx.prepare_cached(&format!(
            "INSERT INTO orders ({SUMMARY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) \
             ON CONFLICT (id) DO UPDATE SET status = excluded.status, priority = excluded.priority, \
             customer = excluded.customer, site = excluded.site, equipment = excluded.equipment, \
             engineer_id = excluded.engineer_id, reported_at = excluded.reported_at, \
             appointment_start = excluded.appointment_start, appointment_end = excluded.appointment_end, \
             sla_deadline = excluded.sla_deadline, sla_kind = excluded.sla_kind, updated_at = excluded.updated_at"
        ))?
        .execute(rusqlite::params_from_iter(values))?;
        return Ok(());
    };
    let before = summary_values(old);
    let mut sets = Vec::new();
    let mut values = vec![Value::Text(s.id.clone())];
    for ((name, value), (_, was)) in columns.into_iter().zip(before) {
        if value != was {
            values.push(value);
            sets.push(format!("{name} = ?{}", values.len()));
        }
    }
    if sets.is_empty() {
        return Ok(());
    }
    tx.prepare_cached(&format!("UPDATE orders SET {} WHERE id = ?1", sets.join(", ")))?
        .execute(rusqlite::params_from_iter(values))?;
    Ok(())
}

/// Appends one change chunk, compacting into the snapshot when the policy says so.
/// Returns the new layout.
fn append_chunk(
    tx: &rusqlite::Transaction<'_>,
    id: &str,
    chunk: &[u8],
    doc: &mut AutoCommit,
    layout: Layout,
    terminal: bool,
) -> Result<Layout, Error> {
    let chunks = layout.chunks + 1;
    let chunk_bytes = layout.chunk_bytes + chunk.len() as i64;
    if terminal || chunks > COMPACT_CHUNKS || chunk_bytes > COMPACT_MIN_BYTES.max(layout.snapshot_len) {
        let snapshot = doc.save();
        if layout.chunks > 0 {
            tx.prepare_cached("DELETE FROM order_changes WHERE order_id = ?1")?.execute([id])?;
        }
        let updated = tx
            .prepare_cached("UPDATE order_docs SET snapshot = ?2 WHERE order_id = ?1")?
            .execute(params![id, snapshot])?;
        if updated != 1 {
            return Err(Error::NotFound { id: id.to_string() });
        }
        Ok(Layout { snapshot_len: snapshot.len() as i64, ..Layout::default() })
    } else {
        let seq = layout.last_seq + 1;
        tx.prepare_cached("INSERT INTO order_changes (order_id, seq, bytes) VALUES (?1, ?2, ?3)")?
            .execute(params![id, seq, chunk])?;
        Ok(Layout { last_seq: seq, chunks, chunk_bytes, ..layout })
    }
}

fn load_doc(conn: &Connection, id: &str) -> Result<(AutoCommit, Layout), Error> {
    let snapshot: Vec<u8> = conn
        .prepare_cached("SELECT snapshot FROM order_docs WHERE order_id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()?
        .ok_or_else(|| Error::NotFound { id: id.to_string() })?;
    let mut layout = Layout { snapshot_len: snapshot.len() as i64, ..Layout::default() };
    let mut doc = AutoCommit::load(&snapshot).map_err(|e| doc_error(id, e))?;
    let mut st = conn.prepare_cached("SELECT seq, bytes FROM order_changes WHERE order_id = ?1 ORDER BY seq")?;
    let mut rows = st.query([id])?;
    while let Some(row) = rows.next()? {
        let seq: i64 = row.get(0)?;
        let bytes: Vec<u8> = row.get(1)?;
        doc.load_incremental(&bytes).map_err(|e| doc_error(id, e))?;
        layout.last_seq = seq;
        layout.chunks += 1;
        layout.chunk_bytes += bytes.len() as i64;
    }
    Ok((doc, layout))
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

impl Store {
    /// Template sources published to this device, oldest first.
    pub fn published_templates(&self) -> Result<Vec<(String, String)>, Error> {
        // Read on the writer: it has the schema loaded already (this runs at open).
        let w = self.writer();
        let mut st = w.conn.prepare_cached("SELECT id || '@' || version, source FROM templates ORDER BY published_at, id, version")?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records a published template version (idempotent for identical content).
    pub fn save_template(&self, id: &str, version: u32, sha256: &str, source: &str, at_ms: i64) -> Result<(), Error> {
        let w = self.writer();
        w.conn.execute(
            "INSERT INTO templates (id, version, sha256, source, published_at) VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT (id, version) DO NOTHING",
            params![id, version, sha256, source, at_ms],
        )?;
        Ok(())
    }
}
