//! Local persistence: SQLite (WAL, one writer connection, one reader connection) holding one
//! Automerge document per work order as a snapshot plus incremental change chunks, and a
//! summary row per order for list screens.
//!
//! Compaction policy: after an append, when an order has more than [`COMPACT_CHUNKS`] chunks,
//! or its chunks outweigh `max(COMPACT_MIN_BYTES, snapshot size)`, or the order reached a
//! terminal status (it will rarely change again), the document is saved whole into the
//! snapshot and its chunks deleted, in the same transaction as the edit. Chunks the server
//! lacks are kept (or compaction waits) so a push can send them as stored (`outgoing.rs`).
//!
//! Write amplification: an edit dirties as few pages as possible. The chunk counters live in
//! memory (recomputed when a document is loaded) and the summary row is updated only in the
//! columns that changed, so an index is touched only when its column moved.
//!
//! Durability: `synchronous = NORMAL` in WAL mode. A committed edit is in the WAL file before
//! `edit` returns, so it survives the process being killed; see docs/adr/0003-durability.md.

pub mod cipher;
mod documents;
mod journal_store;
mod meta;
pub mod outgoing;
pub mod parts_store;
pub(crate) mod receipt_store;
mod schema;
mod summary;
pub mod sync_store;
mod template_store;

pub use cipher::connect;
pub use documents::{Change, OrderDocument};
pub use meta::MetaKey;
pub use summary::{OrderSummary, SortBy};
pub use template_store::PublishedTemplate;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use automerge::ActorId;
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension};

use crate::evidence::journal::{self, JournalKind};
use crate::evidence::Signer;

use documents::Cached;

pub use schema::CURRENT_VERSION as SCHEMA_VERSION;

pub const DB_FILE: &str = "onsite.sqlite3";
pub const COMPACT_CHUNKS: i64 = 32;
pub const COMPACT_MIN_BYTES: i64 = 8 * 1024;
/// Unsent chunks a compaction keeps after the snapshot; with more, compaction waits for the
/// push (see `documents::append_chunk`).
pub const COMPACT_KEEP_UNSENT: i64 = COMPACT_CHUNKS / 4;

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
    #[error("the stored setting `{key}` is unreadable: `{value}`")]
    Meta { key: &'static str, value: String },
    #[error(transparent)]
    Journal(#[from] journal::Error),
    #[error("no device key is configured for signing")]
    NoSigner,
    #[error(transparent)]
    Parts(#[from] crate::parts::Error),
    /// The store's key is missing, unavailable or not this store's (nothing was changed).
    #[error(transparent)]
    Key(#[from] crate::crypt::KeyError),
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

/// The size of the stored documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Footprint {
    pub bytes: u64,
    pub orders: u64,
}

/// Wall and monotonic readings for a write (journaled with it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub at_ms: i64,
    pub mono_ms: u64,
}

pub struct Store {
    path: PathBuf,
    encrypted: bool,
    actor: ActorId,
    device_id: String,
    // Field order is drop order: the read-only connection closes first, so the writer is
    // the last connection and checkpoints the WAL into the main file on close.
    reader: Mutex<Connection>,
    writer: Mutex<Writer>,
    signer: std::sync::RwLock<Option<Arc<dyn Signer>>>,
    /// The journal's session key (in memory only; ADR 0017).
    session: Mutex<Option<Arc<crate::evidence::journal::Session>>>,
    /// The part ledger folded up to the movement with this id (the last one), so a parts
    /// answer checks against it without re-reading every movement.
    pub(crate) ledger_cache: Mutex<Option<(String, crate::parts::Ledger)>>,
    /// Documents loaded from disk (see `document_loads`).
    doc_loads: std::sync::atomic::AtomicU64,
}

fn classify_open_error(path: &Path, e: rusqlite::Error) -> Error {
    match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) | Some(ErrorCode::DatabaseCorrupt) => Error::Corrupt { path: path.to_path_buf(), reason: e.to_string() },
        _ => Error::Open { path: path.to_path_buf(), reason: e.to_string() },
    }
}

pub(super) fn doc_error(id: &str, reason: impl ToString) -> Error {
    Error::Document { id: id.to_string(), reason: reason.to_string() }
}

/// Plans that do not depend on bound values (SQLite's query planner stability guarantee).
/// Without it, SQLite (built with STAT4) marks a parameter such as `?1` in
/// `WHERE order_id = ?1 ORDER BY seq DESC LIMIT 1` as plan-relevant, and rusqlite's statement
/// cache clears bindings when a statement returns to it: every use re-parsed the SQL. With no
/// statistics gathered, the plans are the same either way.
pub fn stable_plans(conn: &Connection) -> rusqlite::Result<()> {
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    Ok(())
}

impl Store {
    /// Opens (creating if needed) an unencrypted database in `dir`: benchmark baselines and
    /// tests. Devices open theirs with [`Store::open_with`] and a key.
    pub fn open(dir: &Path) -> Result<Self, Error> {
        Self::open_with(dir, None)
    }

    /// Opens (creating if needed) the database in `dir`, encrypted with `key` (SQLCipher; a
    /// plain database found there is encrypted in place first, docs/adr/0018). `None`: an
    /// unencrypted database; an encrypted one then refuses with `KeyError::Missing`.
    pub fn open_with(dir: &Path, key: Option<&crate::crypt::StoreKey>) -> Result<Self, Error> {
        std::fs::create_dir_all(dir).map_err(|e| Error::Open { path: dir.to_path_buf(), reason: e.to_string() })?;
        let path = dir.join(DB_FILE);
        match (cipher::state(&path)?, key) {
            (cipher::FileState::Encrypted, None) => return Err(crate::crypt::KeyError::Missing { path }.into()),
            (cipher::FileState::Plain, Some(k)) => cipher::migrate_plain(&path, k)?,
            (cipher::FileState::Encrypted, Some(k)) => cipher::precheck(&path, k)?,
            (cipher::FileState::Absent, Some(k)) => cipher::record_id(&path, k)?,
            (_, None) => {}
        }
        let mut conn = cipher::connect(&path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX)
            .map_err(|e| classify_open_error(&path, e))?;
        if let Some(k) = key {
            cipher::apply_key(&conn, k)?;
            cipher::check_key(&conn, &path, k)?;
        }
        Self::prepare(&conn).map_err(|e| classify_open_error(&path, e))?;
        schema::migrate(&mut conn).map_err(|e| match e {
            Error::Sqlite(inner) => classify_open_error(&path, inner),
            other => other,
        })?;
        let device_id = Self::ensure_device_id(&conn)?;
        let actor = ActorId::from(crate::hash::unhex(&device_id).unwrap_or_else(|| device_id.as_bytes().to_vec()));
        let reader = cipher::connect(&path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX).map_err(|e| classify_open_error(&path, e))?;
        if let Some(k) = key {
            cipher::apply_key(&reader, k)?;
        }
        reader.busy_timeout(std::time::Duration::from_secs(5))?;
        stable_plans(&reader)?;
        Ok(Self {
            encrypted: key.is_some(),
            path,
            actor,
            device_id,
            reader: Mutex::new(reader),
            writer: Mutex::new(Writer { conn, cache: HashMap::new(), tick: 0, head: None, dirty: Default::default() }),
            signer: std::sync::RwLock::new(None),
            session: Mutex::new(None),
            ledger_cache: Mutex::new(None),
            doc_loads: Default::default(),
        })
    }

    fn prepare(conn: &Connection) -> rusqlite::Result<()> {
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        stable_plans(conn)?;
        // journal_mode answers with a row; reading it also proves the file is a database.
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(mode, "could not switch the database to WAL");
        }
        conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")?;
        Ok(())
    }

    fn ensure_device_id(conn: &Connection) -> Result<String, Error> {
        if let Some(id) = conn.query_row("SELECT value FROM meta WHERE key = ?1", [MetaKey::DeviceId.as_str()], |r| r.get::<_, String>(0)).optional()? {
            return Ok(id);
        }
        let id = ActorId::random().to_hex_string();
        conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES (?1, ?2)", [MetaKey::DeviceId.as_str(), &id])?;
        Ok(conn.query_row("SELECT value FROM meta WHERE key = ?1", [MetaKey::DeviceId.as_str()], |r| r.get(0))?)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the database is encrypted (SQLCipher).
    pub fn is_encrypted(&self) -> bool {
        self.encrypted
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

    /// What the documents of all orders take on disk (snapshots + chunks).
    pub fn document_footprint(&self) -> Result<Footprint, Error> {
        let conn = self.reader();
        Ok(conn.query_row(
            "SELECT (SELECT COALESCE(SUM(length(snapshot)), 0) FROM order_docs) + \
                    (SELECT COALESCE(SUM(length(bytes)), 0) FROM order_changes), \
                    (SELECT COUNT(*) FROM orders)",
            [],
            |r| Ok(Footprint { bytes: r.get::<_, i64>(0)? as u64, orders: r.get::<_, i64>(1)? as u64 }),
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

/// Reads the journal head (last entry and last time ticket) from the database.
pub(crate) fn load_head(conn: &Connection) -> Result<journal::Head, Error> {
    let last: Option<(i64, String, Vec<u8>)> =
        conn.query_row("SELECT seq, hash, body FROM journal ORDER BY seq DESC LIMIT 1", [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).optional()?;
    let Some((seq, hash, body)) = last else { return Ok(journal::Head::genesis()) };
    let parse = |seq: i64, body: &[u8]| -> Result<journal::Body, Error> {
        serde_json::from_slice(body).map_err(|e| Error::Journal(journal::Error::Malformed { seq: seq as u64, reason: e.to_string() }))
    };
    let b = parse(seq, &body)?;
    let ticket: Option<(i64, Vec<u8>)> = conn
        .query_row("SELECT seq, body FROM journal WHERE kind = ?1 ORDER BY seq DESC LIMIT 1", [JournalKind::TimeTicket.as_str()], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    let ticket = match ticket {
        Some((tseq, tbody)) => Some((tseq as u64, parse(tseq, &tbody)?.mono_ms)),
        None => None,
    };
    Ok(journal::Head { seq: seq as u64, hash, at_ms: b.at_ms, mono_ms: b.mono_ms, ticket, written: seq as u64 })
}
