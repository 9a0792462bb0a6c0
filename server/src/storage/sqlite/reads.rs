//! Reads of the console's order page in SQLite: an order's receipts and its journal entries.

use rusqlite::Connection;

use crate::storage::{OrderEntry, ReceiptRow, Result};

pub(super) fn receipts(c: &Connection, provider: &str, order_id: &str) -> Result<Vec<(String, ReceiptRow)>> {
    let mut st = c.prepare_cached(
        "SELECT device_id, order_id, revision, sha256, canonical, strokes, message, signature, journal_seq FROM receipts \
         WHERE provider = ?1 AND order_id = ?2 ORDER BY revision",
    )?;
    let rows = st.query_map([provider, order_id], |r| {
        Ok((
            r.get(0)?,
            ReceiptRow {
                order_id: r.get(1)?,
                revision: r.get(2)?,
                sha256: r.get(3)?,
                canonical: r.get(4)?,
                strokes: r.get(5)?,
                message: r.get(6)?,
                signature: r.get(7)?,
                journal_seq: r.get::<_, i64>(8)? as u64,
            },
        ))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub(super) fn order_photo_entries(c: &Connection, provider: &str, order_id: &str) -> Result<Vec<OrderEntry>> {
    let mut st = c.prepare_cached(
        "SELECT j.device_id, j.seq, j.kind, j.body FROM journal j JOIN devices d ON d.id = j.device_id \
         WHERE j.kind = 'photo' AND j.order_id = ?2 AND d.provider = ?1 ORDER BY j.device_id, j.seq",
    )?;
    let rows =
        st.query_map([provider, order_id], |r| Ok(OrderEntry { device_id: r.get(0)?, seq: r.get::<_, i64>(1)? as u64, kind: r.get(2)?, body: r.get(3)? }))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}
