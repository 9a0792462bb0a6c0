//! The server's storage, behind [`Storage`] so a PostgreSQL backend can follow
//! (docs/adr/0009-sync-server.md). The embedded backend is one SQLite file in WAL mode with
//! numbered migrations; blobs live beside it as files named by SHA-256 (see `blobs.rs`).
//!
//! The order feed: every server-side change to an order is a row of `feed` with a global
//! sequence number. A device's cursor is the highest seq it applied; answering a sync reads
//! the feed after the cursor (indexed), never every document.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("the database has schema version {found}, newer than this server supports ({supported})")]
    TooNew { found: u32, supported: u32 },
    #[error("{0} already exists")]
    Exists(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
}

pub type Result<T> = std::result::Result<T, Error>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpertRow {
    pub provider: String,
    pub id: String,
    pub name: String,
    pub categories: Vec<String>,
    pub brands: Vec<String>,
    pub fee_cents: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HelpRow {
    pub provider: String,
    pub id: String,
    pub order_id: String,
    pub engineer: String,
    pub expert_id: Option<String>,
    pub status: String,
    pub cost_cents: i64,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRow {
    pub id: String,
    pub provider: String,
    pub engineer_id: String,
    pub public_key: Vec<u8>,
    pub revoked: bool,
    pub journal_seq: u64,
    pub journal_head: Option<String>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct OrderRow {
    pub provider: String,
    pub id: String,
    pub engineer_id: String,
    pub status: String,
    pub priority: String,
    pub customer: String,
    pub updated_seq: u64,
    pub assigned_seq: u64,
    pub compacted_seq: u64,
}

/// One feed row after a cursor.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedRow {
    pub seq: u64,
    pub order_id: String,
    pub kind: String,
    pub origin: String,
    pub engineer_id: Option<String>,
}

/// A verified journal entry to store and log.
#[derive(Debug, Clone)]
pub struct JournalRow {
    pub seq: u64,
    pub order_id: Option<String>,
    pub kind: String,
    pub body: Vec<u8>,
    pub hash: String,
    pub signature: Vec<u8>,
    pub leaf: [u8; 32],
}

#[derive(Debug, Clone)]
pub struct ReceiptRow {
    pub order_id: String,
    pub revision: u32,
    pub sha256: String,
    pub canonical: Vec<u8>,
    pub strokes: Option<Vec<u8>>,
    pub message: Vec<u8>,
    pub signature: Vec<u8>,
    pub journal_seq: u64,
}

/// Reads of the order feed; inside [`Storage::snapshot`] they all see one committed state.
pub trait FeedReader {
    /// The highest feed position ever handed out (never goes backwards, even when
    /// compaction removed the newest rows).
    fn head(&self) -> Result<u64>;
    fn order(&self, provider: &str, id: &str) -> Result<Option<OrderRow>>;
    /// The stored document: the snapshot followed by the change chunks after it.
    fn document(&self, provider: &str, id: &str) -> Result<Vec<Vec<u8>>>;
    /// Feed rows after `cursor` up to `upto` concerning `engineer` (their orders, and orders
    /// taken away from them).
    fn feed(&self, provider: &str, engineer: &str, cursor: u64, upto: u64) -> Result<Vec<FeedRow>>;
    /// Change chunks of one order with seq in `(after, upto]`, skipping `origin`.
    fn chunks_after(&self, provider: &str, id: &str, after: u64, upto: u64, skip_origin: &str) -> Result<Vec<Vec<u8>>>;
}

/// Everything the server persists outside blob files.
pub trait Storage: Send + Sync {
    fn meta(&self, key: &str) -> Result<Option<String>>;
    fn set_meta(&self, key: &str, value: &str) -> Result<()>;

    fn create_provider(&self, id: &str, name: &str, token_hash: &str, at_ms: i64) -> Result<()>;
    fn provider_by_token(&self, token_hash: &str) -> Result<Option<String>>;

    fn create_code(&self, code_hash: &str, provider: &str, engineer_id: &str, expires_at: i64) -> Result<()>;
    /// Redeems a one-time code and registers the device with its token, atomically.
    fn enrol(&self, code_hash: &str, now_ms: i64, device_id: &str, public_key: &[u8], token_hash: &str) -> Result<(String, String)>;
    fn device_by_token(&self, token_hash: &str) -> Result<Option<DeviceRow>>;
    fn devices(&self, provider: &str) -> Result<Vec<DeviceRow>>;
    fn revoke_device(&self, provider: &str, device_id: &str, at_ms: i64) -> Result<()>;

    fn order(&self, provider: &str, id: &str) -> Result<Option<OrderRow>>;
    fn orders(&self, provider: &str, engineer: Option<&str>) -> Result<Vec<OrderRow>>;
    /// The stored document: the snapshot followed by the change chunks after it.
    fn document(&self, provider: &str, id: &str) -> Result<Vec<Vec<u8>>>;
    /// A new order: its snapshot and an `assign` feed row. Returns the seq.
    fn create_order(&self, row: &OrderRow, snapshot: &[u8]) -> Result<u64>;
    /// A change to an order: a `change` feed row, the summary columns, and when the
    /// engineer changed, `unassign`/`assign` rows. Returns the seq.
    fn append_change(&self, row: &OrderRow, origin: &str, chunk: &[u8], previous_engineer: Option<&str>) -> Result<u64>;
    /// Replaces the snapshot by `snapshot` (which holds every change up to `upto_seq`) and
    /// drops the change rows it covers, leaving a `compacted` marker row at `upto_seq`.
    fn compact(&self, provider: &str, id: &str, snapshot: &[u8], upto_seq: u64) -> Result<()>;
    fn change_rows(&self, provider: &str, id: &str) -> Result<u64>;

    /// The feed head ([`FeedReader::head`]).
    fn max_seq(&self) -> Result<u64>;
    /// Runs `f` with a reader whose every read sees the same committed state (a read
    /// transaction): a sync answer computed inside never mixes before and after a compaction.
    fn snapshot(&self, f: &mut dyn FnMut(&dyn FeedReader) -> Result<()>) -> Result<()>;
    /// Canonical SHA-256s of an order's signed receipts that a journal upload delivered.
    fn receipt_hashes(&self, provider: &str, order_id: &str) -> Result<Vec<String>>;

    /// Appends verified journal entries of a device and their leaves to the provider's log.
    /// Returns the leaf index of each entry.
    fn append_journal(&self, device: &DeviceRow, entries: &[JournalRow], receipts: &[ReceiptRow]) -> Result<Vec<u64>>;
    fn journal_hash(&self, device_id: &str, seq: u64) -> Result<Option<String>>;
    fn log_leaves(&self, provider: &str) -> Result<Vec<[u8; 32]>>;
    fn receipt_count(&self, provider: &str) -> Result<u64>;

    fn record_blob(&self, provider: &str, sha256: &str, size: u64, at_ms: i64) -> Result<bool>;
    fn has_blob(&self, provider: &str, sha256: &str) -> Result<bool>;
    fn blob_count(&self, provider: &str) -> Result<u64>;

    /// Adds part movements (id, order, author, JSON body); known ids are skipped. Returns
    /// how many were new.
    fn add_movements(&self, provider: &str, engineer: &str, rows: &[(String, Option<String>, String, String)]) -> Result<usize>;
    /// (seq, body) of an engineer's movements after `after`.
    fn movements_after(&self, provider: &str, engineer: &str, after: u64) -> Result<Vec<(u64, String)>>;
    fn close_order(&self, provider: &str, order_id: &str, at_ms: i64, by: &str) -> Result<()>;
    fn closeout(&self, provider: &str, order_id: &str) -> Result<Option<i64>>;

    fn add_expert(&self, e: &ExpertRow, token_hash: &str) -> Result<()>;
    fn experts(&self, provider: &str) -> Result<Vec<ExpertRow>>;
    fn expert_by_token(&self, token_hash: &str) -> Result<Option<ExpertRow>>;
    fn upsert_help(&self, h: &HelpRow) -> Result<()>;
    fn help(&self, provider: &str, id: &str) -> Result<Option<HelpRow>>;
    fn help_requests(&self, provider: &str, expert: Option<&str>) -> Result<Vec<HelpRow>>;

    fn add_certification(&self, id: &str, provider: &str, engineer: &str, body: &str, signature: &str) -> Result<()>;
    /// (id, body, signature) of an engineer's certifications.
    fn certifications(&self, provider: &str, engineer: &str) -> Result<Vec<(String, String, String)>>;
}

fn expert_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ExpertRow> {
    let list = |s: String| serde_json::from_str::<Vec<String>>(&s).unwrap_or_default();
    Ok(ExpertRow {
        provider: r.get(0)?,
        id: r.get(1)?,
        name: r.get(2)?,
        categories: list(r.get(3)?),
        brands: list(r.get(4)?),
        fee_cents: r.get(5)?,
    })
}

fn help_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<HelpRow> {
    Ok(HelpRow {
        provider: r.get(0)?,
        id: r.get(1)?,
        order_id: r.get(2)?,
        engineer: r.get(3)?,
        expert_id: r.get(4)?,
        status: r.get(5)?,
        cost_cents: r.get(6)?,
        created_at: r.get(7)?,
    })
}

const HELP_COLUMNS: &str = "provider, id, order_id, engineer, expert_id, status, cost_cents, created_at";

const MIGRATIONS: &[&str] = &[include_str!("migrations/001_server.sql"), include_str!("migrations/002_parts_help.sql")];

pub struct SqliteStorage {
    writer: Mutex<Connection>,
    reader: Mutex<Connection>,
}

fn lock(m: &Mutex<Connection>) -> std::sync::MutexGuard<'_, Connection> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl SqliteStorage {
    pub fn open(path: &Path) -> Result<Self> {
        // Created readable by this user only; SQLite gives its -wal and -shm the same mode.
        if !path.exists() {
            let _ = crate::blobs::private_file(path, true);
        }
        let mut w = Connection::open(path)?;
        w.busy_timeout(std::time::Duration::from_secs(10))?;
        let _: String = w.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        w.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")?;
        let found: u32 = w.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let supported = MIGRATIONS.len() as u32;
        if found > supported {
            return Err(Error::TooNew { found, supported });
        }
        let tx = w.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let found: u32 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", (i + 1) as u32)?;
        }
        tx.commit()?;
        let r = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
        r.busy_timeout(std::time::Duration::from_secs(10))?;
        Ok(Self { writer: Mutex::new(w), reader: Mutex::new(r) })
    }
}

fn device_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<DeviceRow> {
    Ok(DeviceRow {
        id: r.get(0)?,
        provider: r.get(1)?,
        engineer_id: r.get(2)?,
        public_key: r.get(3)?,
        revoked: r.get::<_, Option<i64>>(4)?.is_some(),
        journal_seq: r.get::<_, i64>(5)? as u64,
        journal_head: r.get(6)?,
    })
}

const DEVICE_COLS: &str = "d.id, d.provider, d.engineer_id, d.public_key, d.revoked_at, d.journal_seq, d.journal_head";
const ORDER_COLS: &str = "provider, id, engineer_id, status, priority, customer, updated_seq, assigned_seq, compacted_seq";

fn order_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<OrderRow> {
    Ok(OrderRow {
        provider: r.get(0)?,
        id: r.get(1)?,
        engineer_id: r.get(2)?,
        status: r.get(3)?,
        priority: r.get(4)?,
        customer: r.get(5)?,
        updated_seq: r.get::<_, i64>(6)? as u64,
        assigned_seq: r.get::<_, i64>(7)? as u64,
        compacted_seq: r.get::<_, i64>(8)? as u64,
    })
}

fn next_seq(tx: &rusqlite::Transaction<'_>, provider: &str, order: &str, kind: &str, origin: &str, engineer: Option<&str>, bytes: Option<&[u8]>) -> Result<u64> {
    tx.prepare_cached("INSERT INTO feed (provider, order_id, kind, origin, engineer_id, bytes) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?
        .execute(params![provider, order, kind, origin, engineer, bytes])?;
    Ok(tx.last_insert_rowid() as u64)
}

/// Feed reads on one connection (inside a read transaction when called from `snapshot`).
struct SqliteReader<'a>(&'a Connection);

impl FeedReader for SqliteReader<'_> {
    fn head(&self) -> Result<u64> {
        // `feed.seq` is AUTOINCREMENT: sqlite_sequence keeps the highest seq ever used, so
        // the head stays put when compaction deletes the newest change rows.
        let n: i64 = self.0.query_row(
            "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'feed'), 0), coalesce((SELECT max(seq) FROM feed), 0))",
            [],
            |r| r.get(0),
        )?;
        Ok(n as u64)
    }

    fn order(&self, provider: &str, id: &str) -> Result<Option<OrderRow>> {
        Ok(self.0
            .prepare_cached(&format!("SELECT {ORDER_COLS} FROM orders WHERE provider = ?1 AND id = ?2"))?
            .query_row([provider, id], order_row)
            .optional()?)
    }

    fn document(&self, provider: &str, id: &str) -> Result<Vec<Vec<u8>>> {
        let c = self.0;
        let snapshot: Vec<u8> = c
            .prepare_cached("SELECT snapshot FROM docs WHERE provider = ?1 AND order_id = ?2")?
            .query_row([provider, id], |r| r.get(0))
            .optional()?
            .ok_or_else(|| Error::NotFound(format!("order `{id}`")))?;
        let mut out = vec![snapshot];
        let mut st = c.prepare_cached(
            "SELECT f.bytes FROM feed f JOIN orders o ON o.provider = f.provider AND o.id = f.order_id \
             WHERE f.provider = ?1 AND f.order_id = ?2 AND f.kind = 'change' AND f.seq > o.compacted_seq ORDER BY f.seq",
        )?;
        let rows = st.query_map([provider, id], |r| r.get::<_, Vec<u8>>(0))?;
        for r in rows {
            out.push(r?);
        }
        Ok(out)
    }

    fn feed(&self, provider: &str, engineer: &str, cursor: u64, upto: u64) -> Result<Vec<FeedRow>> {
        let c = self.0;
        let mut st = c.prepare_cached(
            "SELECT f.seq, f.order_id, f.kind, f.origin, f.engineer_id FROM feed f \
             JOIN orders o ON o.provider = f.provider AND o.id = f.order_id \
             WHERE f.provider = ?1 AND f.seq > ?3 AND f.seq <= ?4 \
               AND (o.engineer_id = ?2 OR (f.kind = 'unassign' AND f.engineer_id = ?2)) \
             ORDER BY f.seq",
        )?;
        let rows = st.query_map(params![provider, engineer, cursor as i64, upto as i64], |r| {
            Ok(FeedRow { seq: r.get::<_, i64>(0)? as u64, order_id: r.get(1)?, kind: r.get(2)?, origin: r.get(3)?, engineer_id: r.get(4)? })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn chunks_after(&self, provider: &str, id: &str, after: u64, upto: u64, skip_origin: &str) -> Result<Vec<Vec<u8>>> {
        let c = self.0;
        let mut st = c.prepare_cached(
            "SELECT bytes FROM feed WHERE provider = ?1 AND order_id = ?2 AND kind = 'change' AND seq > ?3 AND seq <= ?4 AND origin != ?5 ORDER BY seq",
        )?;
        let rows = st.query_map(params![provider, id, after as i64, upto as i64, skip_origin], |r| r.get::<_, Vec<u8>>(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

impl Storage for SqliteStorage {
    fn meta(&self, key: &str) -> Result<Option<String>> {
        Ok(lock(&self.writer).query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0)).optional()?)
    }

    fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        lock(&self.writer).execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)", [key, value])?;
        Ok(())
    }

    fn create_provider(&self, id: &str, name: &str, token_hash: &str, at_ms: i64) -> Result<()> {
        let c = lock(&self.writer);
        let n = c.execute(
            "INSERT OR IGNORE INTO providers (id, name, token_hash, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![id, name, token_hash, at_ms],
        )?;
        if n == 0 {
            return Err(Error::Exists(format!("provider `{id}`")));
        }
        Ok(())
    }

    fn provider_by_token(&self, token_hash: &str) -> Result<Option<String>> {
        Ok(lock(&self.reader).query_row("SELECT id FROM providers WHERE token_hash = ?1", [token_hash], |r| r.get(0)).optional()?)
    }

    fn create_code(&self, code_hash: &str, provider: &str, engineer_id: &str, expires_at: i64) -> Result<()> {
        lock(&self.writer).execute(
            "INSERT INTO enrol_codes (code_hash, provider, engineer_id, expires_at) VALUES (?1, ?2, ?3, ?4)",
            params![code_hash, provider, engineer_id, expires_at],
        )?;
        Ok(())
    }

    fn enrol(&self, code_hash: &str, now_ms: i64, device_id: &str, public_key: &[u8], token_hash: &str) -> Result<(String, String)> {
        let mut c = lock(&self.writer);
        let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let code: Option<(String, String, i64, Option<i64>)> = tx
            .query_row("SELECT provider, engineer_id, expires_at, used_at FROM enrol_codes WHERE code_hash = ?1", [code_hash], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .optional()?;
        let Some((provider, engineer, expires, used)) = code else { return Err(Error::NotFound("enrolment code".into())) };
        if used.is_some() {
            return Err(Error::Conflict("the enrolment code was already used".into()));
        }
        if expires < now_ms {
            return Err(Error::Conflict("the enrolment code has expired".into()));
        }
        let existing: Option<(String, Option<i64>)> =
            tx.query_row("SELECT provider, revoked_at FROM devices WHERE id = ?1", [device_id], |r| Ok((r.get(0)?, r.get(1)?))).optional()?;
        // One answer for "another provider" and "another key": the caller learns nothing
        // about where else an id is enrolled.
        const TAKEN: &str = "this device id cannot be enrolled with this key; generate a new device identity";
        match existing {
            Some((p, _)) if p != provider => return Err(Error::Conflict(TAKEN.into())),
            Some(_) => {
                // Re-enrolment (after revocation, or a new engineer): same key required.
                let key: Vec<u8> = tx.query_row("SELECT public_key FROM devices WHERE id = ?1", [device_id], |r| r.get(0))?;
                if key != public_key {
                    return Err(Error::Conflict(TAKEN.into()));
                }
                tx.execute("UPDATE devices SET engineer_id = ?2, revoked_at = NULL WHERE id = ?1", params![device_id, engineer])?;
                tx.execute("UPDATE tokens SET revoked_at = ?2 WHERE device_id = ?1 AND revoked_at IS NULL", params![device_id, now_ms])?;
            }
            None => {
                tx.execute(
                    "INSERT INTO devices (id, provider, engineer_id, public_key, enrolled_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![device_id, provider, engineer, public_key, now_ms],
                )?;
            }
        }
        tx.execute("UPDATE enrol_codes SET used_at = ?2, device_id = ?3 WHERE code_hash = ?1", params![code_hash, now_ms, device_id])?;
        tx.execute("INSERT INTO tokens (hash, device_id, issued_at) VALUES (?1, ?2, ?3)", params![token_hash, device_id, now_ms])?;
        tx.commit()?;
        Ok((provider, engineer))
    }

    fn device_by_token(&self, token_hash: &str) -> Result<Option<DeviceRow>> {
        Ok(lock(&self.reader)
            .prepare_cached(&format!(
                "SELECT {DEVICE_COLS} FROM tokens t JOIN devices d ON d.id = t.device_id WHERE t.hash = ?1 AND t.revoked_at IS NULL"
            ))?
            .query_row([token_hash], device_row)
            .optional()?)
    }

    fn devices(&self, provider: &str) -> Result<Vec<DeviceRow>> {
        let c = lock(&self.reader);
        let mut st = c.prepare_cached(&format!("SELECT {DEVICE_COLS} FROM devices d WHERE d.provider = ?1 ORDER BY d.id"))?;
        let rows = st.query_map([provider], device_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn revoke_device(&self, provider: &str, device_id: &str, at_ms: i64) -> Result<()> {
        let mut c = lock(&self.writer);
        let tx = c.transaction()?;
        let n = tx.execute("UPDATE devices SET revoked_at = ?3 WHERE id = ?1 AND provider = ?2", params![device_id, provider, at_ms])?;
        if n == 0 {
            return Err(Error::NotFound(format!("device `{device_id}`")));
        }
        tx.execute("UPDATE tokens SET revoked_at = ?2 WHERE device_id = ?1 AND revoked_at IS NULL", params![device_id, at_ms])?;
        tx.commit()?;
        Ok(())
    }

    fn order(&self, provider: &str, id: &str) -> Result<Option<OrderRow>> {
        SqliteReader(&lock(&self.writer)).order(provider, id)
    }

    fn orders(&self, provider: &str, engineer: Option<&str>) -> Result<Vec<OrderRow>> {
        let c = lock(&self.reader);
        let mut st = c.prepare_cached(&format!(
            "SELECT {ORDER_COLS} FROM orders WHERE provider = ?1 AND (?2 IS NULL OR engineer_id = ?2) ORDER BY id"
        ))?;
        let rows = st.query_map(params![provider, engineer], order_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn document(&self, provider: &str, id: &str) -> Result<Vec<Vec<u8>>> {
        SqliteReader(&lock(&self.writer)).document(provider, id)
    }

    fn create_order(&self, row: &OrderRow, snapshot: &[u8]) -> Result<u64> {
        let mut c = lock(&self.writer);
        let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let exists: bool = tx.query_row("SELECT EXISTS (SELECT 1 FROM orders WHERE provider = ?1 AND id = ?2)", [&row.provider, &row.id], |r| r.get(0))?;
        if exists {
            return Err(Error::Exists(format!("order `{}`", row.id)));
        }
        let seq = next_seq(&tx, &row.provider, &row.id, "assign", "server", Some(&row.engineer_id), None)?;
        tx.execute(
            &format!("INSERT INTO orders ({ORDER_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?7)"),
            params![row.provider, row.id, row.engineer_id, row.status, row.priority, row.customer, seq as i64],
        )?;
        tx.execute("INSERT INTO docs (provider, order_id, snapshot) VALUES (?1, ?2, ?3)", params![row.provider, row.id, snapshot])?;
        tx.commit()?;
        Ok(seq)
    }

    fn append_change(&self, row: &OrderRow, origin: &str, chunk: &[u8], previous_engineer: Option<&str>) -> Result<u64> {
        let mut c = lock(&self.writer);
        let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let seq = next_seq(&tx, &row.provider, &row.id, "change", origin, None, Some(chunk))?;
        let mut assigned = None;
        if let Some(prev) = previous_engineer.filter(|p| *p != row.engineer_id) {
            next_seq(&tx, &row.provider, &row.id, "unassign", origin, Some(prev), None)?;
            assigned = Some(next_seq(&tx, &row.provider, &row.id, "assign", origin, Some(&row.engineer_id), None)?);
        }
        let n = tx
            .prepare_cached(
                "UPDATE orders SET engineer_id = ?3, status = ?4, priority = ?5, customer = ?6, updated_seq = ?7, \
                 assigned_seq = coalesce(?8, assigned_seq) WHERE provider = ?1 AND id = ?2",
            )?
            .execute(params![row.provider, row.id, row.engineer_id, row.status, row.priority, row.customer, seq as i64, assigned.map(|s| s as i64)])?;
        if n != 1 {
            return Err(Error::NotFound(format!("order `{}`", row.id)));
        }
        tx.commit()?;
        Ok(seq)
    }

    fn compact(&self, provider: &str, id: &str, snapshot: &[u8], upto_seq: u64) -> Result<()> {
        let mut c = lock(&self.writer);
        let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute("UPDATE docs SET snapshot = ?3 WHERE provider = ?1 AND order_id = ?2", params![provider, id, snapshot])?;
        // The change rows folded into the snapshot go, but the order keeps one feed row at
        // `upto_seq` (kind `compacted`, no bytes): a device behind it still finds the order in
        // the feed and, its cursor being below `compacted_seq`, receives it whole. Without
        // it the order vanished from the feed and such a device passed its changes.
        tx.execute(
            "DELETE FROM feed WHERE provider = ?1 AND order_id = ?2 AND kind IN ('change', 'compacted') AND seq < ?3",
            params![provider, id, upto_seq as i64],
        )?;
        tx.execute(
            "UPDATE feed SET kind = 'compacted', bytes = NULL WHERE provider = ?1 AND order_id = ?2 AND seq = ?3 AND kind = 'change'",
            params![provider, id, upto_seq as i64],
        )?;
        tx.execute("UPDATE orders SET compacted_seq = ?3 WHERE provider = ?1 AND id = ?2", params![provider, id, upto_seq as i64])?;
        tx.commit()?;
        Ok(())
    }

    fn change_rows(&self, provider: &str, id: &str) -> Result<u64> {
        let n: i64 = lock(&self.writer).query_row(
            "SELECT count(*) FROM feed WHERE provider = ?1 AND order_id = ?2 AND kind = 'change'",
            [provider, id],
            |r| r.get(0),
        )?;
        Ok(n as u64)
    }

    fn max_seq(&self) -> Result<u64> {
        SqliteReader(&lock(&self.reader)).head()
    }

    fn snapshot(&self, f: &mut dyn FnMut(&dyn FeedReader) -> Result<()>) -> Result<()> {
        let mut c = lock(&self.reader);
        // A deferred read transaction on a WAL database: its first read fixes the snapshot.
        let tx = c.transaction()?;
        f(&SqliteReader(&tx))?;
        tx.commit()?;
        Ok(())
    }

    fn receipt_hashes(&self, provider: &str, order_id: &str) -> Result<Vec<String>> {
        let c = lock(&self.writer);
        let mut st = c.prepare_cached("SELECT sha256 FROM receipts WHERE provider = ?1 AND order_id = ?2 ORDER BY revision")?;
        let rows = st.query_map([provider, order_id], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn append_journal(&self, device: &DeviceRow, entries: &[JournalRow], receipts: &[ReceiptRow]) -> Result<Vec<u64>> {
        let mut c = lock(&self.writer);
        let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
        // Re-check under the write lock: a concurrent duplicate upload may have won.
        let (seq, _head): (i64, Option<String>) =
            tx.query_row("SELECT journal_seq, journal_head FROM devices WHERE id = ?1", [&device.id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        if seq as u64 != device.journal_seq {
            return Err(Error::Conflict(format!("the journal moved to {seq} meanwhile")));
        }
        let mut size: i64 = tx.query_row("SELECT coalesce(max(idx) + 1, 0) FROM log_leaves WHERE provider = ?1", [&device.provider], |r| r.get(0))?;
        let mut indices = Vec::with_capacity(entries.len());
        for e in entries {
            tx.prepare_cached(
                "INSERT INTO journal (device_id, seq, order_id, kind, body, hash, signature) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![device.id, e.seq as i64, e.order_id, e.kind, e.body, e.hash, e.signature])?;
            tx.prepare_cached("INSERT INTO log_leaves (provider, idx, leaf, device_id, seq) VALUES (?1, ?2, ?3, ?4, ?5)")?
                .execute(params![device.provider, size, e.leaf.as_slice(), device.id, e.seq as i64])?;
            indices.push(size as u64);
            size += 1;
        }
        for r in receipts {
            tx.prepare_cached(
                "INSERT OR IGNORE INTO receipts (provider, order_id, revision, sha256, canonical, strokes, message, signature, device_id, journal_seq) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?
            .execute(params![device.provider, r.order_id, r.revision, r.sha256, r.canonical, r.strokes, r.message, r.signature, device.id, r.journal_seq as i64])?;
        }
        if let Some(last) = entries.last() {
            tx.execute("UPDATE devices SET journal_seq = ?2, journal_head = ?3 WHERE id = ?1", params![device.id, last.seq as i64, last.hash])?;
        }
        tx.commit()?;
        Ok(indices)
    }

    fn journal_hash(&self, device_id: &str, seq: u64) -> Result<Option<String>> {
        Ok(lock(&self.reader)
            .query_row("SELECT hash FROM journal WHERE device_id = ?1 AND seq = ?2", params![device_id, seq as i64], |r| r.get(0))
            .optional()?)
    }

    fn log_leaves(&self, provider: &str) -> Result<Vec<[u8; 32]>> {
        let c = lock(&self.writer);
        let mut st = c.prepare_cached("SELECT leaf FROM log_leaves WHERE provider = ?1 ORDER BY idx")?;
        let rows = st.query_map([provider], |r| r.get::<_, Vec<u8>>(0))?;
        let mut out = Vec::new();
        for r in rows {
            let v = r?;
            out.push(v.try_into().map_err(|_| Error::Conflict("a log leaf is not 32 bytes".into()))?);
        }
        Ok(out)
    }

    fn receipt_count(&self, provider: &str) -> Result<u64> {
        let n: i64 = lock(&self.reader).query_row("SELECT count(*) FROM receipts WHERE provider = ?1", [provider], |r| r.get(0))?;
        Ok(n as u64)
    }

    fn record_blob(&self, provider: &str, sha256: &str, size: u64, at_ms: i64) -> Result<bool> {
        let n = lock(&self.writer).execute(
            "INSERT OR IGNORE INTO blobs (provider, sha256, size, stored_at) VALUES (?1, ?2, ?3, ?4)",
            params![provider, sha256, size as i64, at_ms],
        )?;
        Ok(n == 1)
    }

    fn has_blob(&self, provider: &str, sha256: &str) -> Result<bool> {
        Ok(lock(&self.reader).query_row(
            "SELECT EXISTS (SELECT 1 FROM blobs WHERE provider = ?1 AND sha256 = ?2)",
            [provider, sha256],
            |r| r.get(0),
        )?)
    }

    fn blob_count(&self, provider: &str) -> Result<u64> {
        let n: i64 = lock(&self.reader).query_row("SELECT count(*) FROM blobs WHERE provider = ?1", [provider], |r| r.get(0))?;
        Ok(n as u64)
    }

    fn add_movements(&self, provider: &str, engineer: &str, rows: &[(String, Option<String>, String, String)]) -> Result<usize> {
        let mut c = lock(&self.writer);
        let tx = c.transaction()?;
        let mut n = 0;
        for (id, order, author, body) in rows {
            n += tx
                .prepare_cached("INSERT OR IGNORE INTO part_movements (id, provider, engineer, order_id, author, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?
                .execute(params![id, provider, engineer, order, author, body])?;
        }
        tx.commit()?;
        Ok(n)
    }

    fn movements_after(&self, provider: &str, engineer: &str, after: u64) -> Result<Vec<(u64, String)>> {
        let c = lock(&self.reader);
        let mut stmt = c.prepare_cached("SELECT seq, body FROM part_movements WHERE provider = ?1 AND engineer = ?2 AND seq > ?3 ORDER BY seq")?;
        let rows = stmt.query_map(params![provider, engineer, after as i64], |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    fn close_order(&self, provider: &str, order_id: &str, at_ms: i64, by: &str) -> Result<()> {
        let c = lock(&self.writer);
        c.execute(
            "INSERT OR IGNORE INTO closeouts (provider, order_id, closed_at, closed_by) VALUES (?1, ?2, ?3, ?4)",
            params![provider, order_id, at_ms, by],
        )?;
        Ok(())
    }

    fn closeout(&self, provider: &str, order_id: &str) -> Result<Option<i64>> {
        let c = lock(&self.reader);
        Ok(c.query_row("SELECT closed_at FROM closeouts WHERE provider = ?1 AND order_id = ?2", params![provider, order_id], |r| r.get(0))
            .optional()?)
    }

    fn add_expert(&self, e: &ExpertRow, token_hash: &str) -> Result<()> {
        let c = lock(&self.writer);
        let json = |v: &Vec<String>| serde_json::to_string(v).unwrap_or_else(|_| "[]".into());
        c.execute(
            "INSERT INTO experts (provider, id, name, categories, brands, fee_cents, token_hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![e.provider, e.id, e.name, json(&e.categories), json(&e.brands), e.fee_cents, token_hash],
        )
        .map_err(|err| match err {
            rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation => Error::Exists(format!("expert {}", e.id)),
            other => other.into(),
        })?;
        Ok(())
    }

    fn experts(&self, provider: &str) -> Result<Vec<ExpertRow>> {
        let c = lock(&self.reader);
        let mut stmt = c.prepare_cached("SELECT provider, id, name, categories, brands, fee_cents FROM experts WHERE provider = ?1 ORDER BY id")?;
        let rows = stmt.query_map([provider], expert_row)?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    fn expert_by_token(&self, token_hash: &str) -> Result<Option<ExpertRow>> {
        let c = lock(&self.reader);
        Ok(c.query_row("SELECT provider, id, name, categories, brands, fee_cents FROM experts WHERE token_hash = ?1", [token_hash], expert_row)
            .optional()?)
    }

    fn upsert_help(&self, h: &HelpRow) -> Result<()> {
        let c = lock(&self.writer);
        c.execute(
            &format!(
                "INSERT INTO help_requests ({HELP_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
                 ON CONFLICT (provider, id) DO UPDATE SET expert_id = excluded.expert_id, status = excluded.status, cost_cents = excluded.cost_cents"
            ),
            params![h.provider, h.id, h.order_id, h.engineer, h.expert_id, h.status, h.cost_cents, h.created_at],
        )?;
        Ok(())
    }

    fn help(&self, provider: &str, id: &str) -> Result<Option<HelpRow>> {
        let c = lock(&self.reader);
        Ok(c.query_row(&format!("SELECT {HELP_COLUMNS} FROM help_requests WHERE provider = ?1 AND id = ?2"), params![provider, id], help_row)
            .optional()?)
    }

    fn help_requests(&self, provider: &str, expert: Option<&str>) -> Result<Vec<HelpRow>> {
        let c = lock(&self.reader);
        let mut stmt = c.prepare_cached(&format!(
            "SELECT {HELP_COLUMNS} FROM help_requests WHERE provider = ?1 AND (?2 IS NULL OR expert_id = ?2) ORDER BY created_at, id"
        ))?;
        let rows = stmt.query_map(params![provider, expert], help_row)?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    fn add_certification(&self, id: &str, provider: &str, engineer: &str, body: &str, signature: &str) -> Result<()> {
        let c = lock(&self.writer);
        c.execute(
            "INSERT OR IGNORE INTO certifications (id, provider, engineer, body, signature) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![id, provider, engineer, body, signature],
        )?;
        Ok(())
    }

    fn certifications(&self, provider: &str, engineer: &str) -> Result<Vec<(String, String, String)>> {
        let c = lock(&self.reader);
        let mut stmt = c.prepare_cached("SELECT id, body, signature FROM certifications WHERE provider = ?1 AND engineer = ?2 ORDER BY id")?;
        let rows = stmt.query_map(params![provider, engineer], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_newer_database_is_refused_and_migration_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite3");
        drop(SqliteStorage::open(&path).unwrap());
        drop(SqliteStorage::open(&path).unwrap());
        Connection::open(&path).unwrap().pragma_update(None, "user_version", 99).unwrap();
        assert!(matches!(SqliteStorage::open(&path), Err(Error::TooNew { found: 99, supported: 2 })));
    }

    #[test]
    fn codes_are_single_use_and_expire() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStorage::open(&dir.path().join("s.sqlite3")).unwrap();
        s.create_provider("p", "P", "tok", 0).unwrap();
        assert!(matches!(s.create_provider("p", "P", "tok2", 0), Err(Error::Exists(_))));
        s.create_code("c1", "p", "eng-1", 1_000).unwrap();
        s.create_code("c2", "p", "eng-1", 1_000).unwrap();
        assert!(matches!(s.enrol("c1", 2_000, "d1", b"key", "t1"), Err(Error::Conflict(_))), "expired");
        s.create_code("c3", "p", "eng-1", 10_000).unwrap();
        assert_eq!(s.enrol("c3", 2_000, "d1", b"key", "t1").unwrap(), ("p".into(), "eng-1".into()));
        assert!(matches!(s.enrol("c3", 2_000, "d2", b"key2", "t2"), Err(Error::Conflict(_))), "used");
        assert!(matches!(s.enrol("nope", 2_000, "d2", b"key2", "t2"), Err(Error::NotFound(_))));
        assert_eq!(s.device_by_token("t1").unwrap().unwrap().engineer_id, "eng-1");
        s.revoke_device("p", "d1", 3_000).unwrap();
        assert!(s.device_by_token("t1").unwrap().is_none(), "revoked tokens stop working");
        // Re-enrolment needs the same key.
        s.create_code("c4", "p", "eng-2", 10_000).unwrap();
        assert!(matches!(s.enrol("c4", 4_000, "d1", b"other-key", "t3"), Err(Error::Conflict(_))));
        s.create_code("c5", "p", "eng-2", 10_000).unwrap();
        s.enrol("c5", 4_000, "d1", b"key", "t4").unwrap();
        let d = s.device_by_token("t4").unwrap().unwrap();
        assert_eq!((d.engineer_id.as_str(), d.revoked), ("eng-2", false));
    }
}
