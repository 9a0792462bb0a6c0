//! The journal, photos and blob trust, in the same database and transactions as the orders.

use std::sync::Arc;

use rusqlite::{params, OptionalExtension, Transaction, TransactionBehavior};

use super::{load_head, Error, MetaKey, Stamp, Store};
use crate::evidence::journal::{self, Draft, Entry, Head, JournalKind, SealPayload, Session, Signing};
use crate::evidence::photo::{PhotoRecord, ReuseHit};
use crate::evidence::Signer;

/// Entries sealed as soon as they are written: evidence a dispute turns on.
const SEALED_AT: [JournalKind; 3] = [JournalKind::Photo, JournalKind::Consent, JournalKind::ReceiptSigned];

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

    /// Writes `drafts` inside `tx`; returns the new head (applied after commit). The entries
    /// are covered by the session (opened here, by the device key, when none is valid); a
    /// photo, consent or receipt is sealed at once (ADR 0017).
    pub(crate) fn journal_tx(&self, tx: &Transaction<'_>, head: &mut Option<Head>, stamp: Stamp, drafts: &[Draft]) -> Result<Head, Error> {
        let mut current = match head.take() {
            Some(h) => h,
            None => load_head(tx)?,
        };
        let session = self.session_for(tx, &mut current, stamp)?;
        for d in drafts {
            self.append_tx(tx, &mut current, stamp, d, Signing::Session(&session))?;
            if let Some(reason) = SEALED_AT.iter().find(|k| **k == d.kind).map(|k| k.as_str()) {
                let written = current.written;
                let seal = Draft::of(JournalKind::Seal, d.order.as_deref(), &SealPayload { reason: reason.into() })?;
                self.append_tx(tx, &mut current, stamp, &seal, Signing::Session(&session))?;
                current.written = written;
            }
        }
        Ok(current)
    }

    /// Builds one draft's entries on `current` (its per-order link looked up) and inserts them.
    fn append_tx(&self, tx: &Transaction<'_>, current: &mut Head, stamp: Stamp, d: &Draft, signing: Signing<'_>) -> Result<(), Error> {
        let order_prev = match &d.order {
            Some(o) => Some(
                tx.prepare_cached("SELECT hash FROM journal WHERE order_id = ?1 ORDER BY seq DESC LIMIT 1")?
                    .query_row([o], |r| r.get::<_, String>(0))
                    .optional()?
                    .unwrap_or_else(|| journal::ZERO_HASH.to_string()),
            ),
            None => None,
        };
        let (entries, next) = journal::seal_with(current, self.device_id(), stamp.at_ms, stamp.mono_ms, d, order_prev.as_deref(), signing)?;
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
        *current = next;
        Ok(())
    }

    /// The open session, or a new one certified by the device key in a `session_open` entry
    /// written in `tx`. A session counts only while its entry is in the journal. Entries are
    /// written only here, under the writer lock, and this check runs before any entry of a
    /// transaction: if the transaction that opened the session rolled back, the head is still
    /// below the session's seq, so the session is replaced before anything could name it.
    fn session_for(&self, tx: &Transaction<'_>, current: &mut Head, stamp: Stamp) -> Result<Arc<Session>, Error> {
        let open = self.session.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(s) = open.filter(|s| s.valid_at(stamp.at_ms) && s.seq <= current.seq) {
            return Ok(s);
        }
        let signer = self.signer().ok_or(Error::NoSigner)?;
        let last_signed: i64 = tx.query_row("SELECT IFNULL(MAX(seq), 0) FROM journal WHERE length(signature) > 0", [], |r| r.get(0))?;
        let unsealed = (current.seq > last_signed as u64).then_some((last_signed as u64 + 1, current.seq));
        let (key, draft) = Session::begin(stamp.at_ms, unsealed)?;
        self.append_tx(tx, current, stamp, &draft, Signing::Every(signer.as_ref()))?;
        let session = Arc::new(Session::new(current.seq, key, stamp.at_ms));
        *self.session.lock().unwrap_or_else(|p| p.into_inner()) = Some(session.clone());
        Ok(session)
    }

    /// Orders whose latest entry is not signed (their chain waits for a seal).
    fn unsealed_orders(conn: &rusqlite::Connection) -> Result<Vec<String>, Error> {
        let through: Option<String> = conn.query_row("SELECT value FROM meta WHERE key = ?1", [MetaKey::SealedThrough.as_str()], |r| r.get(0)).optional()?;
        let through = match through {
            Some(v) => Some(v.parse::<i64>().map_err(|_| Error::Meta { key: MetaKey::SealedThrough.as_str(), value: v })?),
            None => None,
        };
        Self::unsealed_orders_after(conn, through)
    }

    /// Orders whose chain ends unsigned, looking only at orders with entries after `through`
    /// (`None`: every order).
    fn unsealed_orders_after(conn: &rusqlite::Connection, through: Option<i64>) -> Result<Vec<String>, Error> {
        // Only orders with entries after the last `seal_pending` can end unsigned now (every
        // chain up to it ended in a seal), so the scan is of the recent entries, not of every
        // order's whole chain (which an encrypted store decrypts page by page).
        let rows = match through {
            Some(after) => {
                let mut st = conn.prepare_cached(
                    "SELECT o.order_id FROM (SELECT DISTINCT order_id FROM journal WHERE seq > ?1 AND order_id IS NOT NULL) o \
                     WHERE (SELECT length(signature) FROM journal WHERE order_id = o.order_id ORDER BY seq DESC LIMIT 1) = 0 \
                     ORDER BY (SELECT MAX(seq) FROM journal WHERE order_id = o.order_id)",
                )?;
                let rows = st.query_map([after], |r| r.get::<_, String>(0))?.collect::<Result<_, _>>()?;
                rows
            }
            None => {
                let mut st = conn.prepare_cached(
                    "SELECT order_id FROM journal WHERE seq IN (SELECT MAX(seq) FROM journal WHERE order_id IS NOT NULL GROUP BY order_id) \
                     AND length(signature) = 0 ORDER BY seq",
                )?;
                let rows = st.query_map([], |r| r.get::<_, String>(0))?.collect::<Result<_, _>>()?;
                rows
            }
        };
        Ok(rows)
    }

    /// Consent entries no countersignature names yet (the app was killed before the worker
    /// reached them).
    pub fn uncountersigned(&self) -> Result<Vec<u64>, Error> {
        let conn = self.reader();
        // The kinds are literals: the partial index `journal_consents` (migration 007) serves
        // only queries that name them.
        let mut st = conn.prepare_cached("SELECT seq FROM journal WHERE kind = 'consent' ORDER BY seq")?;
        let consents: Vec<i64> = st.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
        if consents.is_empty() {
            return Ok(Vec::new());
        }
        let mut st = conn.prepare_cached("SELECT seq, body FROM journal WHERE kind = 'countersign'")?;
        let mut signed = std::collections::HashSet::new();
        for row in st.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)))? {
            let (seq, body) = row?;
            let c: Option<journal::Countersign> =
                serde_json::from_slice::<journal::Body>(&body).ok().and_then(|b| b.payload).and_then(|p| serde_json::from_value(p).ok());
            let c = c.ok_or(journal::Error::Malformed { seq: seq as u64, reason: "unreadable countersignature".into() })?;
            signed.insert(c.seq);
        }
        Ok(consents.into_iter().map(|s| s as u64).filter(|s| !signed.contains(s)).collect())
    }

    /// Whether anything in the journal waits for a seal: an order's chain, or the tail.
    pub fn has_unsealed(&self) -> Result<bool, Error> {
        let conn = self.reader();
        let tail: Option<i64> = conn.query_row("SELECT length(signature) FROM journal ORDER BY seq DESC LIMIT 1", [], |r| r.get(0)).optional()?;
        Ok(tail == Some(0) || !Self::unsealed_orders(&conn)?.is_empty())
    }

    /// Seals every order chain that ends unsigned, then the tail, with the session key
    /// (`reason`: `sync`, `export`, `reopen`). Returns how many seals were written.
    pub fn seal_pending(&self, stamp: Stamp, reason: &str) -> Result<usize, Error> {
        if !self.has_unsealed()? {
            return Ok(0);
        }
        let mut w = self.writer();
        let w = &mut *w;
        let tx = w.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut current = match w.head.take() {
            Some(h) => h,
            None => load_head(&tx)?,
        };
        let session = self.session_for(&tx, &mut current, stamp)?;
        let mut seals = 0;
        let payload = SealPayload { reason: reason.into() };
        for order in Self::unsealed_orders(&tx)? {
            self.append_tx(&tx, &mut current, stamp, &Draft::of(JournalKind::Seal, Some(&order), &payload)?, Signing::Session(&session))?;
            seals += 1;
        }
        let tail: i64 = tx.query_row("SELECT length(signature) FROM journal WHERE seq = ?1", [current.seq as i64], |r| r.get(0))?;
        if tail == 0 {
            self.append_tx(&tx, &mut current, stamp, &Draft::of(JournalKind::Seal, None, &payload)?, Signing::Session(&session))?;
            seals += 1;
        }
        // Every order chain up to here ends in a seal: later checks look only past it.
        tx.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)", rusqlite::params![MetaKey::SealedThrough.as_str(), current.seq.to_string()])?;
        tx.commit()?;
        w.head = Some(current);
        Ok(seals)
    }

    /// Appends one journal entry in its own transaction.
    pub fn append_journal(&self, stamp: Stamp, draft: &Draft) -> Result<u64, Error> {
        let mut w = self.writer();
        let w = &mut *w;
        let tx = w.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let head = self.journal_tx(&tx, &mut w.head.clone(), stamp, std::slice::from_ref(draft))?;
        tx.commit()?;
        let seq = head.written;
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
            head.written as i64,
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
        let seq = head.written;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::journal::{Keys, Problem};
    use crate::evidence::{Signer, SoftwareSigner};

    #[test]
    fn a_rolled_back_session_is_never_named_by_a_later_seal() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let key = Arc::new(SoftwareSigner::generate().unwrap());
        store.set_signer(key.clone());
        let stamp = |t: i64| Stamp { at_ms: 1_000_000 + t, mono_ms: 1_000 + t as u64 };
        let note = |i: u32| Draft::new(JournalKind::Photo, Some("WO-1"), serde_json::json!({ "i": i }));
        // A transaction opens the first session and writes a sealed photo entry, then rolls back.
        {
            let mut w = store.writer();
            let w = &mut *w;
            let tx = w.conn.transaction_with_behavior(TransactionBehavior::Immediate).unwrap();
            store.journal_tx(&tx, &mut w.head.clone(), stamp(0), &[note(0)]).unwrap();
            drop(tx);
        }
        assert!(store.journal_entries(None).unwrap().is_empty());
        // The next writes open a session of their own; the journal verifies and is sealed.
        store.append_journal(stamp(10), &note(1)).unwrap();
        store.append_journal(stamp(20), &note(2)).unwrap();
        let entries = store.journal_entries(None).unwrap();
        let r = crate::evidence::journal::verify(&entries, &Keys::device(&key.public_key()), store.device_id(), Some(journal::ZERO_HASH));
        assert!(r.sealed(), "{r:?}");
        assert_ne!(r.first_problem, Some(Problem::UnknownSession { seq: 3 }));
        assert_eq!(entries.iter().filter(|e| e.body().unwrap().is(JournalKind::SessionOpen)).count(), 1);
    }

    /// The unsealed-chain check past the watermark finds exactly what a scan of every chain
    /// finds, through random notes and seals on several orders; and the opening queries use
    /// indexes, not a scan of the journal.
    #[test]
    fn unsealed_chains_past_the_watermark_match_the_full_scan() {
        use rand::{Rng, SeedableRng};
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.set_signer(Arc::new(SoftwareSigner::generate().unwrap()));
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut t = 0;
        let mut watermarks = 0;
        for _ in 0..300 {
            t += 10;
            let stamp = Stamp { at_ms: 1_000_000 + t, mono_ms: 1_000 + t as u64 };
            if rng.gen_ratio(1, 8) {
                store.seal_pending(stamp, "test").unwrap();
                watermarks += 1;
            } else {
                let order = format!("WO-{}", rng.gen_range(0..6));
                store.append_journal(stamp, &Draft::new(JournalKind::Note, Some(&order), serde_json::json!({ "t": t }))).unwrap();
            }
            let conn = store.reader();
            let fast = Store::unsealed_orders(&conn).unwrap();
            let full = Store::unsealed_orders_after(&conn, None).unwrap();
            assert_eq!(fast, full);
        }
        assert!(watermarks > 20);
        let conn = store.reader();
        let plan = |sql: &str| -> String {
            let mut st = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            st.query_map([], |r| r.get::<_, String>(3)).unwrap().map(|r| r.unwrap()).collect::<Vec<_>>().join("; ")
        };
        assert!(plan("SELECT seq FROM journal WHERE kind = 'consent' ORDER BY seq").contains("journal_consents"));
        assert!(plan("SELECT seq, body FROM journal WHERE kind = 'countersign'").contains("journal_consents"));
    }
}

#[cfg(test)]
mod statement_tests {
    use std::sync::{Arc, Mutex};

    /// The writer's cached statements are prepared once: an edit re-parses no SQL. (With
    /// STAT4 compiled in, SQLite marked `?1` in `order_id = ?1 ORDER BY seq DESC LIMIT 1` as
    /// plan-relevant, and rusqlite's cache clears bindings on return, so the per-order link
    /// lookup was re-prepared on every journal entry; the connections now run with the query
    /// planner stability guarantee.)
    #[test]
    fn edits_reprepare_no_statement() {
        let dir = tempfile::tempdir().unwrap();
        let d = crate::device::Device::open(crate::device::testkit::options(dir.path())).unwrap();
        d.import_orders_json(&crate::order::import::tests::sample_json("WO-1")).unwrap();
        d.add_note("WO-1", "warm up").unwrap();
        let seen: Arc<Mutex<Vec<(String, i32)>>> = Arc::default();
        {
            let sink = seen.clone();
            let mut w = d.store().writer();
            w.conn
                .trace_v2(
                    rusqlite::trace::TraceEventCodes::SQLITE_TRACE_PROFILE,
                    Some(move |e: rusqlite::trace::TraceEvent<'_>| {
                        if let rusqlite::trace::TraceEvent::Profile(s, _) = e {
                            let n = s.get_status(rusqlite::StatementStatus::RePrepare);
                            sink.lock().unwrap().push((s.sql().to_string(), n));
                        }
                    }),
                )
                .unwrap();
        }
        for i in 0..5 {
            d.add_note("WO-1", &format!("note {i}")).unwrap();
        }
        let seen = seen.lock().unwrap();
        assert!(seen.iter().any(|(sql, _)| sql.contains("FROM journal WHERE order_id")), "{seen:?}");
        let reprepared: Vec<_> = seen.iter().filter(|(_, n)| *n > 0).collect();
        assert!(reprepared.is_empty(), "{reprepared:?}");
    }
}
