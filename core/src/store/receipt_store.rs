//! Signed receipts, in the same database and transactions as the orders and the journal.

use rusqlite::{params, Transaction};

use super::{Error, Store};
use crate::receipt::SignedReceipt;

const COLUMNS: &str = "order_id, revision, sha256, canonical, strokes, strokes_sha256, message, signature, journal_seq, signed_at";

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SignedReceipt> {
    Ok(SignedReceipt {
        order: r.get(0)?,
        revision: r.get(1)?,
        receipt_sha256: r.get(2)?,
        canonical: r.get(3)?,
        strokes: r.get(4)?,
        strokes_sha256: r.get(5)?,
        message: r.get(6)?,
        signature: r.get(7)?,
        journal_seq: r.get::<_, i64>(8)? as u64,
        signed_at_ms: r.get(9)?,
    })
}

/// Inserts a receipt row inside an edit's transaction (see `Store::edit_bound`).
pub(crate) fn insert_receipt(tx: &Transaction<'_>, r: &SignedReceipt, journal_seq: u64) -> Result<(), Error> {
    tx.execute(
        &format!("INSERT INTO receipts ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"),
        params![r.order, r.revision, r.receipt_sha256, r.canonical, r.strokes, r.strokes_sha256, r.message, r.signature, journal_seq as i64, r.signed_at_ms],
    )?;
    Ok(())
}

impl Store {
    /// Every receipt revision of an order, oldest first.
    pub fn receipts(&self, order: &str) -> Result<Vec<SignedReceipt>, Error> {
        let conn = self.reader();
        let mut st = conn.prepare_cached(&format!("SELECT {COLUMNS} FROM receipts WHERE order_id = ?1 ORDER BY revision"))?;
        let rows = st.query_map([order], from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
