//! The client sync engine. One pass, evidence first:
//! 1. journal entries after the server's acknowledged seq (with the receipts they sign);
//! 2. orders: one batched `POST /v1/sync` carrying every dirty order's unsent Automerge
//!    changes and the cursor, answered with every change in the device's scope since the
//!    cursor (repeated only while the server says `more`);
//! 3. photos: resumable chunked uploads by SHA-256.
//!
//! Every step is idempotent (a retried or duplicated request changes nothing twice) and its
//! progress is persisted before the next begins, so killing the app mid-sync loses nothing:
//! the next pass resumes from the store.

use std::io::{Read, Seek, SeekFrom};
use std::time::Instant;

use super::Device;
use crate::evidence::signer;
use crate::store::sync_store::DocState;
use crate::sync::client::{classify, Error as SyncError, Phase, SyncObserver, SyncOptions, SyncProgress, SyncReport, SyncStatus};
use crate::sync::merkle::InclusionProof;
use crate::sync::protocol::{self, DocPush, EnrolRequest, EnrolResponse, JournalAck, JournalUpload, ReceiptUpload, RejectCode, SyncRequest};
use crate::sync::transport::{Method, Request, Response, Transport};
use crate::Result;

const META_SERVER: &str = "sync.server";
const META_TOKEN: &str = "sync.token";
const META_PROVIDER: &str = "sync.provider";
pub(crate) const META_ENGINEER: &str = "sync.engineer";
const META_CURSOR: &str = "sync.cursor";
const META_JOURNAL_ACKED: &str = "sync.journal_acked";
const META_LAST_SUCCESS: &str = "sync.last_success";
const META_LAST_ERROR: &str = "sync.last_error";
const META_LOG_KEY: &str = "sync.log_key";
const META_LAST_TICKET: &str = "sync.last_ticket_at";
const META_PARTS_CURSOR: &str = "sync.parts_cursor";
const META_FETCH: &str = "sync.fetch_blobs";

/// Orders' changes per sync request (bytes, before compression).
const PUSH_BATCH_BYTES: usize = 8 * 1024 * 1024;
/// A pass stops after this many sync requests (the rest waits for the next pass).
const MAX_SYNC_ROUNDS: usize = 64;
const MAX_RESPONSE: usize = 64 * 1024 * 1024;

struct Pass<'a> {
    device: &'a Device,
    transport: &'a dyn Transport,
    options: &'a SyncOptions,
    observer: Option<&'a dyn SyncObserver>,
    token: String,
    report: SyncReport,
    entropy: u64,
    ticket_accepted: bool,
}

impl Device {
    /// Enrols this device with a server using a one-time code from the dispatcher: proves
    /// possession of the device key, stores the access token and the server's keys.
    pub fn enrol(&self, transport: &dyn Transport, server_url: &str, code: &str) -> Result<EnrolResponse> {
        let public_key = crate::hash::hex(&self.public_key());
        let message = protocol::enrol_message(code, self.device_id(), &public_key);
        let signer = self.store.signer().ok_or(crate::store::Error::NoSigner)?;
        let to_err = |e: signer::Error| crate::store::Error::Journal(crate::evidence::journal::Error::from(e));
        let sig = signer::normalize(&signer.sign(message.as_bytes()).map_err(to_err)?).map_err(to_err)?;
        let body = EnrolRequest { code: code.trim().to_string(), device_id: self.device_id().to_string(), public_key, signature: crate::hash::hex(&sig) };
        let req = Request::new(Method::Post, "/v1/enrol")
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&body).map_err(|e| SyncError::Protocol(e.to_string()))?);
        let resp = transport.send(&req).map_err(SyncError::from)?;
        if !resp.is_success() {
            return Err(classify(&resp).into());
        }
        let enrolled: EnrolResponse = serde_json::from_slice(&resp.body).map_err(|e| SyncError::Protocol(e.to_string()))?;
        let authority = crate::hash::unhex(&enrolled.time_authority).ok_or_else(|| SyncError::Protocol("time_authority".into()))?;
        self.store.set_meta(META_SERVER, server_url)?;
        self.store.set_meta(META_TOKEN, &enrolled.token)?;
        self.store.set_meta(META_PROVIDER, &enrolled.provider)?;
        self.store.set_meta(META_ENGINEER, &enrolled.engineer_id)?;
        self.store.set_meta(META_LOG_KEY, &enrolled.log_key)?;
        self.store.set_meta("time_authority", &crate::hash::hex(&authority))?;
        tracing::info!(provider = %enrolled.provider, engineer = %enrolled.engineer_id, "enrolled");
        Ok(enrolled)
    }

    /// Points the device at its server's new address (same server, same data, moved).
    pub fn set_sync_server(&self, url: &str) -> Result<()> {
        if self.store.meta(META_TOKEN)?.is_none() {
            return Err(SyncError::NotEnrolled.into());
        }
        Ok(self.store.set_meta(META_SERVER, url)?)
    }

    /// The server this device is enrolled with, if any.
    pub fn sync_server(&self) -> Result<Option<String>> {
        Ok(self.store.meta(META_SERVER)?)
    }

    fn meta_u64(&self, key: &str) -> Result<u64> {
        Ok(self.store.meta(key)?.and_then(|v| v.parse().ok()).unwrap_or(0))
    }

    /// Sync status from local state only (no network).
    pub fn sync_status(&self) -> Result<SyncStatus> {
        let acked = self.meta_u64(META_JOURNAL_ACKED)?;
        let counts = self.store.sync_counts(acked)?;
        Ok(SyncStatus {
            enrolled: self.store.meta(META_TOKEN)?.is_some(),
            server: self.store.meta(META_SERVER)?,
            provider: self.store.meta(META_PROVIDER)?,
            engineer: self.store.meta(META_ENGINEER)?,
            pending_journal: counts.pending_journal,
            pending_orders: counts.pending_orders,
            pending_blobs: counts.pending_blobs,
            removed_orders: counts.removed_orders,
            wedged: counts.wedged_blobs,
            last_success_at: self.store.meta(META_LAST_SUCCESS)?.and_then(|v| v.parse().ok()),
            last_error: self.store.meta(META_LAST_ERROR)?.filter(|e| !e.is_empty()),
        })
    }

    /// The inclusion proofs the server returned for this device's journal entries.
    pub fn log_proofs(&self) -> Result<Vec<InclusionProof>> {
        Ok(self.store.proofs()?.into_iter().filter_map(|(_, json)| serde_json::from_str(&json).ok()).collect())
    }

    /// Fields of an order whose concurrent values Automerge resolved, with each value's
    /// author (device id, or the server's actor for dispatcher edits); the winner first.
    pub fn conflicts(&self, order_id: &str) -> Result<Vec<(String, Vec<(serde_json::Value, String)>)>> {
        Ok(self.store.conflicts(order_id)?)
    }

    /// One sync pass. Errors that stop the pass (not enrolled, revoked) are returned; work
    /// that failed transiently stays in the outbox and is listed in the report's `errors`.
    pub fn sync(&self, transport: &dyn Transport, options: &SyncOptions, observer: Option<&dyn SyncObserver>) -> Result<SyncReport> {
        let token = self.store.meta(META_TOKEN)?.ok_or(SyncError::NotEnrolled)?;
        let entropy = {
            let mut b = [0u8; 8];
            rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut b);
            u64::from_le_bytes(b)
        };
        let mut pass = Pass { device: self, transport, options, observer, token, report: SyncReport::default(), entropy, ticket_accepted: false };
        let result = pass.run();
        // Screens refresh for what merged, even when the pass stopped part-way.
        self.changed_many(pass.report.changed_orders.clone(), crate::changes::ChangeOrigin::Remote);
        let now = self.now().0;
        match &result {
            Ok(()) if pass.report.errors.is_empty() => {
                self.store.set_meta(META_LAST_SUCCESS, &now.to_string())?;
                self.store.set_meta(META_LAST_ERROR, "")?;
            }
            Ok(()) => self.store.set_meta(META_LAST_ERROR, &pass.report.errors.join("; "))?,
            Err(crate::Error::Cancelled) => {}
            Err(e) => self.store.set_meta(META_LAST_ERROR, &e.to_string())?,
        }
        result?;
        tracing::info!(
            round_trips = pass.report.round_trips,
            sent = pass.report.bytes_sent,
            received = pass.report.bytes_received,
            pushed = pass.report.orders_pushed,
            pulled = pass.report.orders_pulled,
            "sync pass"
        );
        Ok(pass.report)
    }
}

impl Pass<'_> {
    fn wire(&self) -> u64 {
        self.report.bytes_sent + self.report.bytes_received
    }

    fn run(&mut self) -> Result<()> {
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
            crate::Error::Sync(SyncError::Unauthorized(_)) | crate::Error::Sync(SyncError::NotEnrolled) | crate::Error::Store(_) => Err(e),
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
        let mut acked = d.meta_u64(META_JOURNAL_ACKED)?;
        let total = d.store.sync_counts(acked)?.pending_journal;
        let mut done = 0;
        loop {
            let entries = d.store.journal_after(acked, self.options.journal_batch)?;
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
            let upload = JournalUpload { v: protocol::VERSION, entries: entries.iter().map(protocol::WireEntry::from_entry).collect(), receipts };
            let body = protocol::encode(&upload).map_err(|e| SyncError::Protocol(e.to_string()))?;
            let req = Request::new(Method::Post, "/v1/journal")
                .header("content-type", "application/cbor")
                .header("content-encoding", "deflate")
                .header("accept-encoding", "deflate")
                .body(protocol::deflate(&body));
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
                d.store.set_meta(META_JOURNAL_ACKED, &acked.to_string())?;
                continue;
            }
            if !resp.is_success() {
                return Err(classify(&resp).into());
            }
            let ack: JournalAck = serde_json::from_slice(&bytes).map_err(|e| SyncError::Protocol(e.to_string()))?;
            for proof in &ack.proofs {
                let json = serde_json::to_string(proof).map_err(|e| SyncError::Protocol(e.to_string()))?;
                d.store.save_proof(proof.seq, &json)?;
            }
            if ack.acked_seq <= acked {
                return Err(SyncError::Protocol(format!("the server acknowledged {} after {acked}", ack.acked_seq)).into());
            }
            acked = ack.acked_seq;
            d.store.set_meta(META_JOURNAL_ACKED, &acked.to_string())?;
            self.report.journal_uploaded += count;
            self.report.receipts_uploaded += n_receipts;
            done += count;
            self.progress(Phase::Journal, done, total.max(done));
        }
        Ok(())
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
            let mut cursor = d.meta_u64(META_CURSOR)?;
            let mut push = Vec::new();
            let mut pushed = Vec::new();
            let mut size = 0;
            while queue.peek().is_some() {
                if size > 0 && size >= PUSH_BATCH_BYTES {
                    break;
                }
                let Some(p) = queue.next() else { break };
                let (changes, heads) = d.store.changes_since(&p.id, &p.synced_heads)?;
                size += changes.len();
                push.push(DocPush { id: p.id.clone(), changes });
                pushed.push((p, heads));
            }
            let last_ticket: i64 = d.store.meta(META_LAST_TICKET)?.and_then(|v| v.parse().ok()).unwrap_or(i64::MIN);
            let now = d.now().0;
            let ticket_nonce = (now.saturating_sub(last_ticket) >= self.options.ticket_every_ms).then(|| format!("{:016x}", self.entropy ^ now as u64));
            // The part ledger goes with the first request of the pass.
            let parts = if first_round {
                Some(protocol::PartsSyncRequest {
                    cursor: d.meta_u64(META_PARTS_CURSOR)?,
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
                .body(protocol::deflate(&body));
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
            for (p, heads) in &pushed {
                match rejected.get(p.id.as_str()) {
                    None => {
                        d.store.mark_pushed(&p.id, p.gen, heads)?;
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
                        d.store.set_meta(META_LAST_TICKET, &now.to_string())?;
                        self.ticket_accepted = true;
                    }
                    Err(e) => self.report.errors.push(format!("time ticket: {e}")),
                }
            }
            if all_applied && response.cursor > cursor {
                cursor = response.cursor;
                d.store.set_meta(META_CURSOR, &cursor.to_string())?;
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
        d.store.set_meta(META_PARTS_CURSOR, &parts.cursor.to_string())?;
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
        let code = serde_json::to_value(r.code).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
        self.report.orders_rejected.push((r.id.clone(), code, r.field.clone()));
        tracing::warn!(order = %r.id, code = ?r.code, field = ?r.field, reason = %r.reason, "push refused");
        match r.code {
            RejectCode::NotInScope => {
                let known = d.store.doc_state(&r.id)?.is_some();
                let state = if d.meta_u64(META_CURSOR)? > 0 && known { DocState::Removed } else { DocState::LocalOnly };
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
        let mut wanted: std::collections::BTreeSet<String> =
            d.store.meta(META_FETCH)?.and_then(|s| serde_json::from_str(&s).ok()).unwrap_or_default();
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
            let resp = match self.call(Request::new(Method::Get, &format!("/v1/blobs/{sha}"))) {
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
        d.store.set_meta(META_FETCH, &serde_json::to_string(&left).unwrap_or_else(|_| "[]".into()))?;
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
        let mut file = std::fs::File::open(d.blob_path(sha)).map_err(|e| SyncError::Refused(format!("the photo's bytes are missing on this device: {e}")))?;
        let mut sent = 0u64;
        let mut buf = vec![0u8; protocol::BLOB_CHUNK];
        let mut conflicts = 0;
        while offset < size {
            file.seek(SeekFrom::Start(offset)).map_err(|e| SyncError::Refused(e.to_string()))?;
            let want = ((size - offset) as usize).min(buf.len());
            file.read_exact(&mut buf[..want]).map_err(|e| SyncError::Refused(format!("reading the photo: {e}")))?;
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
