//! `onsite-server migrate --from sqlite://FILE --to postgres://... [--blobs-from DIR]
//! [--blobs-to s3://...]`: moves a deployment from the embedded default to PostgreSQL (and its
//! blobs to an object store), then proves the copy.
//!
//! - Every table is copied row by row with its own keys, feed positions included, so device
//!   cursors, journal sequence numbers and log indexes mean the same afterwards; sequences
//!   (`feed_seq`, `part_movements`) and `feed_head` are raised to the copied maximum.
//! - Each insert is `ON CONFLICT DO NOTHING` and each table commits on its own: a run that is
//!   interrupted and started again finishes without duplicates (`meta`: the source wins).
//! - Then it verifies: per table the row count and an order-independent digest of every row's
//!   values on both sides; per provider the evidence log's Merkle root; every recorded blob
//!   present at the destination and re-hashed to its name.
//!
//! The source server must be stopped while this runs (the copy is not a live replica).

use std::path::Path;

use onsite_core::hash::Sha256;
use postgres::types::{ToSql, Type};
use rusqlite::types::Value;

use crate::blobs::Blobs;
use crate::storage::{self, PostgresStorage, SqliteStorage, Storage};

/// Tables in foreign-key order.
pub const TABLES: &[&str] = &[
    "meta",
    "providers",
    "enrol_codes",
    "devices",
    "tokens",
    "orders",
    "docs",
    "feed",
    "journal",
    "log_leaves",
    "receipts",
    "blobs",
    "part_movements",
    "closeouts",
    "experts",
    "help_requests",
    "certifications",
];

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Storage(#[from] storage::Error),
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("postgres: {0}")]
    Postgres(#[from] postgres::Error),
    #[error("blobs: {0}")]
    Blobs(#[from] crate::blobs::store::Error),
    #[error("table {table}: column {column} has type {ty}, which the copy does not know")]
    Type { table: String, column: String, ty: String },
    #[error("verification failed: {0}")]
    Verify(String),
    #[error("{0}")]
    Usage(String),
}

/// What a run copied and checked.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// (table, rows at the source, rows newly inserted at the destination).
    pub tables: Vec<(String, u64, u64)>,
    pub blobs_copied: u64,
    pub blobs_present: u64,
    /// (provider, log size, root hex) verified equal on both sides.
    pub logs: Vec<(String, u64, String)>,
}

/// One SQLite value as a typed PostgreSQL parameter (`NULL` typed by the target column).
fn param(v: Value, ty: &Type, table: &str, column: &str) -> Result<Box<dyn ToSql + Sync>, Error> {
    let bad = || Error::Type { table: table.into(), column: column.into(), ty: ty.to_string() };
    Ok(match (v, ty) {
        (Value::Null, &Type::INT8 | &Type::INT4) => Box::new(None::<i64>),
        (Value::Null, &Type::TEXT) => Box::new(None::<String>),
        (Value::Null, &Type::BYTEA) => Box::new(None::<Vec<u8>>),
        (Value::Integer(i), &Type::INT8) => Box::new(i),
        (Value::Integer(i), &Type::INT4) => Box::new(i32::try_from(i).map_err(|_| bad())?),
        (Value::Integer(i), &Type::BOOL) => Box::new(i != 0),
        (Value::Text(t), &Type::TEXT) => Box::new(t),
        (Value::Blob(b), &Type::BYTEA) => Box::new(b),
        (Value::Text(t), &Type::BYTEA) => Box::new(t.into_bytes()),
        _ => return Err(bad()),
    })
}

/// The digest input of one value, the same on both sides.
fn feed_value(h: &mut Sha256, tag: u8, bytes: &[u8]) {
    h.update([tag]);
    h.update((bytes.len() as u64).to_be_bytes());
    h.update(bytes);
}

fn sqlite_row_hash(row: &rusqlite::Row<'_>, n: usize) -> Result<[u8; 32], Error> {
    let mut h = Sha256::new();
    for i in 0..n {
        match row.get::<_, Value>(i)? {
            Value::Null => feed_value(&mut h, 0, &[]),
            Value::Integer(v) => feed_value(&mut h, 1, &v.to_be_bytes()),
            Value::Real(v) => feed_value(&mut h, 2, &v.to_be_bytes()),
            Value::Text(t) => feed_value(&mut h, 3, t.as_bytes()),
            Value::Blob(b) => feed_value(&mut h, 3, &b),
        }
    }
    Ok(h.finalize())
}

fn pg_row_hash(row: &postgres::Row) -> Result<[u8; 32], Error> {
    let mut h = Sha256::new();
    for (i, c) in row.columns().iter().enumerate() {
        match *c.type_() {
            Type::INT8 => match row.try_get::<_, Option<i64>>(i)? {
                Some(v) => feed_value(&mut h, 1, &v.to_be_bytes()),
                None => feed_value(&mut h, 0, &[]),
            },
            Type::INT4 => match row.try_get::<_, Option<i32>>(i)? {
                Some(v) => feed_value(&mut h, 1, &i64::from(v).to_be_bytes()),
                None => feed_value(&mut h, 0, &[]),
            },
            Type::BOOL => match row.try_get::<_, Option<bool>>(i)? {
                Some(v) => feed_value(&mut h, 1, &i64::from(v).to_be_bytes()),
                None => feed_value(&mut h, 0, &[]),
            },
            Type::TEXT => match row.try_get::<_, Option<String>>(i)? {
                Some(v) => feed_value(&mut h, 3, v.as_bytes()),
                None => feed_value(&mut h, 0, &[]),
            },
            Type::BYTEA => match row.try_get::<_, Option<Vec<u8>>>(i)? {
                Some(v) => feed_value(&mut h, 3, &v),
                None => feed_value(&mut h, 0, &[]),
            },
            ref other => return Err(Error::Type { table: String::new(), column: c.name().into(), ty: other.to_string() }),
        }
    }
    Ok(h.finalize())
}

/// Sorted row hashes, hashed: equal iff both sides hold the same multiset of rows.
fn digest(mut rows: Vec<[u8; 32]>) -> String {
    rows.sort_unstable();
    let mut h = Sha256::new();
    for r in &rows {
        h.update(r);
    }
    onsite_core::hash::hex(&h.finalize())
}

fn columns(pg: &mut postgres::Client, table: &str) -> Result<Vec<(String, Type)>, Error> {
    let stmt = pg.prepare(&format!("SELECT * FROM {table} LIMIT 0"))?;
    Ok(stmt.columns().iter().map(|c| (c.name().to_string(), c.type_().clone())).collect())
}

fn copy_table(src: &rusqlite::Connection, pg: &mut postgres::Client, table: &str) -> Result<(u64, u64), Error> {
    let cols = columns(pg, table)?;
    let names: Vec<&str> = cols.iter().map(|(n, _)| n.as_str()).collect();
    let placeholders: Vec<String> = (1..=cols.len()).map(|i| format!("${i}")).collect();
    let conflict = if table == "meta" { "ON CONFLICT (key) DO UPDATE SET value = excluded.value" } else { "ON CONFLICT DO NOTHING" };
    let insert = format!("INSERT INTO {table} ({}) VALUES ({}) {conflict}", names.join(", "), placeholders.join(", "));
    let mut tx = pg.transaction()?;
    let stmt = tx.prepare(&insert)?;
    let mut q = src.prepare(&format!("SELECT {} FROM {table}", names.join(", ")))?;
    let mut rows = q.query([])?;
    let (mut seen, mut inserted) = (0u64, 0u64);
    while let Some(row) = rows.next()? {
        let mut params = Vec::with_capacity(cols.len());
        for (i, (name, ty)) in cols.iter().enumerate() {
            params.push(param(row.get::<_, Value>(i)?, ty, table, name)?);
        }
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| &**p as &(dyn ToSql + Sync)).collect();
        inserted += tx.execute(&stmt, &refs)?;
        seen += 1;
    }
    match table {
        "feed" => {
            tx.batch_execute("SELECT setval('feed_seq', greatest((SELECT max(seq) FROM feed), 1), (SELECT max(seq) FROM feed) IS NOT NULL)")?;
            tx.batch_execute("UPDATE feed_head SET seq = greatest(seq, coalesce((SELECT max(seq) FROM feed), 0))")?;
        }
        "part_movements" => {
            tx.batch_execute(
                "SELECT setval(pg_get_serial_sequence('part_movements', 'seq'), greatest((SELECT max(seq) FROM part_movements), 1), (SELECT max(seq) FROM part_movements) IS NOT NULL)",
            )?;
        }
        _ => {}
    }
    tx.commit()?;
    Ok((seen, inserted))
}

fn verify_table(src: &rusqlite::Connection, pg: &mut postgres::Client, table: &str) -> Result<(), Error> {
    let cols = columns(pg, table)?;
    let names: Vec<&str> = cols.iter().map(|(n, _)| n.as_str()).collect();
    let select = format!("SELECT {} FROM {table}", names.join(", "));
    let mut q = src.prepare(&select)?;
    let mut rows = q.query([])?;
    let mut left = Vec::new();
    while let Some(row) = rows.next()? {
        left.push(sqlite_row_hash(row, cols.len())?);
    }
    let right: Vec<[u8; 32]> = pg.query(&select, &[])?.iter().map(pg_row_hash).collect::<Result<_, _>>()?;
    if left.len() != right.len() {
        return Err(Error::Verify(format!("{table}: {} rows at the source, {} at the destination", left.len(), right.len())));
    }
    if digest(left) != digest(right) {
        return Err(Error::Verify(format!("{table}: the rows differ between source and destination")));
    }
    Ok(())
}

fn pg_url(to: &str) -> Result<&str, Error> {
    if to.starts_with("postgres://") || to.starts_with("postgresql://") {
        Ok(to)
    } else {
        Err(Error::Usage(format!("--to must be postgres://... (got `{}`)", storage::redact(to))))
    }
}

/// Copies `from` (an SQLite server database) into the PostgreSQL database `to`, and the blobs
/// from `blobs_from` into `blobs_to` when given; then verifies everything (see the module doc).
pub fn run(from: &Path, to: &str, blobs_from: Option<&Blobs>, blobs_to: Option<&Blobs>) -> Result<Report, Error> {
    let to = pg_url(to)?;
    if !from.exists() {
        return Err(Error::Usage(format!("{} does not exist", from.display())));
    }
    // Both schemas current (the source is migrated forward like any start; a newer one is refused).
    let source = SqliteStorage::open(from)?;
    let dest = PostgresStorage::open(to)?;
    let src = onsite_core::store::connect(from, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let mut pg = postgres::Client::connect(to, postgres::NoTls)?;
    let mut report = Report::default();
    for table in TABLES {
        let (seen, inserted) = copy_table(&src, &mut pg, table)?;
        tracing::info!(table, rows = seen, inserted, "copied");
        report.tables.push((table.to_string(), seen, inserted));
    }
    let providers: Vec<String> = src.prepare("SELECT id FROM providers ORDER BY id")?.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
    if let Some(to_blobs) = blobs_to {
        let from_blobs = blobs_from.ok_or_else(|| Error::Usage("--blobs-to needs the source blobs (--blobs-from, default DATA)".into()))?;
        let mut q = src.prepare("SELECT provider, sha256 FROM blobs ORDER BY provider, sha256")?;
        let rows: Vec<(String, String)> = q.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<_, _>>()?;
        for (provider, sha) in rows {
            if to_blobs.size(&provider, &sha)?.is_some() {
                continue;
            }
            let bytes =
                from_blobs.read(&provider, &sha)?.ok_or_else(|| Error::Verify(format!("blob {provider}/{sha} is recorded but missing at the source")))?;
            if onsite_core::hash::hex(&Sha256::digest(&bytes)) != sha {
                return Err(Error::Verify(format!("blob {provider}/{sha} at the source does not match its name")));
            }
            to_blobs.put_verified(&provider, &sha, &bytes)?;
            report.blobs_copied += 1;
        }
    }
    // Verification.
    for table in TABLES {
        verify_table(&src, &mut pg, table)?;
    }
    for p in &providers {
        let (a, b) = (source.log_leaves(p)?, dest.log_leaves(p)?);
        let (ra, rb) = (onsite_core::evidence::log::root(&a), onsite_core::evidence::log::root(&b));
        if a.len() != b.len() || ra != rb {
            return Err(Error::Verify(format!("provider {p}: the evidence log differs ({} leaves, {} copied)", a.len(), b.len())));
        }
        report.logs.push((p.clone(), a.len() as u64, onsite_core::hash::hex(&ra)));
    }
    if let Some(to_blobs) = blobs_to {
        let mut q = src.prepare("SELECT provider, sha256, size FROM blobs")?;
        let rows: Vec<(String, String, i64)> = q.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect::<Result<_, _>>()?;
        for (provider, sha, size) in rows {
            let bytes = to_blobs.read(&provider, &sha)?.ok_or_else(|| Error::Verify(format!("blob {provider}/{sha} missing at the destination")))?;
            if bytes.len() as i64 != size || onsite_core::hash::hex(&Sha256::digest(&bytes)) != sha {
                return Err(Error::Verify(format!("blob {provider}/{sha} at the destination does not match its name")));
            }
            report.blobs_present += 1;
        }
    }
    Ok(report)
}
