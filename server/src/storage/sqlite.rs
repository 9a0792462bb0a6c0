//! The embedded backend: one SQLite file in WAL mode, numbered migrations (`migrations/`),
//! one writer connection and one reader connection. The order feed: every server-side
//! change to an order is a row of `feed` with a global AUTOINCREMENT sequence; a device's
//! cursor is the highest seq it applied, and answering a sync reads the feed after the
//! cursor (indexed), never every document.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::{
    log_error, Admit, CertificationRow, Compaction, DeviceRow, Enrolled, Error, ExpertRow, FeedReader, HelpRow, JournalRow, MetaKey, MovementRecord, NewChange,
    OrderEntry, OrderRow, ReceiptRow, Result, Storage, StoredChange, StoredMovement,
};

mod feed;
mod log;
mod reads;

use feed::{change_rows, compact, next_seq, pos, SqliteReader};

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::Backend(Box::new(e))
    }
}

/// A stored JSON list of strings; unreadable text is an error, never an empty list.
fn string_list(column: usize, text: String) -> rusqlite::Result<Vec<String>> {
    serde_json::from_str::<Vec<String>>(&text).map_err(|e| rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Text, Box::new(e)))
}

fn expert_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ExpertRow> {
    Ok(ExpertRow {
        provider: r.get(0)?,
        id: r.get(1)?,
        name: r.get(2)?,
        categories: string_list(3, r.get(3)?)?,
        brands: string_list(4, r.get(4)?)?,
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

const MIGRATIONS: &[&str] = &[
    include_str!("migrations/001_server.sql"),
    include_str!("migrations/002_parts_help.sql"),
    include_str!("migrations/003_attestation.sql"),
    include_str!("migrations/004_log_nodes.sql"),
    include_str!("migrations/005_order_summary.sql"),
];

pub struct SqliteStorage {
    writer: Mutex<Connection>,
    reader: Mutex<Connection>,
    path: std::path::PathBuf,
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
        let mut w = onsite_core::store::connect(path, rusqlite::OpenFlags::default())?;
        w.busy_timeout(std::time::Duration::from_secs(10))?;
        onsite_core::store::stable_plans(&w)?;
        let _: String = w.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        // A journal upload of a day's work writes ~15 MB in one transaction: with SQLite's
        // default 2 MB page cache the writer spilled dirty pages into the WAL mid-transaction
        // (6% of the upload's CPU). The cache is a ceiling, not an allocation.
        w.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA cache_size = -32768;")?;
        onsite_core::migrate::run(&mut w, MIGRATIONS).map_err(|e| match e {
            onsite_core::migrate::Error::TooNew { found, supported } => Error::TooNew { found, supported },
            onsite_core::migrate::Error::Sqlite(e) => e.into(),
        })?;
        let r = onsite_core::store::connect(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
        r.busy_timeout(std::time::Duration::from_secs(10))?;
        onsite_core::store::stable_plans(&r)?;
        Ok(Self { writer: Mutex::new(w), reader: Mutex::new(r), path: path.to_path_buf() })
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
        attestation: r.get(7)?,
        last_seen_ms: r.get(8)?,
    })
}

const DEVICE_COLS: &str = "d.id, d.provider, d.engineer_id, d.public_key, d.revoked_at, d.journal_seq, d.journal_head, d.attestation, d.last_seen_ms";
const ORDER_COLS: &str = "provider, id, engineer_id, status, priority, customer, updated_seq, assigned_seq, compacted_seq, summary";

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
        summary: r.get(9)?,
    })
}

impl Storage for SqliteStorage {
    fn meta(&self, key: MetaKey) -> Result<Option<String>> {
        Ok(lock(&self.writer).query_row("SELECT value FROM meta WHERE key = ?1", [key.as_str()], |r| r.get(0)).optional()?)
    }

    fn set_meta(&self, key: MetaKey, value: &str) -> Result<()> {
        lock(&self.writer).execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)", [key.as_str(), value])?;
        Ok(())
    }

    fn create_provider(&self, id: &str, name: &str, token_hash: &str, at_ms: i64) -> Result<()> {
        let c = lock(&self.writer);
        let n =
            c.execute("INSERT OR IGNORE INTO providers (id, name, token_hash, created_at) VALUES (?1, ?2, ?3, ?4)", params![id, name, token_hash, at_ms])?;
        if n == 0 {
            return Err(Error::Exists(format!("provider `{id}`")));
        }
        Ok(())
    }

    fn provider_by_token(&self, token_hash: &str) -> Result<Option<String>> {
        Ok(lock(&self.reader).query_row("SELECT id FROM providers WHERE token_hash = ?1", [token_hash], |r| r.get(0)).optional()?)
    }

    fn provider_name(&self, id: &str) -> Result<Option<String>> {
        Ok(lock(&self.reader).query_row("SELECT name FROM providers WHERE id = ?1", [id], |r| r.get(0)).optional()?)
    }

    fn create_code(&self, code_hash: &str, provider: &str, engineer_id: &str, expires_at: i64) -> Result<()> {
        lock(&self.writer).execute(
            "INSERT INTO enrol_codes (code_hash, provider, engineer_id, expires_at) VALUES (?1, ?2, ?3, ?4)",
            params![code_hash, provider, engineer_id, expires_at],
        )?;
        Ok(())
    }

    fn enrol(&self, code_hash: &str, now_ms: i64, device_id: &str, public_key: &[u8], token_hash: &str, admit: Admit<'_>) -> Result<Enrolled> {
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
        let attestation = admit(&provider)?;
        match existing {
            Some((p, _)) if p != provider => return Err(Error::Conflict(TAKEN.into())),
            Some(_) => {
                // Re-enrolment (after revocation, or a new engineer): same key required.
                let key: Vec<u8> = tx.query_row("SELECT public_key FROM devices WHERE id = ?1", [device_id], |r| r.get(0))?;
                if key != public_key {
                    return Err(Error::Conflict(TAKEN.into()));
                }
                tx.execute(
                    "UPDATE devices SET engineer_id = ?2, revoked_at = NULL, attestation = COALESCE(?3, attestation) WHERE id = ?1",
                    params![device_id, engineer, attestation],
                )?;
                tx.execute("UPDATE tokens SET revoked_at = ?2 WHERE device_id = ?1 AND revoked_at IS NULL", params![device_id, now_ms])?;
            }
            None => {
                tx.execute(
                    "INSERT INTO devices (id, provider, engineer_id, public_key, enrolled_at, attestation) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![device_id, provider, engineer, public_key, now_ms, attestation],
                )?;
            }
        }
        tx.execute("UPDATE enrol_codes SET used_at = ?2, device_id = ?3 WHERE code_hash = ?1", params![code_hash, now_ms, device_id])?;
        tx.execute("INSERT INTO tokens (hash, device_id, issued_at) VALUES (?1, ?2, ?3)", params![token_hash, device_id, now_ms])?;
        tx.commit()?;
        Ok(Enrolled { provider, engineer_id: engineer })
    }

    fn device_by_token(&self, token_hash: &str) -> Result<Option<DeviceRow>> {
        Ok(lock(&self.reader)
            .prepare_cached(&format!("SELECT {DEVICE_COLS} FROM tokens t JOIN devices d ON d.id = t.device_id WHERE t.hash = ?1 AND t.revoked_at IS NULL"))?
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
        let mut st = c.prepare_cached(&format!("SELECT {ORDER_COLS} FROM orders WHERE provider = ?1 AND (?2 IS NULL OR engineer_id = ?2) ORDER BY id"))?;
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
            &format!("INSERT INTO orders ({ORDER_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?7, ?8)"),
            params![row.provider, row.id, row.engineer_id, row.status, row.priority, row.customer, seq as i64, row.summary],
        )?;
        tx.execute("INSERT INTO docs (provider, order_id, snapshot) VALUES (?1, ?2, ?3)", params![row.provider, row.id, snapshot])?;
        tx.commit()?;
        Ok(seq)
    }

    fn store_change(&self, change: &NewChange<'_>, compaction: Compaction<'_>) -> Result<StoredChange> {
        let NewChange { row, origin, chunk, previous_engineer, expected_seq } = *change;
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
                 assigned_seq = coalesce(?8, assigned_seq), summary = ?10 WHERE provider = ?1 AND id = ?2 AND updated_seq = ?9",
            )?
            .execute(params![
                row.provider,
                row.id,
                row.engineer_id,
                row.status,
                row.priority,
                row.customer,
                seq as i64,
                assigned.map(|s| s as i64),
                pos(expected_seq),
                row.summary
            ])?;
        if n != 1 {
            let exists: bool = tx.query_row("SELECT EXISTS (SELECT 1 FROM orders WHERE provider = ?1 AND id = ?2)", [&row.provider, &row.id], |r| r.get(0))?;
            return Err(if exists { Error::Stale(row.id.clone()) } else { Error::NotFound(format!("order `{}`", row.id)) });
        }
        let compacted = change_rows(&tx, &row.provider, &row.id)? > compaction.after_rows;
        if compacted {
            compact(&tx, &row.provider, &row.id, &(compaction.snapshot)(), seq)?;
        }
        tx.commit()?;
        Ok(StoredChange { seq, compacted })
    }

    fn change_rows(&self, provider: &str, id: &str) -> Result<u64> {
        change_rows(&lock(&self.writer), provider, id)
    }

    fn max_seq(&self) -> Result<u64> {
        SqliteReader(&lock(&self.reader)).head()
    }

    fn describe(&self) -> String {
        format!("sqlite://{}", self.path.display())
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
        let size = log::size(&tx, &device.provider)? as i64;
        let leaves: Vec<[u8; 32]> = entries.iter().map(|e| e.leaf).collect();
        let nodes =
            onsite_core::evidence::log::tree::append(&mut log::Nodes { conn: &tx, provider: &device.provider }, size as u64, &leaves).map_err(log_error)?;
        log::write_nodes(&tx, &device.provider, &nodes)?;
        let mut indices = Vec::with_capacity(entries.len());
        for (idx, e) in (size..).zip(entries) {
            tx.prepare_cached("INSERT INTO journal (device_id, seq, order_id, kind, body, hash, signature) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")?
                .execute(params![device.id, e.seq as i64, e.order_id, e.kind, e.body, e.hash, e.signature])?;
            tx.prepare_cached("INSERT INTO log_leaves (provider, idx, leaf, device_id, seq) VALUES (?1, ?2, ?3, ?4, ?5)")?.execute(params![
                device.provider,
                idx,
                e.leaf.as_slice(),
                device.id,
                e.seq as i64
            ])?;
            indices.push(idx as u64);
        }
        for r in receipts {
            tx.prepare_cached(
                "INSERT OR IGNORE INTO receipts (provider, order_id, revision, sha256, canonical, strokes, message, signature, device_id, journal_seq) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?
            .execute(params![
                device.provider,
                r.order_id,
                r.revision,
                r.sha256,
                r.canonical,
                r.strokes,
                r.message,
                r.signature,
                device.id,
                r.journal_seq as i64
            ])?;
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

    fn log_size(&self, provider: &str) -> Result<u64> {
        log::size(&lock(&self.reader), provider)
    }

    fn log_nodes(&self, provider: &str, ids: &[(u8, u64)]) -> Result<Vec<Option<[u8; 32]>>> {
        log::nodes(&lock(&self.reader), provider, ids)
    }

    fn log_entries(&self, provider: &str, start: u64, count: u64) -> Result<Vec<Vec<u8>>> {
        log::entries(&lock(&self.reader), provider, start, count)
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

    fn touch_device(&self, device_id: &str, at_ms: i64) -> Result<()> {
        lock(&self.writer).execute("UPDATE devices SET last_seen_ms = max(coalesce(last_seen_ms, 0), ?2) WHERE id = ?1", params![device_id, at_ms])?;
        Ok(())
    }

    fn receipts(&self, provider: &str, order_id: &str) -> Result<Vec<(String, ReceiptRow)>> {
        reads::receipts(&lock(&self.reader), provider, order_id)
    }

    fn order_photo_entries(&self, provider: &str, order_id: &str) -> Result<Vec<OrderEntry>> {
        reads::order_photo_entries(&lock(&self.reader), provider, order_id)
    }

    fn record_blob(&self, provider: &str, sha256: &str, size: u64, at_ms: i64) -> Result<bool> {
        let n = lock(&self.writer).execute(
            "INSERT OR IGNORE INTO blobs (provider, sha256, size, stored_at) VALUES (?1, ?2, ?3, ?4)",
            params![provider, sha256, size as i64, at_ms],
        )?;
        Ok(n == 1)
    }

    fn has_blob(&self, provider: &str, sha256: &str) -> Result<bool> {
        Ok(lock(&self.reader).query_row("SELECT EXISTS (SELECT 1 FROM blobs WHERE provider = ?1 AND sha256 = ?2)", [provider, sha256], |r| r.get(0))?)
    }

    fn blob_count(&self, provider: &str) -> Result<u64> {
        let n: i64 = lock(&self.reader).query_row("SELECT count(*) FROM blobs WHERE provider = ?1", [provider], |r| r.get(0))?;
        Ok(n as u64)
    }

    fn add_movements(&self, provider: &str, engineer: &str, rows: &[MovementRecord]) -> Result<usize> {
        let mut c = lock(&self.writer);
        let tx = c.transaction()?;
        let mut n = 0;
        for m in rows {
            n += tx
                .prepare_cached("INSERT OR IGNORE INTO part_movements (id, provider, engineer, order_id, author, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?
                .execute(params![m.id, provider, engineer, m.order_id, m.author, m.body])?;
        }
        tx.commit()?;
        Ok(n)
    }

    fn movements_after(&self, provider: &str, engineer: &str, after: u64) -> Result<Vec<StoredMovement>> {
        let c = lock(&self.reader);
        let mut stmt = c.prepare_cached("SELECT seq, body FROM part_movements WHERE provider = ?1 AND engineer = ?2 AND seq > ?3 ORDER BY seq")?;
        let rows = stmt.query_map(params![provider, engineer, pos(after)], |r| Ok(StoredMovement { seq: r.get::<_, i64>(0)? as u64, body: r.get(1)? }))?;
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
        Ok(c.query_row("SELECT closed_at FROM closeouts WHERE provider = ?1 AND order_id = ?2", params![provider, order_id], |r| r.get(0)).optional()?)
    }

    fn add_expert(&self, e: &ExpertRow, token_hash: &str) -> Result<()> {
        let c = lock(&self.writer);
        let json = |v: &Vec<String>| serde_json::to_string(v).map_err(|e| Error::Corrupt(e.to_string()));
        c.execute(
            "INSERT INTO experts (provider, id, name, categories, brands, fee_cents, token_hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![e.provider, e.id, e.name, json(&e.categories)?, json(&e.brands)?, e.fee_cents, token_hash],
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
        Ok(c.query_row("SELECT provider, id, name, categories, brands, fee_cents FROM experts WHERE token_hash = ?1", [token_hash], expert_row).optional()?)
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
        Ok(c.query_row(&format!("SELECT {HELP_COLUMNS} FROM help_requests WHERE provider = ?1 AND id = ?2"), params![provider, id], help_row).optional()?)
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

    fn certifications(&self, provider: &str, engineer: &str) -> Result<Vec<CertificationRow>> {
        let c = lock(&self.reader);
        let mut stmt = c.prepare_cached("SELECT id, body, signature FROM certifications WHERE provider = ?1 AND engineer = ?2 ORDER BY id")?;
        let rows = stmt.query_map(params![provider, engineer], |r| Ok(CertificationRow { id: r.get(0)?, body: r.get(1)?, signature: r.get(2)? }))?;
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
        assert!(matches!(SqliteStorage::open(&path), Err(Error::TooNew { found: 99, supported }) if supported == MIGRATIONS.len() as u32));
    }

    crate::storage_conformance!(|| {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStorage::open(&dir.path().join("s.sqlite3")).unwrap();
        (dir, s)
    });
}
