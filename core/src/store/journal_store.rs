//! The journal, photos and blob trust, in the same database and transactions as the orders.

use std::sync::Arc;

use rusqlite::{params, OptionalExtension, Transaction, TransactionBehavior};

use super::{load_head, Error, Stamp, Store};
use crate::evidence::journal::{self, Draft, Entry, Head};
use crate::evidence::photo::{PhotoRecord, ReuseHit};
use crate::evidence::Signer;

/// A stored JSON column that no longer parses: an error, never an empty value.
fn json_column(column: usize, e: serde_json::Error) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Text, Box::new(e))
}

impl Store {
    pub fn set_signer(&self, signer: Arc<dyn Signer>) {
        *self.signer.write().unwrap_or_else(|p| p.into_inner()) = Some(signer);
    }

    pub fn signer(&self) -> Option<Arc<dyn Signer>> {
        self.signer.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Seals and inserts `drafts` inside `tx`; returns the new head (applied after commit).
    pub(crate) fn journal_tx(&self, tx: &Transaction<'_>, head: &mut Option<Head>, stamp: Stamp, drafts: &[Draft]) -> Result<Head, Error> {
        let signer = self.signer().ok_or(Error::NoSigner)?;
        let mut current = match head.take() {
            Some(h) => h,
            None => load_head(tx)?,
        };
        for d in drafts {
            let order_prev = match &d.order {
                Some(o) => Some(
                    tx.prepare_cached("SELECT hash FROM journal WHERE order_id = ?1 ORDER BY seq DESC LIMIT 1")?
                        .query_row([o], |r| r.get::<_, String>(0))
                        .optional()?
                        .unwrap_or_else(|| journal::ZERO_HASH.to_string()),
                ),
                None => None,
            };
            let (entries, next) = journal::seal_linked(&current, self.device_id(), stamp.at_ms, stamp.mono_ms, d, order_prev.as_deref(), signer.as_ref())?;
            for e in &entries {
                let body = e.body()?;
                tx.prepare_cached("INSERT INTO journal (seq, order_id, kind, body, hash, signature) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?.execute(params![
                    e.seq as i64,
                    body.order,
                    body.kind,
                    e.body,
                    e.hash,
                    e.signature
                ])?;
            }
            current = next;
        }
        Ok(current)
    }

    /// Appends one journal entry in its own transaction.
    pub fn append_journal(&self, stamp: Stamp, draft: &Draft) -> Result<u64, Error> {
        let mut w = self.writer();
        let w = &mut *w;
        let tx = w.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let head = self.journal_tx(&tx, &mut w.head.clone(), stamp, std::slice::from_ref(draft))?;
        tx.commit()?;
        let seq = head.seq;
        w.head = Some(head);
        Ok(seq)
    }

    /// One journal entry by its seq.
    pub fn journal_entry(&self, seq: u64) -> Result<Option<Entry>, Error> {
        let conn = self.reader();
        let mut st = conn.prepare_cached("SELECT seq, body, hash, signature FROM journal WHERE seq = ?1")?;
        Ok(st.query_row([seq as i64], |r| Ok(Entry { seq: r.get::<_, i64>(0)? as u64, body: r.get(1)?, hash: r.get(2)?, signature: r.get(3)? })).optional()?)
    }

    /// Journal entries, all or one order's, in order.
    pub fn journal_entries(&self, order: Option<&str>) -> Result<Vec<Entry>, Error> {
        let conn = self.reader();
        let sql = match order {
            Some(_) => "SELECT seq, body, hash, signature FROM journal WHERE order_id = ?1 ORDER BY seq",
            None => "SELECT seq, body, hash, signature FROM journal WHERE ?1 IS NULL ORDER BY seq",
        };
        let mut st = conn.prepare_cached(sql)?;
        let rows = st.query_map([order], |r| Ok(Entry { seq: r.get::<_, i64>(0)? as u64, body: r.get(1)?, hash: r.get(2)?, signature: r.get(3)? }))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records a photo on an order and its journal entry in one transaction, and vouches for
    /// the blobs (they were hashed while being stored).
    pub fn record_photo(&self, row: &PhotoRecord, stamp: Stamp, draft: &Draft, blobs: &[(&str, u64)]) -> Result<u64, Error> {
        let mut w = self.writer();
        let w = &mut *w;
        let tx = w.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let exists: bool = tx.query_row("SELECT EXISTS (SELECT 1 FROM orders WHERE id = ?1)", [&row.order_id], |r| r.get(0))?;
        if !exists {
            return Err(Error::NotFound { id: row.order_id.clone() });
        }
        let head = self.journal_tx(&tx, &mut w.head.clone(), stamp, std::slice::from_ref(draft))?;
        tx.prepare_cached(
            "INSERT INTO photos (order_id, sha256, step, phash, format, width, height, size, exif, thumb_sha256, problems, ingested_at, journal_seq) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) \
             ON CONFLICT (order_id, sha256) DO NOTHING",
        )?
        .execute(params![
            row.order_id,
            row.sha256,
            row.step,
            row.phash.map(|p| p as i64),
            row.format,
            row.width,
            row.height,
            row.size as i64,
            row.exif.to_string(),
            row.thumb_sha256,
            serde_json::to_string(&row.problems).unwrap_or_else(|_| "[]".into()),
            row.ingested_at,
            head.seq as i64,
        ])?;
        // The original goes to the server (thumbnails are derived there when needed).
        tx.prepare_cached("INSERT OR IGNORE INTO outbox_blobs (sha256, size, enqueued_at) VALUES (?1, ?2, ?3)")?.execute(params![
            row.sha256,
            row.size as i64,
            stamp.at_ms
        ])?;
        for (sha, size) in blobs {
            tx.prepare_cached("INSERT OR IGNORE INTO blobs (sha256, size, verified_at) VALUES (?1, ?2, ?3)")?.execute(params![
                sha,
                *size as i64,
                stamp.at_ms
            ])?;
        }
        tx.commit()?;
        let seq = head.seq;
        w.head = Some(head);
        Ok(seq)
    }

    pub fn photos(&self, order: &str) -> Result<Vec<PhotoRecord>, Error> {
        let conn = self.reader();
        let mut st = conn.prepare_cached(
            "SELECT order_id, sha256, step, phash, format, width, height, size, exif, thumb_sha256, problems, ingested_at, journal_seq \
             FROM photos WHERE order_id = ?1 ORDER BY journal_seq",
        )?;
        let rows = st.query_map([order], |r| {
            Ok(PhotoRecord {
                order_id: r.get(0)?,
                sha256: r.get(1)?,
                step: r.get(2)?,
                phash: r.get::<_, Option<i64>>(3)?.map(|p| p as u64),
                format: r.get(4)?,
                width: r.get(5)?,
                height: r.get(6)?,
                size: r.get::<_, i64>(7)? as u64,
                exif: serde_json::from_str(&r.get::<_, String>(8)?).map_err(|e| json_column(8, e))?,
                thumb_sha256: r.get(9)?,
                problems: serde_json::from_str(&r.get::<_, String>(10)?).map_err(|e| json_column(10, e))?,
                ingested_at: r.get(11)?,
                journal_seq: r.get::<_, i64>(12)? as u64,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Photos on other orders with the same bytes or a perceptual hash within `max_distance`.
    pub fn find_reuse(&self, order: &str, sha256: &str, phash: Option<u64>, max_distance: u32) -> Result<Vec<ReuseHit>, Error> {
        let conn = self.reader();
        let mut st = conn.prepare_cached("SELECT order_id, sha256, phash FROM photos WHERE order_id != ?1")?;
        let rows = st.query_map([order], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, Option<i64>>(2)?)))?;
        let mut hits = Vec::new();
        for row in rows {
            let (o, sha, p) = row?;
            let distance = if sha == sha256 {
                Some(0)
            } else {
                match (phash, p) {
                    (Some(a), Some(b)) => Some(crate::evidence::photo::hamming(a, b as u64)).filter(|d| *d <= max_distance),
                    _ => None,
                }
            };
            if let Some(distance) = distance {
                hits.push(ReuseHit { order_id: o, sha256: sha, distance });
            }
        }
        hits.sort_by(|a, b| (a.distance, &a.order_id).cmp(&(b.distance, &b.order_id)));
        Ok(hits)
    }

    /// True when the database vouches for the blob (hashed when stored).
    pub fn blob_vouched(&self, sha256: &str) -> Result<bool, Error> {
        let conn = self.reader();
        Ok(conn.query_row("SELECT 1 FROM blobs WHERE sha256 = ?1", [sha256], |_| Ok(())).optional()?.is_some())
    }
}
