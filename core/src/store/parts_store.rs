//! The spare-part ledger and certifications in SQLite (migration 006).

use rusqlite::{params, OptionalExtension, Transaction, TransactionBehavior};

use super::{Error, Stamp, Store};
use crate::evidence::journal::{Draft, JournalKind};
use crate::parts::{BorrowPolicy, Ledger, Movement};

/// A stored movement and where it came from.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MovementRow {
    pub movement: Movement,
    pub step: Option<String>,
    /// `local` (this device, journaled) or `remote` (merged from the server).
    pub origin: String,
    pub journal_seq: Option<u64>,
    pub synced: bool,
}

fn movement_rows(conn: &rusqlite::Connection, filter: &str) -> Result<Vec<MovementRow>, Error> {
    let sql = format!("SELECT body, step, origin, journal_seq, synced FROM part_movements {filter} ORDER BY seq");
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map([], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?, r.get::<_, String>(2)?, r.get::<_, Option<i64>>(3)?, r.get::<_, i64>(4)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (body, step, origin, journal_seq, synced) = row?;
        let movement: Movement = serde_json::from_str(&body).map_err(|e| Error::Document { id: "part_movements".into(), reason: e.to_string() })?;
        out.push(MovementRow { movement, step, origin, journal_seq: journal_seq.map(|s| s as u64), synced: synced != 0 });
    }
    Ok(out)
}

fn last_id(conn: &rusqlite::Connection) -> Result<String, Error> {
    Ok(conn.query_row("SELECT id FROM part_movements ORDER BY seq DESC LIMIT 1", [], |r| r.get(0)).optional()?.unwrap_or_default())
}

impl Store {
    /// The ledger as `conn` sees it: from the cache when the last movement is the one it was
    /// folded up to (ids are random, so a rolled-back insert never matches), else replayed.
    pub(crate) fn ledger_in(&self, conn: &rusqlite::Connection) -> Result<Ledger, Error> {
        let last = last_id(conn)?;
        let mut cache = self.ledger_cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((id, l)) = cache.as_ref() {
            if *id == last {
                return Ok(l.clone());
            }
        }
        let rows = movement_rows(conn, "")?;
        let l = Ledger::replay(rows.iter().map(|r| &r.movement));
        *cache = Some((last, l.clone()));
        Ok(l)
    }

    /// Checks local movements against the ledger in `tx` and the policy, and inserts them.
    /// All or nothing: the caller's transaction rolls back on the first refusal.
    pub(crate) fn insert_local_tx(
        &self,
        tx: &Transaction<'_>,
        moves: &[Movement],
        step: Option<&str>,
        journal_seqs: &[u64],
        policy: BorrowPolicy,
    ) -> Result<(), Error> {
        let mut ledger = self.ledger_in(tx)?;
        for (i, m) in moves.iter().enumerate() {
            ledger.check(m, policy)?;
            ledger.apply(m)?;
            let body = serde_json::to_string(m).map_err(|e| Error::Document { id: m.id.clone(), reason: e.to_string() })?;
            let seq = journal_seqs.get(i).or(journal_seqs.last()).map(|s| *s as i64);
            tx.prepare_cached("INSERT INTO part_movements (id, body, order_id, step, origin, journal_seq) VALUES (?1, ?2, ?3, ?4, 'local', ?5)")?
                .execute(params![m.id, body, m.order_id, step, seq])?;
        }
        if let Some(last) = moves.last() {
            // Replays sort by Lamport clock; a local movement is always the newest, so the
            // cached fold stays the replay's result.
            *self.ledger_cache.lock().unwrap_or_else(|p| p.into_inner()) = Some((last.id.clone(), ledger));
        }
        Ok(())
    }

    /// The highest Lamport clock known (committed state).
    pub fn max_lamport(&self) -> Result<u64, Error> {
        Ok(self.ledger()?.max_lamport)
    }

    /// Every movement, in the order this device learnt them.
    pub fn movements(&self) -> Result<Vec<MovementRow>, Error> {
        let r = self.reader();
        movement_rows(&r, "")
    }

    pub fn ledger(&self) -> Result<Ledger, Error> {
        let r = self.reader();
        self.ledger_in(&r)
    }

    /// Movements a checklist step already recorded for an order (a corrected answer records
    /// only what is new).
    pub fn step_movements(&self, order_id: &str, step: &str) -> Result<Vec<Movement>, Error> {
        let r = self.reader();
        let mut stmt = r.prepare_cached("SELECT body FROM part_movements WHERE order_id = ?1 AND step = ?2 AND origin = 'local' ORDER BY seq")?;
        let rows = stmt.query_map(params![order_id, step], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for b in rows {
            out.push(serde_json::from_str(&b?).map_err(|e| Error::Document { id: "part_movements".into(), reason: e.to_string() })?);
        }
        Ok(out)
    }

    /// Records movements made on this device: each checked against the ledger (inside the
    /// write transaction) and sealed by its own journal entry. Returns the journal seqs.
    pub fn record_movements(&self, stamp: Stamp, moves: &[Movement], policy: BorrowPolicy) -> Result<Vec<u64>, Error> {
        let mut w = self.writer();
        let w = &mut *w;
        let tx = w.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let base = self.ledger_in(&tx)?.max_lamport;
        let moves: Vec<Movement> = moves.iter().enumerate().map(|(i, m)| Movement { lamport: base + 1 + i as u64, ..m.clone() }).collect();
        let moves = &moves[..];
        let drafts: Vec<Draft> = moves.iter().map(|m| Draft::of(JournalKind::PartMovement, m.order_id.as_deref(), m)).collect::<Result<_, _>>()?;
        let head = self.journal_tx(&tx, &mut w.head.clone(), stamp, &drafts)?;
        let first = head.written + 1 - moves.len() as u64;
        let seqs: Vec<u64> = (first..=head.written).collect();
        self.insert_local_tx(&tx, moves, None, &seqs, policy)?;
        tx.commit()?;
        w.head = Some(head);
        Ok(seqs)
    }

    /// This device's movements the server has not acknowledged.
    pub fn unsynced_movements(&self) -> Result<Vec<Movement>, Error> {
        let r = self.reader();
        Ok(movement_rows(&r, "WHERE synced = 0")?.into_iter().map(|r| r.movement).collect())
    }

    pub fn mark_movements_synced(&self, ids: &[String]) -> Result<(), Error> {
        let mut w = self.writer();
        let tx = w.conn.transaction()?;
        for id in ids {
            tx.prepare_cached("UPDATE part_movements SET synced = 1 WHERE id = ?1")?.execute([id])?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Merges movements from the server (the clerk's, other devices'); ones already known
    /// are skipped. Returns how many were new.
    pub fn merge_movements(&self, moves: &[Movement]) -> Result<usize, Error> {
        let mut w = self.writer();
        let tx = w.conn.transaction()?;
        let mut n = 0;
        for m in moves {
            let body = serde_json::to_string(m).map_err(|e| Error::Document { id: m.id.clone(), reason: e.to_string() })?;
            n += tx
                .prepare_cached("INSERT OR IGNORE INTO part_movements (id, body, order_id, origin, synced) VALUES (?1, ?2, ?3, 'remote', 1)")?
                .execute(params![m.id, body, m.order_id])?;
        }
        tx.commit()?;
        Ok(n)
    }

    pub fn save_certification(&self, id: &str, body: &str, signature: &str, at_ms: i64) -> Result<bool, Error> {
        let w = self.writer();
        let n = w
            .conn
            .execute("INSERT OR IGNORE INTO certifications (id, body, signature, received_at) VALUES (?1, ?2, ?3, ?4)", params![id, body, signature, at_ms])?;
        Ok(n == 1)
    }

    /// (id, canonical body, signature hex), oldest first.
    /// The signed certifications this device accepted, in the order they arrived.
    pub fn certifications(&self) -> Result<Vec<crate::profile::SignedCertification>, Error> {
        let r = self.reader();
        let mut stmt = r.prepare_cached("SELECT body, signature FROM certifications ORDER BY received_at, id")?;
        let rows = stmt.query_map([], |r| Ok(crate::profile::SignedCertification { body: r.get(0)?, signature: r.get(1)? }))?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    pub fn certification(&self, id: &str) -> Result<Option<String>, Error> {
        let r = self.reader();
        Ok(r.query_row("SELECT body FROM certifications WHERE id = ?1", [id], |r| r.get(0)).optional()?)
    }
}
