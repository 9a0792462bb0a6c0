//! The PostgreSQL backend (`--database postgres://...`): the same contract as SQLite (the
//! conformance suite runs against both), made for several server instances on one database.
//!
//! - **Feed positions in commit order.** A sequence alone lets transaction T1 take 10 and T2
//!   take 11 and commit first; a device reading 11 would move its cursor past 10 and never
//!   see T1's change. Here every transaction that writes feed rows takes one transaction-
//!   scoped advisory lock (`FEED_LOCK`) before it takes positions and holds it to commit, and
//!   records the highest position in `feed_head` in the same transaction. Readers take the
//!   head from `feed_head`, so a position is visible only when every lower one is committed.
//! - **The evidence log never forks.** Appends to a provider's log serialize on an advisory
//!   lock keyed by the provider, so two instances never give two leaves one index.
//! - **Single-use codes** are redeemed under a row lock (`FOR UPDATE`): of two instances
//!   redeeming one code at once, the second sees it used.
//! - Numbered migrations in `postgres/NNN.sql`, applied under an advisory lock; a schema newer
//!   than the code is refused.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use postgres::types::ToSql;
use postgres::{Client, GenericClient, Row};

mod listen;
mod log;
mod pool;
use pool::Pool;

use super::{DeviceRow, Error, ExpertRow, FeedReader, FeedRow, HelpRow, OrderRow, Result};

const MIGRATIONS: &[&str] = &[
    include_str!("postgres/001_server.sql"),
    include_str!("postgres/002_attestation.sql"),
    include_str!("postgres/003_log_nodes.sql"),
    include_str!("postgres/004_order_summary.sql"),
];
/// Advisory lock keys (first half: "onsite").
const MIGRATE_LOCK: i64 = 0x6f6e_7369_7465_0001;
const FEED_LOCK: i64 = 0x6f6e_7369_7465_0002;
/// Two-key advisory locks `(LOG_LOCK_CLASS, hashtext(provider))` serialize log appends.
const LOG_LOCK_CLASS: i32 = 0x6f6e_6c67;

impl From<postgres::Error> for Error {
    fn from(e: postgres::Error) -> Self {
        Error::Backend(Box::new(e))
    }
}

fn unique_violation(e: &postgres::Error) -> bool {
    e.code() == Some(&postgres::error::SqlState::UNIQUE_VIOLATION)
}

/// The channel feed commits notify; the payload is the position, a hint only (listeners read
/// `feed_head` back).
const FEED_CHANNEL: &str = "onsite_feed";

pub struct PostgresStorage {
    pool: Pool,
    /// Where it connects, without the password (logs, `/health`).
    describe: String,
    /// Tells the feed listener thread (if any) to stop.
    stop: Arc<AtomicBool>,
    /// Runs between taking a feed position and raising `feed_head` (tests hold a transaction
    /// there to prove no reader sees a head past it).
    position_taken: Option<PositionHook>,
}

type PositionHook = Arc<dyn Fn(u64) + Send + Sync>;

impl Drop for PostgresStorage {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl PostgresStorage {
    /// Connects to `url` (`postgres://user@host:port/db`) and brings the schema up to date.
    pub fn open(url: &str) -> Result<Self> {
        Self::open_with(url, pool::DEFAULT_MAX)
    }

    /// As [`Self::open`], with at most `max` connections.
    pub fn open_with(url: &str, max: usize) -> Result<Self> {
        let config: postgres::Config = url.parse()?;
        let s = Self { pool: Pool::new(config, max), describe: super::redact(url), stop: Arc::new(AtomicBool::new(false)), position_taken: None };
        s.migrate()?;
        Ok(s)
    }

    /// Calls `hook(position)` inside every feed-writing transaction, after the position is
    /// taken and before the head is raised: the narrowest window a concurrent writer or reader
    /// could exploit. For tests.
    pub fn with_position_hook(mut self, hook: impl Fn(u64) + Send + Sync + 'static) -> Self {
        self.position_taken = Some(Arc::new(hook));
        self
    }

    fn migrate(&self) -> Result<()> {
        let mut c = self.pool.get()?;
        let mut tx = c.transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATE_LOCK])?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS onsite_schema (one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one), version INTEGER NOT NULL)")?;
        let found: i32 = tx.query_opt("SELECT version FROM onsite_schema", &[])?.map(|r| r.try_get(0)).transpose()?.unwrap_or(0);
        let supported = MIGRATIONS.len() as i32;
        if found > supported {
            return Err(Error::TooNew { found: found as u32, supported: supported as u32 });
        }
        for sql in MIGRATIONS.iter().skip(found as usize) {
            tx.batch_execute(sql)?;
        }
        tx.execute("INSERT INTO onsite_schema (version) VALUES ($1) ON CONFLICT (one) DO UPDATE SET version = excluded.version", &[&supported])?;
        tx.commit()?;
        Ok(())
    }
}

const DEVICE_COLS: &str = "d.id, d.provider, d.engineer_id, d.public_key, d.revoked_at, d.journal_seq, d.journal_head, d.attestation, d.last_seen_ms";
const ORDER_COLS: &str = "provider, id, engineer_id, status, priority, customer, updated_seq, assigned_seq, compacted_seq, summary";
const HELP_COLUMNS: &str = "provider, id, order_id, engineer, expert_id, status, cost_cents, created_at";

fn device_row(r: &Row) -> Result<DeviceRow> {
    Ok(DeviceRow {
        id: r.try_get(0)?,
        provider: r.try_get(1)?,
        engineer_id: r.try_get(2)?,
        public_key: r.try_get(3)?,
        revoked: r.try_get::<_, Option<i64>>(4)?.is_some(),
        journal_seq: r.try_get::<_, i64>(5)? as u64,
        journal_head: r.try_get(6)?,
        attestation: r.try_get(7)?,
        last_seen_ms: r.try_get(8)?,
    })
}

fn order_row(r: &Row) -> Result<OrderRow> {
    Ok(OrderRow {
        provider: r.try_get(0)?,
        id: r.try_get(1)?,
        engineer_id: r.try_get(2)?,
        status: r.try_get(3)?,
        priority: r.try_get(4)?,
        customer: r.try_get(5)?,
        updated_seq: r.try_get::<_, i64>(6)? as u64,
        assigned_seq: r.try_get::<_, i64>(7)? as u64,
        compacted_seq: r.try_get::<_, i64>(8)? as u64,
        summary: r.try_get(9)?,
    })
}

fn string_list(text: &str) -> Result<Vec<String>> {
    serde_json::from_str(text).map_err(|e| Error::Corrupt(format!("a stored list: {e}")))
}

fn expert_row(r: &Row) -> Result<ExpertRow> {
    Ok(ExpertRow {
        provider: r.try_get(0)?,
        id: r.try_get(1)?,
        name: r.try_get(2)?,
        categories: string_list(r.try_get(3)?)?,
        brands: string_list(r.try_get(4)?)?,
        fee_cents: r.try_get(5)?,
    })
}

fn help_row(r: &Row) -> Result<HelpRow> {
    Ok(HelpRow {
        provider: r.try_get(0)?,
        id: r.try_get(1)?,
        order_id: r.try_get(2)?,
        engineer: r.try_get(3)?,
        expert_id: r.try_get(4)?,
        status: r.try_get(5)?,
        cost_cents: r.try_get(6)?,
        created_at: r.try_get(7)?,
    })
}

/// A feed position as PostgreSQL's BIGINT (positions past `i64::MAX` mean "the end").
fn pos(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Takes the next feed position and writes its row. The caller holds `FEED_LOCK`.
#[allow(clippy::too_many_arguments)] // the feed row's columns, and the test hook
fn next_seq(
    hook: Option<&PositionHook>,
    tx: &mut postgres::Transaction<'_>,
    provider: &str,
    order: &str,
    kind: &str,
    origin: &str,
    engineer: Option<&str>,
    bytes: Option<&[u8]>,
) -> Result<u64> {
    let seq: i64 = tx
        .query_one(
            "INSERT INTO feed (seq, provider, order_id, kind, origin, engineer_id, bytes) VALUES (nextval('feed_seq'), $1, $2, $3, $4, $5, $6) RETURNING seq",
            &[&provider, &order, &kind, &origin, &engineer, &bytes],
        )?
        .try_get(0)?;
    if let Some(h) = hook {
        h(seq as u64);
    }
    tx.execute("UPDATE feed_head SET seq = greatest(seq, $1)", &[&seq])?;
    // Delivered at commit, to every instance's listener (`listen.rs`).
    tx.execute("SELECT pg_notify($1, $2)", &[&FEED_CHANNEL, &seq.to_string()])?;
    Ok(seq as u64)
}

fn change_rows(c: &mut impl GenericClient, provider: &str, id: &str) -> Result<u64> {
    let n: i64 = c.query_one("SELECT count(*) FROM feed WHERE provider = $1 AND order_id = $2 AND kind = 'change'", &[&provider, &id])?.try_get(0)?;
    Ok(n as u64)
}

/// What the feed reads need of a client or a transaction (postgres' own `GenericClient` is
/// sealed, and not implemented for `&mut Client`).
trait Db {
    fn query(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> std::result::Result<Vec<Row>, postgres::Error>;
    fn query_opt(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> std::result::Result<Option<Row>, postgres::Error>;
    fn query_one(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> std::result::Result<Row, postgres::Error>;
}

macro_rules! db_via_generic_client {
    ($t:ty) => {
        impl Db for $t {
            fn query(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> std::result::Result<Vec<Row>, postgres::Error> {
                GenericClient::query(self, sql, params)
            }
            fn query_opt(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> std::result::Result<Option<Row>, postgres::Error> {
                GenericClient::query_opt(self, sql, params)
            }
            fn query_one(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> std::result::Result<Row, postgres::Error> {
                GenericClient::query_one(self, sql, params)
            }
        }
    };
}
db_via_generic_client!(Client);
db_via_generic_client!(postgres::Transaction<'_>);

impl<T: Db + ?Sized> Db for &mut T {
    fn query(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> std::result::Result<Vec<Row>, postgres::Error> {
        (**self).query(sql, params)
    }
    fn query_opt(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> std::result::Result<Option<Row>, postgres::Error> {
        (**self).query_opt(sql, params)
    }
    fn query_one(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> std::result::Result<Row, postgres::Error> {
        (**self).query_one(sql, params)
    }
}

/// Feed reads on one client or transaction (a REPEATABLE READ one inside `snapshot`).
struct PgReader<C>(RefCell<C>);

impl<C: Db> FeedReader for PgReader<C> {
    fn head(&self) -> Result<u64> {
        let seq: i64 = self.0.borrow_mut().query_one("SELECT seq FROM feed_head", &[])?.try_get(0)?;
        Ok(seq as u64)
    }

    fn order(&self, provider: &str, id: &str) -> Result<Option<OrderRow>> {
        let row = self.0.borrow_mut().query_opt(&format!("SELECT {ORDER_COLS} FROM orders WHERE provider = $1 AND id = $2"), &[&provider, &id])?;
        row.as_ref().map(order_row).transpose()
    }

    fn document(&self, provider: &str, id: &str) -> Result<Vec<Vec<u8>>> {
        let mut c = self.0.borrow_mut();
        let snapshot: Vec<u8> = c
            .query_opt("SELECT snapshot FROM docs WHERE provider = $1 AND order_id = $2", &[&provider, &id])?
            .ok_or_else(|| Error::NotFound(format!("order `{id}`")))?
            .try_get(0)?;
        let rows = c.query(
            "SELECT f.bytes FROM feed f JOIN orders o ON o.provider = f.provider AND o.id = f.order_id \
             WHERE f.provider = $1 AND f.order_id = $2 AND f.kind = 'change' AND f.seq > o.compacted_seq ORDER BY f.seq",
            &[&provider, &id],
        )?;
        let mut out = vec![snapshot];
        out.extend(rows.iter().map(|r| r.get::<_, Vec<u8>>(0)));
        Ok(out)
    }

    fn feed(&self, provider: &str, engineer: &str, cursor: u64, upto: u64) -> Result<Vec<FeedRow>> {
        let rows = self.0.borrow_mut().query(
            "SELECT f.seq, f.order_id, f.kind, f.origin, f.engineer_id FROM feed f \
             JOIN orders o ON o.provider = f.provider AND o.id = f.order_id \
             WHERE f.provider = $1 AND f.seq > $3 AND f.seq <= $4 \
               AND (o.engineer_id = $2 OR (f.kind = 'unassign' AND f.engineer_id = $2)) \
             ORDER BY f.seq",
            &[&provider, &engineer, &pos(cursor), &pos(upto)],
        )?;
        rows.iter()
            .map(|r| {
                Ok(FeedRow {
                    seq: r.try_get::<_, i64>(0)? as u64,
                    order_id: r.try_get(1)?,
                    kind: r.try_get(2)?,
                    origin: r.try_get(3)?,
                    engineer_id: r.try_get(4)?,
                })
            })
            .collect()
    }

    fn chunks_after(&self, provider: &str, id: &str, after: u64, upto: u64, skip_origin: &str) -> Result<Vec<Vec<u8>>> {
        let rows = self.0.borrow_mut().query(
            "SELECT bytes FROM feed WHERE provider = $1 AND order_id = $2 AND kind = 'change' AND seq > $3 AND seq <= $4 AND origin <> $5 ORDER BY seq",
            &[&provider, &id, &pos(after), &pos(upto), &skip_origin],
        )?;
        Ok(rows.iter().map(|r| r.get::<_, Vec<u8>>(0)).collect())
    }
}

mod storage_impl;
