//! The order feed in SQLite: positions, feed rows, compaction, and the reads a sync answer
//! makes inside one snapshot.

use rusqlite::{params, Connection, OptionalExtension};

use super::{order_row, ORDER_COLS};
use crate::storage::{Error, FeedReader, FeedRow, OrderRow, Result};

/// A feed position as SQLite's integer: positions past `i64::MAX` (never handed out) mean
/// "the end", not a negative number that matches nothing.
pub(super) fn pos(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(super) fn change_rows(c: &Connection, provider: &str, id: &str) -> Result<u64> {
    let n: i64 = c.query_row("SELECT count(*) FROM feed WHERE provider = ?1 AND order_id = ?2 AND kind = 'change'", [provider, id], |r| r.get(0))?;
    Ok(n as u64)
}

/// Replaces the snapshot by `snapshot` (every change up to `upto_seq`) and drops the change
/// rows it covers. The order keeps one feed row at `upto_seq` (kind `compacted`, no bytes):
/// a device behind it still finds the order in the feed and, its cursor being below
/// `compacted_seq`, receives it whole. Without it the order vanished from the feed and such
/// a device passed its changes.
pub(super) fn compact(tx: &rusqlite::Transaction<'_>, provider: &str, id: &str, snapshot: &[u8], upto_seq: u64) -> Result<()> {
    tx.execute("UPDATE docs SET snapshot = ?3 WHERE provider = ?1 AND order_id = ?2", params![provider, id, snapshot])?;
    tx.execute(
        "DELETE FROM feed WHERE provider = ?1 AND order_id = ?2 AND kind IN ('change', 'compacted') AND seq < ?3",
        params![provider, id, upto_seq as i64],
    )?;
    tx.execute(
        "UPDATE feed SET kind = 'compacted', bytes = NULL WHERE provider = ?1 AND order_id = ?2 AND seq = ?3 AND kind = 'change'",
        params![provider, id, upto_seq as i64],
    )?;
    tx.execute("UPDATE orders SET compacted_seq = ?3 WHERE provider = ?1 AND id = ?2", params![provider, id, upto_seq as i64])?;
    Ok(())
}

pub(super) fn next_seq(
    tx: &rusqlite::Transaction<'_>,
    provider: &str,
    order: &str,
    kind: &str,
    origin: &str,
    engineer: Option<&str>,
    bytes: Option<&[u8]>,
) -> Result<u64> {
    tx.prepare_cached("INSERT INTO feed (provider, order_id, kind, origin, engineer_id, bytes) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?
        .execute(params![provider, order, kind, origin, engineer, bytes])?;
    Ok(tx.last_insert_rowid() as u64)
}

/// Feed reads on one connection (inside a read transaction when called from `snapshot`).
pub(super) struct SqliteReader<'a>(pub(super) &'a Connection);

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
        Ok(self
            .0
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
        let rows = st.query_map(params![provider, engineer, pos(cursor), pos(upto)], |r| {
            Ok(FeedRow { seq: r.get::<_, i64>(0)? as u64, order_id: r.get(1)?, kind: r.get(2)?, origin: r.get(3)?, engineer_id: r.get(4)? })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn chunks_after(&self, provider: &str, id: &str, after: u64, upto: u64, skip_origin: &str) -> Result<Vec<Vec<u8>>> {
        let c = self.0;
        let mut st = c.prepare_cached(
            "SELECT bytes FROM feed WHERE provider = ?1 AND order_id = ?2 AND kind = 'change' AND seq > ?3 AND seq <= ?4 AND origin != ?5 ORDER BY seq",
        )?;
        let rows = st.query_map(params![provider, id, pos(after), pos(upto), skip_origin], |r| r.get::<_, Vec<u8>>(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}
