//! One sync pass: journal, orders, parts, photos (see the module above for the order and
//! the guarantees).

use std::io::{Read, Seek, SeekFrom};
use std::time::Instant;

use super::batch;
use super::report::{classify, Error as SyncError, Phase, RejectedOrder, SyncObserver, SyncOptions, SyncProgress, SyncReport};
use crate::device::Device;
use crate::store::sync_store::DocState;
use crate::store::MetaKey;
use crate::sync::protocol::{self, JournalAck, JournalUpload, ReceiptUpload, RejectCode, SyncRequest};
use crate::sync::transport::{Method, Request, Response, Transport};
use crate::Result;

/// A pass stops after this many sync requests (the rest waits for the next pass).
const MAX_SYNC_ROUNDS: usize = 64;
const MAX_RESPONSE: usize = 64 * 1024 * 1024;

pub(super) struct Pass<'a> {
    pub(super) device: &'a Device,
    pub(super) transport: &'a dyn Transport,
    pub(super) options: &'a SyncOptions,
    pub(super) observer: Option<&'a dyn SyncObserver>,
    pub(super) token: String,
    pub(super) report: SyncReport,
    pub(super) entropy: u64,
    pub(super) ticket_accepted: bool,
}

impl Pass<'_> {
    fn wire(&self) -> u64 {
        self.report.bytes_sent + self.report.bytes_received
    }

    pub(super) fn run(&mut self) -> Result<()> {
        // Evidence first: a later phase failing must not hold the journal back.
        self.phase(Phase::Journal, Self::journal)?;
        self.phase(Phase::Orders, Self::orders)?;
        // Merges and time tickets were journaled just now: send those entries too, so a
        // finished pass leaves nothing pending.
        if self.report.orders_pulled > 0 || self.report.orders_rebased > 0 || self.ticket_accepted {
            self.phase(Phase::Journal, Self::journal)?;
        }
        self.phase(Phase::Photos, Self::photos)
    }

    /// Runs one phase, adds its wire bytes to the report, and stops or notes its error.
    fn phase(&mut self, phase: Phase, f: fn(&mut Self) -> Result<()>) -> Result<()> {
        let at = self.wire();
        let result = f(self);
        let bytes = self.wire() - at;
        match phase {
            Phase::Journal => self.report.journal_bytes += bytes,
            Phase::Orders => self.report.orders_bytes += bytes,
            Phase::Photos => self.report.photos_bytes += bytes,
        }
        match result {
            Ok(()) => Ok(()),
            Err(e) => self.stop_or_note(e),
        }
    }

    /// Unauthorized and storage failures stop the pass; the rest is noted and retried later.
    fn stop_or_note(&mut self, e: crate::Error) -> Result<()> {
        match &e {
            crate::Error::Sync(SyncError::Cancelled) => Err(crate::Error::Cancelled),
            // A forked log stops the whole sync: nothing more goes to a server that shows this
            // device another history (ADR 0020).
            crate::Error::Sync(SyncError::Unauthorized(_))
            | crate::Error::Sync(SyncError::NotEnrolled)
            | crate::Error::Sync(SyncError::LogFork(_))
            | crate::Error::Store(_) => Err(e),
            _ => {
                self.report.errors.push(e.to_string());
                Ok(())
            }
        }
    }

    fn progress(&self, phase: Phase, done: u64, total: u64) {
        if let Some(o) = self.observer {
            // A failing observer must not take sync down.
            let p = SyncProgress { phase, done, total };
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| o.progress(&p)));
        }
    }

    fn authorized(&self, req: Request) -> Request {
        req.header("authorization", format!("Bearer {}", self.token))
    }

    /// Sends with retries on transient failures (network, 5xx, 429), backing off with jitter.
    fn call(&mut self, req: Request) -> std::result::Result<Response, SyncError> {
        let req = self.authorized(req);
        let mut attempt = 0;
        loop {
            if self.options.cancel.is_cancelled() {
                return Err(SyncError::Cancelled);
            }
            attempt += 1;
            self.report.round_trips += 1;
            self.report.bytes_sent += req.wire_len();
            let outcome = match self.transport.send(&req) {
                Ok(resp) => {
                    self.report.bytes_received += resp.wire_len();
                    if resp.is_success() || resp.status == 409 || resp.status == 404 {
                        return Ok(resp);
                    }
                    classify(&resp)
                }
                Err(e) => SyncError::Network(e),
            };
            if !outcome.is_transient() || attempt >= self.options.max_attempts {
                return Err(outcome);
            }
            self.report.retries += 1;
            self.entropy = self.entropy.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let wait = self.options.backoff_ms(attempt, self.entropy >> 11);
            tracing::debug!(attempt, wait, error = %outcome, path = %req.path, "retrying");
            if self.options.cancel.sleep(std::time::Duration::from_millis(wait)) {
                return Err(SyncError::Cancelled);
            }
        }
    }

    fn decode_body(resp: &Response) -> std::result::Result<Vec<u8>, SyncError> {
        if resp.header("content-encoding") == Some("deflate") {
            protocol::inflate(&resp.body, MAX_RESPONSE).map_err(|e| SyncError::Protocol(e.to_string()))
        } else {
            Ok(resp.body.clone())
        }
    }

    // ----- 1. journal and receipts -----

    fn journal(&mut self) -> Result<()> {
        let d = self.device;
        // Everything written so far travels under a signature (ADR 0017).
        d.countersigner.flush();
        d.store.seal_pending(d.stamp(), "sync")?;
        let mut acked = d.store.meta_u64(MetaKey::SyncJournalAcked)?;
        let total = d.store.sync_counts(acked)?.pending_journal;
        let mut done = 0;
        loop {
            let entries = d.store.journal_after_sealed(acked, self.options.journal_batch)?;
            let Some(last) = entries.last().map(|e| e.seq) else { break };
            let receipts: Vec<ReceiptUpload> = d
                .store
                .receipts_in(acked, last)?
                .into_iter()
                .map(|r| ReceiptUpload {
                    order_id: r.order_id,
                    revision: r.revision,
                    canonical: r.canonical,
                    strokes: r.strokes,
                    message: r.message,
                    signature: r.signature,
                    journal_seq: r.journal_seq,
                })
                .collect();
            let n_receipts = receipts.len() as u64;
            let count = entries.len() as u64;
            let upload = self.journal_upload(&entries, receipts)?;
            let body = protocol::encode(&upload).map_err(|e| SyncError::Protocol(e.to_string()))?;
            let req = Request::new(Method::Post, "/v1/journal")
                .header("content-type", "application/cbor")
                .header("content-encoding", "deflate")
                .header("accept-encoding", "deflate")
                .body(protocol::deflate(&body).map_err(|e| SyncError::Protocol(e.to_string()))?);
            let resp = self.call(req)?;
            let bytes = Self::decode_body(&resp)?;
            if resp.status == 409 {
                // The server's copy ends elsewhere (a lost answer, or the server was restored
                // from a backup): continue from where it stands.
                let e: protocol::ErrorBody = serde_json::from_slice(&bytes).map_err(|e| SyncError::Protocol(e.to_string()))?;
                let Some(at) = e.acked_seq else { return Err(SyncError::Refused(e.reason).into()) };
                if at == acked {
                    return Err(SyncError::Refused(format!("journal upload refused: {}", e.reason)).into());
                }
                acked = at.min(last);
                d.store.set_meta(MetaKey::SyncJournalAcked, &acked.to_string())?;
                continue;
            }
            if !resp.is_success() {
                return Err(classify(&resp).into());
            }
            let ack: JournalAck = serde_json::from_slice(&bytes).map_err(|e| SyncError::Protocol(e.to_string()))?;
            if let Some(cp) = &ack.checkpoint {
                self.check_checkpoint(cp, ack.consistency.as_ref())?;
            }
            for proof in &ack.proofs {
                let json = serde_json::to_string(proof).map_err(|e| SyncError::Protocol(e.to_string()))?;
                d.store.save_proof(proof.seq, &json)?;
            }
            if ack.acked_seq <= acked {
                return Err(SyncError::Protocol(format!("the server acknowledged {} after {acked}", ack.acked_seq)).into());
            }
            acked = ack.acked_seq;
            d.store.set_meta(MetaKey::SyncJournalAcked, &acked.to_string())?;
            self.report.journal_uploaded += count;
            self.report.receipts_uploaded += n_receipts;
            done += count;
            self.progress(Phase::Journal, done, total.max(done));
        }
        Ok(())
    }

    /// The checkpoint must extend the last one this device saw (`log_check`).
    fn check_checkpoint(&mut self, cp: &crate::evidence::log::Checkpoint, given: Option<&protocol::Consistency>) -> Result<()> {
        let d = self.device;
        let log_key = d.log_key()?;
        super::log_check::accept(&d.store, log_key.as_deref(), cp, |from, to| {
            // The answer carries the proof from the size this upload named; another size (a
            // checkpoint seen meanwhile) is asked for.
            if let Some(c) = given.filter(|c| c.from == from && c.to == to) {
                let path = c.path.iter().map(|h| crate::hash::unhex(h).and_then(|b| b.try_into().ok())).collect::<Option<Vec<_>>>();
                return Ok(path.ok_or_else(|| SyncError::Protocol("a consistency proof hash is not 32 hex bytes".into()))?);
            }
            let resp = self.call(Request::new(Method::Get, format!("/v1/log/consistency?from={from}&to={to}")))?;
            if !resp.is_success() {
                return Err(classify(&resp).into());
            }
            #[derive(serde::Deserialize)]
            struct Proof {
                path: Vec<String>,
            }
            let p: Proof = serde_json::from_slice(&resp.body).map_err(|e| SyncError::Protocol(e.to_string()))?;
            let path = p.path.iter().map(|h| crate::hash::unhex(h).and_then(|b| b.try_into().ok())).collect::<Option<Vec<_>>>();
            Ok(path.ok_or_else(|| SyncError::Protocol("a consistency proof hash is not 32 hex bytes".into()))?)
        })
    }

    /// A v2 upload: v1 entries (written before the upgrade) whole, the rest compact, and the
    /// sessions its seals name that an earlier upload carried.
    fn journal_upload(&self, entries: &[crate::evidence::Entry], receipts: Vec<ReceiptUpload>) -> Result<JournalUpload> {
        let store = &self.device.store;
        let split = entries.iter().position(|e| e.body().map(|b| b.v >= 2).unwrap_or(false)).unwrap_or(entries.len());
        let (whole, rest) = entries.split_at(split);
        let mut lookup_error = None;
        let compact = crate::sync::journal_wire::compact(rest, |order, before| match store.order_entry_before(order, before) {
            Ok(found) => found,
            Err(e) => {
                lookup_error = Some(e);
                None
            }
        });
        if let Some(e) = lookup_error {
            return Err(e.into());
        }
        let compact = compact.map_err(|e| SyncError::Journal(e.to_string()))?;
        let first = entries.first().map_or(0, |e| e.seq);
        // The sessions that signed these entries, from the compact form (each body parsed once).
        let named: std::collections::BTreeSet<u64> = compact.iter().filter_map(|c| c.y).filter(|s| *s < first).collect();
        let mut sessions = Vec::new();
        for seq in named {
            sessions.extend(store.journal_entry(seq)?.as_ref().map(protocol::WireEntry::from_entry));
        }
        let log_size = super::log_check::seen_size(store)?;
        Ok(JournalUpload {
            v: protocol::JOURNAL_VERSION,
            entries: whole.iter().map(protocol::WireEntry::from_entry).collect(),
            compact,
            sessions,
            receipts,
            log_size,
        })
    }

    // ----- 2. orders -----

    fn orders(&mut self) -> Result<()> {
        let d = self.device;
        let pending = d.store.pending_docs()?;
        let total = pending.len() as u64;
        let mut queue = pending.into_iter().peekable();
        let mut done = 0u64;
        let mut first_round = true;
        // Orders whose changes could not be applied (history missing): asked for whole once.
        let mut want_full: Vec<String> = Vec::new();
        let mut asked_full: Vec<String> = Vec::new();
        for _ in 0..MAX_SYNC_ROUNDS {
            let mut cursor = d.store.meta_u64(MetaKey::SyncCursor)?;
            let (push, pushed) = batch::read(d, &mut queue)?;
            let last_ticket = match d.store.meta(MetaKey::SyncLastTicket)? {
                Some(v) => v.parse::<i64>().map_err(|_| crate::store::Error::Meta { key: MetaKey::SyncLastTicket.as_str(), value: v })?,
                None => i64::MIN,
            };
            let now = d.now().0;
            let ticket_nonce = (now.saturating_sub(last_ticket) >= self.options.ticket_every_ms).then(|| format!("{:016x}", self.entropy ^ now as u64));
            // The part ledger goes with the first request of the pass.
            let parts = if first_round {
                Some(protocol::PartsSyncRequest {
                    cursor: d.store.meta_u64(MetaKey::SyncPartsCursor)?,
                    movements: d.store.unsynced_movements()?,
                    certs_known: d.store.certifications()?.len() as u32,
                })
            } else {
                None
            };
            first_round = false;
            let full = std::mem::take(&mut want_full);
            asked_full.extend(full.iter().cloned());
            let request = SyncRequest { v: protocol::VERSION, cursor, push, ticket_nonce, parts, full };
            let body = protocol::encode(&request).map_err(|e| SyncError::Protocol(e.to_string()))?;
            let req = Request::new(Method::Post, "/v1/sync")
                .header("content-type", "application/cbor")
                .header("content-encoding", "deflate")
                .header("accept-encoding", "deflate")
                .body(protocol::deflate(&body).map_err(|e| SyncError::Protocol(e.to_string()))?);
            let started = Instant::now();
            let resp = self.call(req)?;
            let rtt = started.elapsed().as_millis() as u64;
            if !resp.is_success() {
                return Err(classify(&resp).into());
            }
            let response = protocol::decode_response(&Self::decode_body(&resp)?).map_err(|e| SyncError::Protocol(e.to_string()))?;
            // Apply what came down first; the cursor moves only when all of it is stored.
            let mut all_applied = true;
            for doc in &response.docs {
                let stamp = d.stamp();
                match d.store.apply_remote(&doc.id, &doc.bytes, |o| d.summarize(o), stamp) {
                    Ok(Some(_)) => {
                        self.report.orders_pulled += 1;
                        self.report.changed_orders.push(doc.id.clone());
                    }
                    Ok(None) => {}
                    Err(crate::store::Error::MissingHistory { id }) if !asked_full.contains(&id) => {
                        all_applied = false;
                        tracing::info!(order = %id, "changes without their history: asking for the whole document");
                        want_full.push(id);
                    }
                    Err(e) => {
                        all_applied = false;
                        tracing::warn!(order = %doc.id, error = %e, "cannot apply the server's changes");
                        self.report.errors.push(format!("order {}: {e}", doc.id));
                    }
                }
            }
            let rejected: std::collections::HashMap<&str, &protocol::Rejection> = response.rejected.iter().map(|r| (r.id.as_str(), r)).collect();
            for (p, heads, through) in &pushed {
                match rejected.get(p.id.as_str()) {
                    None => {
                        d.store.mark_pushed(&p.id, p.gen, heads, Some(*through))?;
                        self.report.orders_pushed += 1;
                    }
                    Some(r) => self.rejected(r)?,
                }
                done += 1;
            }
            for id in &response.removed {
                d.store.set_doc_state(id, DocState::Removed, Some("reassigned or withdrawn by the dispatcher"))?;
                self.report.orders_removed.push(id.clone());
                self.report.changed_orders.push(id.clone());
            }
            if let Some(parts) = &response.parts {
                self.parts(parts)?;
            }
            if let Some(ticket) = response.ticket {
                match d.accept_time_ticket(ticket, rtt) {
                    Ok(_) => {
                        d.store.set_meta(MetaKey::SyncLastTicket, &now.to_string())?;
                        self.ticket_accepted = true;
                    }
                    Err(e) => self.report.errors.push(format!("time ticket: {e}")),
                }
            }
            if all_applied && response.cursor > cursor {
                cursor = response.cursor;
                d.store.set_meta(MetaKey::SyncCursor, &cursor.to_string())?;
            }
            self.progress(Phase::Orders, done, total);
            if !want_full.is_empty() {
                continue;
            }
            if !all_applied || (!response.more && queue.peek().is_none()) {
                break;
            }
        }
        Ok(())
    }

    /// The ledger's answer: the server holds our movements; the clerk's arrive; new
    /// certifications are checked against the pinned log key and kept.
    fn parts(&mut self, parts: &protocol::PartsSyncResponse) -> Result<()> {
        let d = self.device;
        d.store.mark_movements_synced(&parts.acked)?;
        let new = d.store.merge_movements(&parts.movements)?;
        d.store.set_meta(MetaKey::SyncPartsCursor, &parts.cursor.to_string())?;
        self.report.movements_pulled += new as u64;
        self.report.movements_pushed += parts.acked.len() as u64;
        for c in &parts.certifications {
            if let Err(e) = d.accept_certification(c) {
                self.report.errors.push(format!("certification: {e}"));
            }
        }
        let orders: Vec<String> = parts.movements.iter().filter_map(|m| m.order_id.clone()).collect();
        self.report.changed_orders.extend(orders);
        Ok(())
    }

    fn rejected(&mut self, r: &protocol::Rejection) -> Result<()> {
        let d = self.device;
        let code = r.code.as_str();
        self.report.orders_rejected.push(RejectedOrder { id: r.id.clone(), code: code.to_string(), field: r.field.clone() });
        tracing::warn!(order = %r.id, code = ?r.code, field = ?r.field, reason = %r.reason, "push refused");
        match r.code {
            RejectCode::NotInScope => {
                let known = d.store.doc_state(&r.id)?.is_some();
                let state = if d.store.meta_u64(MetaKey::SyncCursor)? > 0 && known { DocState::Removed } else { DocState::LocalOnly };
                d.store.set_doc_state(&r.id, state, Some(&r.reason))?;
            }
            RejectCode::ResendFull => d.store.forget_synced(&r.id)?,
            RejectCode::ForbiddenField => {
                let Some(server_doc) = &r.server_doc else {
                    return Err(SyncError::Protocol("a refusal without the server's document".into()).into());
                };
                let stamp = d.stamp();
                let reason = format!("{}: {}", r.field.as_deref().unwrap_or("?"), r.reason);
                d.store.rebase_on_server(&r.id, server_doc, &reason, crate::sync::authz::rebase, |o| d.summarize(o), stamp)?;
                self.report.orders_rebased += 1;
                self.report.changed_orders.push(r.id.clone());
            }
            RejectCode::Invalid => {
                d.store.set_doc_state(&r.id, DocState::LocalOnly, Some(&r.reason))?;
            }
        }
        Ok(())
    }

    // ----- 3. photos -----

    fn photos(&mut self) -> Result<()> {
        self.fetch_reference_photos()?;
        let d = self.device;
        let pending = d.store.pending_blobs(d.now().0)?;
        let total = pending.len() as u64;
        for (i, blob) in pending.iter().enumerate() {
            match self.upload_blob(&blob.sha256, blob.size) {
                Ok(sent) => {
                    d.store.blob_uploaded(&blob.sha256, d.now().0)?;
                    self.report.blobs_uploaded += 1;
                    self.report.blob_bytes += sent;
                }
                Err(e) => {
                    let transient = matches!(&e, crate::Error::Sync(s) if s.is_transient());
                    if matches!(&e, crate::Error::Sync(SyncError::Unauthorized(_))) {
                        return Err(e);
                    }
                    let attempts = blob.attempts + 1;
                    let wedged = !transient && attempts >= self.options.blob_wedge_after;
                    let next = d.now().0 + self.options.backoff_ms(attempts, self.entropy >> 7) as i64;
                    d.store.blob_failed(&blob.sha256, &e.to_string(), next, wedged)?;
                    self.report.errors.push(format!("photo {}: {e}", &blob.sha256[..12.min(blob.sha256.len())]));
                }
            }
            self.progress(Phase::Photos, i as u64 + 1, total);
        }
        Ok(())
    }

    /// Downloads the reference photos experts attached to answers this pass merged (and any
    /// a failed pass left), so the answer shows offline. Each is checked against its hash.
    fn fetch_reference_photos(&mut self) -> Result<()> {
        let d = self.device;
        let mut wanted: std::collections::BTreeSet<String> = d.store.meta_json(MetaKey::SyncFetchBlobs)?.unwrap_or_default();
        let mut changed = self.report.changed_orders.clone();
        changed.sort();
        changed.dedup();
        for id in &changed {
            if let Ok(o) = d.store.get(id) {
                wanted.extend(o.help_answers.iter().flat_map(|a| a.reference_photos.iter().cloned()));
            }
        }
        let mut left = std::collections::BTreeSet::new();
        for sha in wanted {
            let valid = sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            if !valid || d.blobs.path(&sha).exists() {
                continue;
            }
            let resp = match self.call(Request::new(Method::Get, format!("/v1/blobs/{sha}"))) {
                Ok(r) if r.is_success() => r,
                Ok(r) => {
                    self.report.errors.push(format!("reference photo {}: {}", &sha[..12.min(sha.len())], r.status));
                    left.insert(sha);
                    continue;
                }
                Err(e) => {
                    self.report.errors.push(format!("reference photo {}: {e}", &sha[..12.min(sha.len())]));
                    left.insert(sha);
                    continue;
                }
            };
            let stored = d.blobs.put_bytes(&resp.body).map_err(crate::evidence::EvidenceError::from)?;
            if stored.sha256 != sha {
                self.report.errors.push(format!("reference photo {}: the bytes do not match", &sha[..12.min(sha.len())]));
                left.insert(sha);
                continue;
            }
            self.report.photos_fetched += 1;
        }
        d.store.set_meta(MetaKey::SyncFetchBlobs, &serde_json::to_string(&left).map_err(|e| SyncError::Protocol(e.to_string()))?)?;
        Ok(())
    }

    /// Uploads one blob from wherever the server stands; returns the bytes sent.
    fn upload_blob(&mut self, sha: &str, size: u64) -> Result<u64> {
        let d = self.device;
        let path = format!("/v1/blobs/{sha}");
        let head = self.call(Request::new(Method::Head, path.clone()))?;
        let mut offset = match head.status {
            404 => 0,
            s if (200..300).contains(&s) => head.header(protocol::UPLOAD_OFFSET).and_then(|v| v.parse().ok()).unwrap_or(0),
            _ => return Err(classify(&head).into()),
        };
        let mut file = d.open_blob(sha).map_err(|e| SyncError::LocalBlob(e.to_string()))?;
        let mut sent = 0u64;
        let mut buf = vec![0u8; protocol::BLOB_CHUNK];
        let mut conflicts = 0;
        while offset < size {
            file.seek(SeekFrom::Start(offset)).map_err(|e| SyncError::LocalBlob(e.to_string()))?;
            let want = ((size - offset) as usize).min(buf.len());
            file.read_exact(&mut buf[..want]).map_err(|e| SyncError::LocalBlob(e.to_string()))?;
            let req = Request::new(Method::Put, path.clone())
                .header("content-type", "application/octet-stream")
                .header(protocol::UPLOAD_OFFSET, offset.to_string())
                .header(protocol::UPLOAD_LENGTH, size.to_string())
                .body(buf[..want].to_vec());
            let resp = self.call(req)?;
            match resp.status {
                s if (200..300).contains(&s) => {
                    sent += want as u64;
                    offset = resp.header(protocol::UPLOAD_OFFSET).and_then(|v| v.parse().ok()).unwrap_or(offset + want as u64);
                }
                409 => {
                    // Our idea of the offset was stale (a lost answer, a duplicate): resume
                    // from the server's.
                    conflicts += 1;
                    if conflicts > 8 {
                        return Err(SyncError::Refused("the upload offset keeps moving".into()).into());
                    }
                    offset = resp.header(protocol::UPLOAD_OFFSET).and_then(|v| v.parse().ok()).unwrap_or(0);
                }
                _ => return Err(classify(&resp).into()),
            }
        }
        Ok(sent)
    }
}
