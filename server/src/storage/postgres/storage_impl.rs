//! `Storage` for [`PostgresStorage`]: each method one statement or one transaction.

use std::cell::RefCell;

use super::{
    change_rows, device_row, expert_row, help_row, next_seq, order_row, pos, unique_violation, PgReader, PostgresStorage, DEVICE_COLS, FEED_LOCK, HELP_COLUMNS,
    LOG_LOCK_CLASS, ORDER_COLS,
};
use crate::storage::{
    Admit, CertificationRow, Compaction, DeviceRow, Enrolled, Error, ExpertRow, FeedReader, HelpRow, JournalRow, MetaKey, MovementRecord, NewChange,
    OrderEntry, OrderRow, ReceiptRow, Result, Storage, StoredChange, StoredMovement,
};

impl Storage for PostgresStorage {
    fn meta(&self, key: MetaKey) -> Result<Option<String>> {
        Ok(self.pool.get()?.query_opt("SELECT value FROM meta WHERE key = $1", &[&key.as_str()])?.map(|r| r.try_get(0)).transpose()?)
    }

    fn set_meta(&self, key: MetaKey, value: &str) -> Result<()> {
        self.pool
            .get()?
            .execute("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value", &[&key.as_str(), &value])?;
        Ok(())
    }

    fn create_provider(&self, id: &str, name: &str, token_hash: &str, at_ms: i64) -> Result<()> {
        let n = self.pool.get()?.execute(
            "INSERT INTO providers (id, name, token_hash, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            &[&id, &name, &token_hash, &at_ms],
        )?;
        if n == 0 {
            return Err(Error::Exists(format!("provider `{id}`")));
        }
        Ok(())
    }

    fn provider_by_token(&self, token_hash: &str) -> Result<Option<String>> {
        Ok(self.pool.get()?.query_opt("SELECT id FROM providers WHERE token_hash = $1", &[&token_hash])?.map(|r| r.try_get(0)).transpose()?)
    }

    fn provider_name(&self, id: &str) -> Result<Option<String>> {
        Ok(self.pool.get()?.query_opt("SELECT name FROM providers WHERE id = $1", &[&id])?.map(|r| r.try_get(0)).transpose()?)
    }

    fn create_code(&self, code_hash: &str, provider: &str, engineer_id: &str, expires_at: i64) -> Result<()> {
        self.pool.get()?.execute(
            "INSERT INTO enrol_codes (code_hash, provider, engineer_id, expires_at) VALUES ($1, $2, $3, $4)",
            &[&code_hash, &provider, &engineer_id, &expires_at],
        )?;
        Ok(())
    }

    fn enrol(&self, code_hash: &str, now_ms: i64, device_id: &str, public_key: &[u8], token_hash: &str, admit: Admit<'_>) -> Result<Enrolled> {
        let mut c = self.pool.get()?;
        let mut tx = c.transaction()?;
        // The row lock makes redemption single-use across instances: a second redeemer
        // waits, then reads the code as used.
        let code = tx.query_opt("SELECT provider, engineer_id, expires_at, used_at FROM enrol_codes WHERE code_hash = $1 FOR UPDATE", &[&code_hash])?;
        let Some(code) = code else { return Err(Error::NotFound("enrolment code".into())) };
        let (provider, engineer): (String, String) = (code.try_get(0)?, code.try_get(1)?);
        if code.get::<_, Option<i64>>(3).is_some() {
            return Err(Error::Conflict("the enrolment code was already used".into()));
        }
        if code.try_get::<_, i64>(2)? < now_ms {
            return Err(Error::Conflict("the enrolment code has expired".into()));
        }
        const TAKEN: &str = "this device id cannot be enrolled with this key; generate a new device identity";
        let attestation = admit(&provider)?;
        match tx.query_opt("SELECT provider, public_key FROM devices WHERE id = $1 FOR UPDATE", &[&device_id])? {
            Some(d) if d.try_get::<_, String>(0)? != provider => return Err(Error::Conflict(TAKEN.into())),
            Some(d) => {
                if d.get::<_, Vec<u8>>(1) != public_key {
                    return Err(Error::Conflict(TAKEN.into()));
                }
                tx.execute(
                    "UPDATE devices SET engineer_id = $2, revoked_at = NULL, attestation = COALESCE($3, attestation) WHERE id = $1",
                    &[&device_id, &engineer, &attestation],
                )?;
                tx.execute("UPDATE tokens SET revoked_at = $2 WHERE device_id = $1 AND revoked_at IS NULL", &[&device_id, &now_ms])?;
            }
            None => {
                tx.execute(
                    "INSERT INTO devices (id, provider, engineer_id, public_key, enrolled_at, attestation) VALUES ($1, $2, $3, $4, $5, $6)",
                    &[&device_id, &provider, &engineer, &public_key, &now_ms, &attestation],
                )?;
            }
        }
        tx.execute("UPDATE enrol_codes SET used_at = $2, device_id = $3 WHERE code_hash = $1", &[&code_hash, &now_ms, &device_id])?;
        tx.execute("INSERT INTO tokens (hash, device_id, issued_at) VALUES ($1, $2, $3)", &[&token_hash, &device_id, &now_ms])?;
        tx.commit()?;
        Ok(Enrolled { provider, engineer_id: engineer })
    }

    fn device_by_token(&self, token_hash: &str) -> Result<Option<DeviceRow>> {
        let row = self.pool.get()?.query_opt(
            &format!("SELECT {DEVICE_COLS} FROM tokens t JOIN devices d ON d.id = t.device_id WHERE t.hash = $1 AND t.revoked_at IS NULL"),
            &[&token_hash],
        )?;
        row.as_ref().map(device_row).transpose()
    }

    fn devices(&self, provider: &str) -> Result<Vec<DeviceRow>> {
        let rows = self.pool.get()?.query(&format!("SELECT {DEVICE_COLS} FROM devices d WHERE d.provider = $1 ORDER BY d.id"), &[&provider])?;
        rows.iter().map(device_row).collect()
    }

    fn revoke_device(&self, provider: &str, device_id: &str, at_ms: i64) -> Result<()> {
        let mut c = self.pool.get()?;
        let mut tx = c.transaction()?;
        let n = tx.execute("UPDATE devices SET revoked_at = $3 WHERE id = $1 AND provider = $2", &[&device_id, &provider, &at_ms])?;
        if n == 0 {
            return Err(Error::NotFound(format!("device `{device_id}`")));
        }
        tx.execute("UPDATE tokens SET revoked_at = $2 WHERE device_id = $1 AND revoked_at IS NULL", &[&device_id, &at_ms])?;
        tx.commit()?;
        Ok(())
    }

    fn order(&self, provider: &str, id: &str) -> Result<Option<OrderRow>> {
        PgReader(RefCell::new(&mut *self.pool.get()?)).order(provider, id)
    }

    fn orders(&self, provider: &str, engineer: Option<&str>) -> Result<Vec<OrderRow>> {
        let rows = self.pool.get()?.query(
            &format!("SELECT {ORDER_COLS} FROM orders WHERE provider = $1 AND ($2::TEXT IS NULL OR engineer_id = $2) ORDER BY id"),
            &[&provider, &engineer],
        )?;
        rows.iter().map(order_row).collect()
    }

    fn document(&self, provider: &str, id: &str) -> Result<Vec<Vec<u8>>> {
        PgReader(RefCell::new(&mut *self.pool.get()?)).document(provider, id)
    }

    fn create_order(&self, row: &OrderRow, snapshot: &[u8]) -> Result<u64> {
        let mut c = self.pool.get()?;
        let mut tx = c.transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&FEED_LOCK])?;
        if tx.query_opt("SELECT 1 FROM orders WHERE provider = $1 AND id = $2", &[&row.provider, &row.id])?.is_some() {
            return Err(Error::Exists(format!("order `{}`", row.id)));
        }
        let seq = next_seq(self.position_taken.as_ref(), &mut tx, &row.provider, &row.id, "assign", "server", Some(&row.engineer_id), None)?;
        let s = seq as i64;
        tx.execute(
            &format!("INSERT INTO orders ({ORDER_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $7, $8)"),
            &[&row.provider, &row.id, &row.engineer_id, &row.status, &row.priority, &row.customer, &s, &row.summary],
        )?;
        tx.execute("INSERT INTO docs (provider, order_id, snapshot) VALUES ($1, $2, $3)", &[&row.provider, &row.id, &snapshot])?;
        tx.commit()?;
        Ok(seq)
    }

    fn store_change(&self, change: &NewChange<'_>, compaction: Compaction<'_>) -> Result<StoredChange> {
        let NewChange { row, origin, chunk, previous_engineer, expected_seq } = *change;
        let mut c = self.pool.get()?;
        let mut tx = c.transaction()?;
        // Positions are taken and committed under one lock: see the module comment.
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&FEED_LOCK])?;
        let seq = next_seq(self.position_taken.as_ref(), &mut tx, &row.provider, &row.id, "change", origin, None, Some(chunk))?;
        let mut assigned: Option<i64> = None;
        if let Some(prev) = previous_engineer.filter(|p| *p != row.engineer_id) {
            next_seq(self.position_taken.as_ref(), &mut tx, &row.provider, &row.id, "unassign", origin, Some(prev), None)?;
            assigned = Some(next_seq(self.position_taken.as_ref(), &mut tx, &row.provider, &row.id, "assign", origin, Some(&row.engineer_id), None)? as i64);
        }
        let s = seq as i64;
        let n = tx.execute(
            "UPDATE orders SET engineer_id = $3, status = $4, priority = $5, customer = $6, updated_seq = $7, \
             assigned_seq = coalesce($8, assigned_seq), summary = $10 WHERE provider = $1 AND id = $2 AND updated_seq = $9",
            &[&row.provider, &row.id, &row.engineer_id, &row.status, &row.priority, &row.customer, &s, &assigned, &pos(expected_seq), &row.summary],
        )?;
        if n != 1 {
            let exists = tx.query_opt("SELECT 1 FROM orders WHERE provider = $1 AND id = $2", &[&row.provider, &row.id])?.is_some();
            return Err(if exists { Error::Stale(row.id.clone()) } else { Error::NotFound(format!("order `{}`", row.id)) });
        }
        let compacted = change_rows(&mut tx, &row.provider, &row.id)? > compaction.after_rows;
        if compacted {
            let snapshot = (compaction.snapshot)();
            tx.execute("UPDATE docs SET snapshot = $3 WHERE provider = $1 AND order_id = $2", &[&row.provider, &row.id, &snapshot])?;
            tx.execute(
                "DELETE FROM feed WHERE provider = $1 AND order_id = $2 AND kind IN ('change', 'compacted') AND seq < $3",
                &[&row.provider, &row.id, &s],
            )?;
            tx.execute(
                "UPDATE feed SET kind = 'compacted', bytes = NULL WHERE provider = $1 AND order_id = $2 AND seq = $3 AND kind = 'change'",
                &[&row.provider, &row.id, &s],
            )?;
            tx.execute("UPDATE orders SET compacted_seq = $3 WHERE provider = $1 AND id = $2", &[&row.provider, &row.id, &s])?;
        }
        tx.commit()?;
        Ok(StoredChange { seq, compacted })
    }

    fn change_rows(&self, provider: &str, id: &str) -> Result<u64> {
        change_rows(&mut *self.pool.get()?, provider, id)
    }

    fn max_seq(&self) -> Result<u64> {
        PgReader(RefCell::new(&mut *self.pool.get()?)).head()
    }

    fn watch_feed(&self, publish: std::sync::Arc<dyn Fn(u64) + Send + Sync>) -> Result<bool> {
        super::listen::spawn(self.pool.config.clone(), self.stop.clone(), publish).map_err(|e| Error::Backend(Box::new(e)))?;
        Ok(true)
    }

    fn check(&self) -> Result<()> {
        self.pool.get()?.simple_query("SELECT 1")?;
        Ok(())
    }

    fn pool_stats(&self) -> Option<crate::storage::PoolStats> {
        Some(self.pool.stats())
    }

    fn describe(&self) -> String {
        self.describe.clone()
    }

    fn snapshot(&self, f: &mut dyn FnMut(&dyn FeedReader) -> Result<()>) -> Result<()> {
        let mut c = self.pool.get()?;
        let tx = c.build_transaction().isolation_level(postgres::IsolationLevel::RepeatableRead).read_only(true).start()?;
        let reader = PgReader(RefCell::new(tx));
        f(&reader)?;
        reader.0.into_inner().commit()?;
        Ok(())
    }

    fn receipt_hashes(&self, provider: &str, order_id: &str) -> Result<Vec<String>> {
        let rows = self.pool.get()?.query("SELECT sha256 FROM receipts WHERE provider = $1 AND order_id = $2 ORDER BY revision", &[&provider, &order_id])?;
        Ok(rows.iter().map(|r| r.try_get(0)).collect::<std::result::Result<_, _>>()?)
    }

    fn append_journal(&self, device: &DeviceRow, entries: &[JournalRow], receipts: &[ReceiptRow]) -> Result<Vec<u64>> {
        let mut c = self.pool.get()?;
        let mut tx = c.transaction()?;
        // One appender per provider log at a time, on every instance.
        tx.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", &[&LOG_LOCK_CLASS, &device.provider])?;
        let seq: i64 = tx.query_one("SELECT journal_seq FROM devices WHERE id = $1 FOR UPDATE", &[&device.id])?.try_get(0)?;
        if seq as u64 != device.journal_seq {
            return Err(Error::Conflict(format!("the journal moved to {seq} meanwhile")));
        }
        let size = super::log::size(&mut tx, &device.provider)? as i64;
        let leaves: Vec<[u8; 32]> = entries.iter().map(|e| e.leaf).collect();
        let nodes = onsite_core::evidence::log::tree::append(&mut super::log::Nodes { client: &mut tx, provider: &device.provider }, size as u64, &leaves)
            .map_err(crate::storage::log_error)?;
        super::log::write_nodes(&mut tx, &device.provider, &nodes)?;
        let mut indices = Vec::with_capacity(entries.len());
        for (idx, e) in (size..).zip(entries) {
            let s = e.seq as i64;
            tx.execute(
                "INSERT INTO journal (device_id, seq, order_id, kind, body, hash, signature) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[&device.id, &s, &e.order_id, &e.kind, &e.body, &e.hash, &e.signature],
            )?;
            tx.execute(
                "INSERT INTO log_leaves (provider, idx, leaf, device_id, seq) VALUES ($1, $2, $3, $4, $5)",
                &[&device.provider, &idx, &e.leaf.as_slice(), &device.id, &s],
            )?;
            indices.push(idx as u64);
        }
        for r in receipts {
            let (revision, journal_seq) = (i64::from(r.revision), r.journal_seq as i64);
            tx.execute(
                "INSERT INTO receipts (provider, order_id, revision, sha256, canonical, strokes, message, signature, device_id, journal_seq) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING",
                &[&device.provider, &r.order_id, &revision, &r.sha256, &r.canonical, &r.strokes, &r.message, &r.signature, &device.id, &journal_seq],
            )?;
        }
        if let Some(last) = entries.last() {
            tx.execute("UPDATE devices SET journal_seq = $2, journal_head = $3 WHERE id = $1", &[&device.id, &(last.seq as i64), &last.hash])?;
        }
        tx.commit()?;
        Ok(indices)
    }

    fn touch_device(&self, device_id: &str, at_ms: i64) -> Result<()> {
        self.pool.get()?.execute("UPDATE devices SET last_seen_ms = greatest(coalesce(last_seen_ms, 0), $2) WHERE id = $1", &[&device_id, &at_ms])?;
        Ok(())
    }

    fn receipts(&self, provider: &str, order_id: &str) -> Result<Vec<(String, ReceiptRow)>> {
        let rows = self.pool.get()?.query(
            "SELECT device_id, order_id, revision, sha256, canonical, strokes, message, signature, journal_seq FROM receipts \
             WHERE provider = $1 AND order_id = $2 ORDER BY revision",
            &[&provider, &order_id],
        )?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get(0)?,
                    ReceiptRow {
                        order_id: r.try_get(1)?,
                        revision: r.try_get::<_, i64>(2)? as u32,
                        sha256: r.try_get(3)?,
                        canonical: r.try_get(4)?,
                        strokes: r.try_get(5)?,
                        message: r.try_get(6)?,
                        signature: r.try_get(7)?,
                        journal_seq: r.try_get::<_, i64>(8)? as u64,
                    },
                ))
            })
            .collect()
    }

    fn order_photo_entries(&self, provider: &str, order_id: &str) -> Result<Vec<OrderEntry>> {
        let rows = self.pool.get()?.query(
            "SELECT j.device_id, j.seq, j.kind, j.body FROM journal j JOIN devices d ON d.id = j.device_id \
             WHERE j.kind = 'photo' AND j.order_id = $2 AND d.provider = $1 ORDER BY j.device_id, j.seq",
            &[&provider, &order_id],
        )?;
        rows.iter()
            .map(|r| Ok(OrderEntry { device_id: r.try_get(0)?, seq: r.try_get::<_, i64>(1)? as u64, kind: r.try_get(2)?, body: r.try_get(3)? }))
            .collect()
    }

    fn journal_hash(&self, device_id: &str, seq: u64) -> Result<Option<String>> {
        Ok(self
            .pool
            .get()?
            .query_opt("SELECT hash FROM journal WHERE device_id = $1 AND seq = $2", &[&device_id, &pos(seq)])?
            .map(|r| r.try_get(0))
            .transpose()?)
    }

    fn log_size(&self, provider: &str) -> Result<u64> {
        super::log::size(&mut *self.pool.get()?, provider)
    }

    fn log_nodes(&self, provider: &str, ids: &[(u8, u64)]) -> Result<Vec<Option<[u8; 32]>>> {
        super::log::nodes(&mut *self.pool.get()?, provider, ids)
    }

    fn log_entries(&self, provider: &str, start: u64, count: u64) -> Result<Vec<Vec<u8>>> {
        super::log::entries(&mut *self.pool.get()?, provider, start, count)
    }

    fn log_leaves(&self, provider: &str) -> Result<Vec<[u8; 32]>> {
        let rows = self.pool.get()?.query("SELECT leaf FROM log_leaves WHERE provider = $1 ORDER BY idx", &[&provider])?;
        rows.iter().map(|r| r.get::<_, Vec<u8>>(0).try_into().map_err(|_| Error::Corrupt("a log leaf is not 32 bytes".into()))).collect()
    }

    fn receipt_count(&self, provider: &str) -> Result<u64> {
        Ok(self.pool.get()?.query_one("SELECT count(*) FROM receipts WHERE provider = $1", &[&provider])?.try_get::<_, i64>(0)? as u64)
    }

    fn record_blob(&self, provider: &str, sha256: &str, size: u64, at_ms: i64) -> Result<bool> {
        let n = self.pool.get()?.execute(
            "INSERT INTO blobs (provider, sha256, size, stored_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            &[&provider, &sha256, &pos(size), &at_ms],
        )?;
        Ok(n == 1)
    }

    fn has_blob(&self, provider: &str, sha256: &str) -> Result<bool> {
        Ok(self.pool.get()?.query_opt("SELECT 1 FROM blobs WHERE provider = $1 AND sha256 = $2", &[&provider, &sha256])?.is_some())
    }

    fn blob_count(&self, provider: &str) -> Result<u64> {
        Ok(self.pool.get()?.query_one("SELECT count(*) FROM blobs WHERE provider = $1", &[&provider])?.try_get::<_, i64>(0)? as u64)
    }

    fn add_movements(&self, provider: &str, engineer: &str, rows: &[MovementRecord]) -> Result<usize> {
        let mut c = self.pool.get()?;
        let mut tx = c.transaction()?;
        let mut n = 0;
        for m in rows {
            n += tx.execute(
                "INSERT INTO part_movements (id, provider, engineer, order_id, author, body) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
                &[&m.id, &provider, &engineer, &m.order_id, &m.author, &m.body],
            )? as usize;
        }
        tx.commit()?;
        Ok(n)
    }

    fn movements_after(&self, provider: &str, engineer: &str, after: u64) -> Result<Vec<StoredMovement>> {
        let rows = self.pool.get()?.query(
            "SELECT seq, body FROM part_movements WHERE provider = $1 AND engineer = $2 AND seq > $3 ORDER BY seq",
            &[&provider, &engineer, &pos(after)],
        )?;
        rows.iter().map(|r| Ok(StoredMovement { seq: r.try_get::<_, i64>(0)? as u64, body: r.try_get(1)? })).collect()
    }

    fn close_order(&self, provider: &str, order_id: &str, at_ms: i64, by: &str) -> Result<()> {
        self.pool.get()?.execute(
            "INSERT INTO closeouts (provider, order_id, closed_at, closed_by) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            &[&provider, &order_id, &at_ms, &by],
        )?;
        Ok(())
    }

    fn closeout(&self, provider: &str, order_id: &str) -> Result<Option<i64>> {
        Ok(self
            .pool
            .get()?
            .query_opt("SELECT closed_at FROM closeouts WHERE provider = $1 AND order_id = $2", &[&provider, &order_id])?
            .map(|r| r.try_get(0))
            .transpose()?)
    }

    fn add_expert(&self, e: &ExpertRow, token_hash: &str) -> Result<()> {
        let json = |v: &Vec<String>| serde_json::to_string(v).map_err(|err| Error::Corrupt(err.to_string()));
        let r = self.pool.get()?.execute(
            "INSERT INTO experts (provider, id, name, categories, brands, fee_cents, token_hash) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[&e.provider, &e.id, &e.name, &json(&e.categories)?, &json(&e.brands)?, &e.fee_cents, &token_hash],
        );
        match r {
            Ok(_) => Ok(()),
            Err(err) if unique_violation(&err) => Err(Error::Exists(format!("expert {}", e.id))),
            Err(err) => Err(err.into()),
        }
    }

    fn experts(&self, provider: &str) -> Result<Vec<ExpertRow>> {
        let rows =
            self.pool.get()?.query("SELECT provider, id, name, categories, brands, fee_cents FROM experts WHERE provider = $1 ORDER BY id", &[&provider])?;
        rows.iter().map(expert_row).collect()
    }

    fn expert_by_token(&self, token_hash: &str) -> Result<Option<ExpertRow>> {
        let row = self.pool.get()?.query_opt("SELECT provider, id, name, categories, brands, fee_cents FROM experts WHERE token_hash = $1", &[&token_hash])?;
        row.as_ref().map(expert_row).transpose()
    }

    fn upsert_help(&self, h: &HelpRow) -> Result<()> {
        self.pool.get()?.execute(
            &format!(
                "INSERT INTO help_requests ({HELP_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                 ON CONFLICT (provider, id) DO UPDATE SET expert_id = excluded.expert_id, status = excluded.status, cost_cents = excluded.cost_cents"
            ),
            &[&h.provider, &h.id, &h.order_id, &h.engineer, &h.expert_id, &h.status, &h.cost_cents, &h.created_at],
        )?;
        Ok(())
    }

    fn help(&self, provider: &str, id: &str) -> Result<Option<HelpRow>> {
        let row = self.pool.get()?.query_opt(&format!("SELECT {HELP_COLUMNS} FROM help_requests WHERE provider = $1 AND id = $2"), &[&provider, &id])?;
        row.as_ref().map(help_row).transpose()
    }

    fn help_requests(&self, provider: &str, expert: Option<&str>) -> Result<Vec<HelpRow>> {
        let rows = self.pool.get()?.query(
            &format!("SELECT {HELP_COLUMNS} FROM help_requests WHERE provider = $1 AND ($2::TEXT IS NULL OR expert_id = $2) ORDER BY created_at, id"),
            &[&provider, &expert],
        )?;
        rows.iter().map(help_row).collect()
    }

    fn add_certification(&self, id: &str, provider: &str, engineer: &str, body: &str, signature: &str) -> Result<()> {
        self.pool.get()?.execute(
            "INSERT INTO certifications (id, provider, engineer, body, signature) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            &[&id, &provider, &engineer, &body, &signature],
        )?;
        Ok(())
    }

    fn certifications(&self, provider: &str, engineer: &str) -> Result<Vec<CertificationRow>> {
        let rows = self
            .pool
            .get()?
            .query("SELECT id, body, signature FROM certifications WHERE provider = $1 AND engineer = $2 ORDER BY id", &[&provider, &engineer])?;
        rows.iter().map(|r| Ok(CertificationRow { id: r.try_get(0)?, body: r.try_get(1)?, signature: r.try_get(2)? })).collect()
    }
}
