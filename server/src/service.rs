//! What the server does, independent of HTTP: enrolment, dispatcher edits, batched sync with
//! field ownership, journal verification into the evidence log, resumable blobs.

use std::sync::{Arc, Mutex};

use automerge::{ActorId, AutoCommit, ReadDoc};
use onsite_core::clock::Clock;
use onsite_core::evidence::journal::{self, Entry, ZERO_HASH};
use onsite_core::evidence::signer::{self as core_signer, Signer, SoftwareSigner};
use onsite_core::evidence::time::TimeAuthority;
use onsite_core::hash::{hex, sha256_hex, unhex};
use onsite_core::order::{self, lifecycle, Actor, Event, Priority, TransitionRecord, WorkOrder};
use onsite_core::sync::merkle::{self, Checkpoint, InclusionProof};
use onsite_core::sync::protocol::{
    self, DocPull, EnrolRequest, EnrolResponse, JournalAck, JournalUpload, RejectCode, Rejection, SyncRequest, SyncResponse,
};
use onsite_core::sync::authz;
use sha2::{Digest, Sha256};

#[path = "service_ext.rs"]
mod ext;
pub use ext::{AnswerInput, ClerkMovement, ExpertInput, HelpView};

use crate::blobs::{Blobs, PutOutcome};
use crate::metrics::Metrics;
use crate::storage::{self, DeviceRow, JournalRow, OrderRow, ReceiptRow, Storage};

/// Change rows per order before the server folds them into the snapshot.
pub const COMPACT_AFTER: u64 = 64;
/// Enrolment codes live this long unless the dispatcher says otherwise.
pub const CODE_TTL_MS: i64 = 24 * 3600 * 1000;
/// The longest a dispatcher may make a code live (30 days).
pub const MAX_CODE_TTL_MINUTES: i64 = 30 * 24 * 60;
/// Origin of dispatcher edits in the feed (devices never have this id).
pub use onsite_core::sync::authz::SERVER_ORIGIN;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    BadRequest(String),
    #[error("missing, unknown or revoked credentials")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{reason}")]
    Conflict { reason: String, acked_seq: Option<u64>, offset: Option<u64> },
    #[error("{0}")]
    Unprocessable(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    TooMany(String),
    #[error("{0}")]
    Timeout(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<storage::Error> for Error {
    fn from(e: storage::Error) -> Self {
        match e {
            storage::Error::NotFound(what) => Error::NotFound(format!("{what} not found")),
            storage::Error::Exists(what) => Error::Conflict { reason: format!("{what} already exists"), acked_seq: None, offset: None },
            storage::Error::Conflict(reason) => Error::Conflict { reason, acked_seq: None, offset: None },
            other => Error::Internal(other.to_string()),
        }
    }
}

fn internal(e: impl std::fmt::Display) -> Error {
    Error::Internal(e.to_string())
}

pub type Result<T> = std::result::Result<T, Error>;

pub fn token_hash(token: &str) -> String {
    sha256_hex(token.as_bytes())
}

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut b);
    hex(&b)
}

/// A human-typable one-time code: 12 characters of an unambiguous alphabet, in groups.
fn enrol_code() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";
    let mut b = [0u8; 12];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut b);
    let s: String = b.iter().map(|x| ALPHABET[*x as usize % ALPHABET.len()] as char).collect();
    format!("{}-{}-{}", &s[..4], &s[4..8], &s[8..])
}

fn normalize_code(code: &str) -> String {
    code.chars().filter(|c| c.is_ascii_alphanumeric()).map(|c| c.to_ascii_uppercase()).collect()
}

pub struct Service {
    pub storage: Arc<dyn Storage>,
    pub blobs: Blobs,
    pub clock: Arc<dyn Clock>,
    pub metrics: Metrics,
    /// Failed credential attempts per source address (see `http::FailureLimiter`).
    pub limiter: crate::http::FailureLimiter,
    time_authority: TimeAuthority,
    log_key: SoftwareSigner,
    actor: ActorId,
    admin_token_hash: String,
    /// Order documents are read-merged-written under this lock (one writer, as SQLite).
    orders: Mutex<()>,
    /// Change rows per order before compaction ([`COMPACT_AFTER`] unless configured).
    compact_after: u64,
}

impl Service {
    /// Opens the service over `storage`, creating the server's keys on first start.
    pub fn new(storage: Arc<dyn Storage>, keys: &dyn crate::keys::KeyStore, blobs: Blobs, clock: Arc<dyn Clock>, admin_token: &str) -> Result<Self> {
        let key = |name: &str| -> Result<SoftwareSigner> {
            if let Some(secret) = keys.get(name).map_err(internal)? {
                return SoftwareSigner::from_secret(&secret).map_err(internal);
            }
            // Databases from before the key store kept the keys in `meta`: move them out.
            let k = match storage.meta(name)? {
                Some(h) if !h.is_empty() => SoftwareSigner::from_secret(&unhex(&h).ok_or_else(|| internal("bad key"))?).map_err(internal)?,
                _ => SoftwareSigner::generate().map_err(internal)?,
            };
            keys.create(name, &k.secret()).map_err(internal)?;
            storage.set_meta(name, "")?;
            Ok(k)
        };
        let time_authority = TimeAuthority::new(Box::new(key("time_authority_key")?));
        let log_key = key("log_key")?;
        let actor = match storage.meta("actor")? {
            Some(a) => ActorId::from(unhex(&a).ok_or_else(|| internal("bad actor"))?),
            None => {
                let a = ActorId::random();
                storage.set_meta("actor", &a.to_hex_string())?;
                a
            }
        };
        Ok(Self {
            storage,
            blobs,
            clock,
            metrics: Metrics::default(),
            limiter: Default::default(),
            time_authority,
            log_key,
            actor,
            admin_token_hash: token_hash(admin_token),
            orders: Mutex::new(()),
            compact_after: COMPACT_AFTER,
        })
    }

    /// Compacts an order after `n` change rows (tests use small values to compact often).
    pub fn with_compact_after(mut self, n: u64) -> Self {
        self.compact_after = n.max(1);
        self
    }

    fn now_ms(&self) -> i64 {
        self.clock.now().timestamp_millis()
    }

    pub fn time_authority_key(&self) -> Vec<u8> {
        self.time_authority.public_key()
    }

    pub fn log_key(&self) -> Vec<u8> {
        self.log_key.public_key()
    }

    // ----- credentials -----

    pub fn check_admin(&self, token: Option<&str>) -> Result<()> {
        match token {
            Some(t) if token_hash(t) == self.admin_token_hash => Ok(()),
            _ => Err(self.unauthorized()),
        }
    }

    fn unauthorized(&self) -> Error {
        self.metrics.auth_failures.inc();
        Error::Unauthorized
    }

    pub fn dispatcher(&self, token: Option<&str>) -> Result<String> {
        let token = token.ok_or_else(|| self.unauthorized())?;
        self.storage.provider_by_token(&token_hash(token))?.ok_or_else(|| self.unauthorized())
    }

    /// Who may upload blobs: a device, or an expert (reference photos). Returns the provider.
    pub fn uploader(&self, token: Option<&str>) -> Result<String> {
        match self.device(token) {
            Ok(d) => Ok(d.provider),
            Err(_) => Ok(self.expert(token)?.provider),
        }
    }

    /// Who may read blobs of a provider: its dispatcher, devices and experts.
    pub fn any_party(&self, token: Option<&str>) -> Result<String> {
        if let Ok(p) = self.dispatcher(token) {
            return Ok(p);
        }
        self.uploader(token)
    }

    pub fn device(&self, token: Option<&str>) -> Result<DeviceRow> {
        let token = token.ok_or_else(|| self.unauthorized())?;
        match self.storage.device_by_token(&token_hash(token))? {
            Some(d) if !d.revoked => Ok(d),
            _ => Err(self.unauthorized()),
        }
    }

    pub fn create_provider(&self, id: &str, name: &str) -> Result<String> {
        order::import::validate_order_id(id).map_err(|_| Error::BadRequest("a provider id is 1-64 letters, digits, `-` or `_`".into()))?;
        let token = format!("dsp_{}", random_hex(24));
        self.storage.create_provider(id, name, &token_hash(&token), self.now_ms())?;
        tracing::info!(provider = id, "provider created");
        Ok(token)
    }

    /// A one-time enrolment code for `engineer_id`, valid `ttl_minutes` (1 to 43,200 = 30
    /// days; 24 h when absent). Out-of-range values are refused, not clamped.
    pub fn create_code(&self, provider: &str, engineer_id: &str, ttl_minutes: Option<i64>) -> Result<(String, i64)> {
        if engineer_id.trim().is_empty() || engineer_id.len() > 64 {
            return Err(Error::BadRequest("engineer_id is 1-64 characters".into()));
        }
        let ttl_ms = match ttl_minutes {
            None => CODE_TTL_MS,
            Some(m) if (1..=MAX_CODE_TTL_MINUTES).contains(&m) => m * 60_000,
            Some(m) => return Err(Error::BadRequest(format!("ttl_minutes is 1 to {MAX_CODE_TTL_MINUTES}, not {m}"))),
        };
        let code = enrol_code();
        let expires = self.now_ms() + ttl_ms;
        self.storage.create_code(&token_hash(&normalize_code(&code)), provider, engineer_id, expires)?;
        Ok((code, expires))
    }

    pub fn enrol(&self, req: &EnrolRequest) -> Result<EnrolResponse> {
        let key = unhex(&req.public_key).filter(|k| core_signer::is_valid_key(k)).ok_or_else(|| Error::BadRequest("public_key is not a P-256 key".into()))?;
        let sig = unhex(&req.signature).ok_or_else(|| Error::BadRequest("signature is not hex".into()))?;
        let message = protocol::enrol_message(&req.code, &req.device_id, &req.public_key);
        if !core_signer::verify(&key, message.as_bytes(), &sig).unwrap_or(false) {
            return Err(self.unauthorized());
        }
        // One spelling per id: upper-case hex would enrol the same device twice.
        if req.device_id.len() != 32 || !req.device_id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(Error::BadRequest("device_id is 32 lowercase hex digits".into()));
        }
        let token = format!("dev_{}", random_hex(32));
        let (provider, engineer_id) = self
            .storage
            .enrol(&token_hash(&normalize_code(&req.code)), self.now_ms(), &req.device_id, &key, &token_hash(&token))
            .map_err(|e| match e {
                storage::Error::NotFound(_) => self.unauthorized(),
                other => other.into(),
            })?;
        tracing::info!(device = %req.device_id, %provider, engineer = %engineer_id, "device enrolled");
        Ok(EnrolResponse { token, provider, engineer_id, time_authority: hex(&self.time_authority_key()), log_key: hex(&self.log_key()) })
    }

    pub fn revoke_device(&self, provider: &str, device_id: &str) -> Result<()> {
        self.storage.revoke_device(provider, device_id, self.now_ms())?;
        tracing::info!(device = device_id, provider, "device revoked");
        Ok(())
    }

    // ----- documents -----

    fn load(&self, provider: &str, id: &str) -> Result<(AutoCommit, Vec<Vec<u8>>)> {
        let chunks = self.storage.document(provider, id)?;
        let mut doc = AutoCommit::load(&chunks[0]).map_err(internal)?;
        for c in &chunks[1..] {
            doc.load_incremental(c).map_err(internal)?;
        }
        Ok((doc.with_actor(self.actor.clone()), chunks))
    }

    fn row_of(provider: &str, o: &WorkOrder) -> OrderRow {
        OrderRow {
            provider: provider.to_string(),
            id: o.id.clone(),
            engineer_id: o.engineer.id.clone(),
            status: o.status.as_str().to_string(),
            priority: o.priority.as_str().to_string(),
            customer: o.customer.company.clone(),
            updated_seq: 0,
            assigned_seq: 0,
            compacted_seq: 0,
        }
    }

    /// Stores a new chunk of `id` and compacts when the order has many.
    fn store_change(&self, provider: &str, doc: &mut AutoCommit, after: &WorkOrder, origin: &str, chunk: &[u8], previous_engineer: Option<&str>) -> Result<u64> {
        let seq = self.storage.append_change(&Self::row_of(provider, after), origin, chunk, previous_engineer)?;
        if self.storage.change_rows(provider, &after.id)? > self.compact_after {
            self.storage.compact(provider, &after.id, &doc.save(), seq)?;
        }
        Ok(seq)
    }

    pub fn create_orders(&self, provider: &str, json: &str) -> Result<Vec<String>> {
        let now = order::Timestamp(self.now_ms());
        let orders = order::import::parse_orders(json, now).map_err(|e| Error::BadRequest(e.to_string()))?;
        if let Some(o) = orders.iter().find(|o| o.provider.id != provider) {
            return Err(Error::Forbidden(format!("order `{}` names provider `{}`, not yours", o.id, o.provider.id)));
        }
        let _guard = self.orders.lock().unwrap_or_else(|p| p.into_inner());
        for o in &orders {
            if self.storage.order(provider, &o.id)?.is_some() {
                return Err(Error::Conflict { reason: format!("order `{}` already exists", o.id), acked_seq: None, offset: None });
            }
        }
        let mut ids = Vec::new();
        for o in orders {
            let mut doc = AutoCommit::new().with_actor(self.actor.clone());
            autosurgeon::reconcile(&mut doc, &o).map_err(internal)?;
            doc.commit_with(automerge::transaction::CommitOptions::default().with_message("dispatch").with_time(now.0 / 1000));
            self.storage.create_order(&Self::row_of(provider, &o), &doc.save())?;
            ids.push(o.id);
        }
        self.metrics.orders_created.add(ids.len() as u64);
        Ok(ids)
    }

    pub fn order(&self, provider: &str, id: &str) -> Result<WorkOrder> {
        let (doc, _) = self.load(provider, id)?;
        autosurgeon::hydrate(&doc).map_err(internal)
    }

    pub fn orders(&self, provider: &str, engineer: Option<&str>) -> Result<Vec<OrderRow>> {
        Ok(self.storage.orders(provider, engineer)?)
    }

    /// A dispatcher's edit: `f` changes the order; the change goes to the feed.
    fn dispatcher_edit(&self, provider: &str, id: &str, f: impl FnOnce(&mut WorkOrder, i64) -> Result<()>) -> Result<WorkOrder> {
        let _guard = self.orders.lock().unwrap_or_else(|p| p.into_inner());
        let (mut doc, _) = self.load(provider, id)?;
        let before: WorkOrder = autosurgeon::hydrate(&doc).map_err(internal)?;
        let mut after = before.clone();
        let now = self.now_ms();
        f(&mut after, now)?;
        if after == before {
            return Ok(after);
        }
        let heads = doc.get_heads();
        autosurgeon::reconcile(&mut doc, &after).map_err(internal)?;
        doc.commit_with(automerge::transaction::CommitOptions::default().with_message("dispatcher").with_time(now / 1000));
        let chunk = doc.save_after(&heads);
        self.store_change(provider, &mut doc, &after, SERVER_ORIGIN, &chunk, Some(&before.engineer.id))?;
        Ok(after)
    }

    pub fn assign(&self, provider: &str, id: &str, engineer_id: &str, name: &str) -> Result<WorkOrder> {
        if engineer_id.trim().is_empty() {
            return Err(Error::BadRequest("engineer_id is required".into()));
        }
        self.dispatcher_edit(provider, id, |o, _| {
            if o.status.is_terminal() {
                return Err(Error::Conflict { reason: format!("order is {}", o.status.as_str()), acked_seq: None, offset: None });
            }
            o.engineer = order::Engineer { id: engineer_id.to_string(), name: name.to_string() };
            Ok(())
        })
    }

    pub fn cancel(&self, provider: &str, id: &str, reason: &str) -> Result<WorkOrder> {
        self.dispatcher_edit(provider, id, |o, now| {
            let event = Event::Cancel { reason: reason.to_string() };
            let to = lifecycle::next_status(o.status, &event, Actor::Dispatcher).map_err(|e| Error::Conflict { reason: e.to_string(), acked_seq: None, offset: None })?;
            o.transitions.push(TransitionRecord { from: o.status, to, event, at: order::Timestamp(now), monotonic_ms: 0, device: SERVER_ORIGIN.into(), fix: None });
            o.status = to;
            Ok(())
        })
    }

    pub fn set_priority(&self, provider: &str, id: &str, priority: &str) -> Result<WorkOrder> {
        let p = Priority::parse(priority).ok_or_else(|| Error::BadRequest("priority is urgent, normal or low".into()))?;
        self.dispatcher_edit(provider, id, |o, _| {
            o.priority = p;
            Ok(())
        })
    }

    // ----- sync -----

    pub fn sync(&self, device: &DeviceRow, req: SyncRequest) -> Result<SyncResponse> {
        crate::feed::validate_request(&req)?;
        let mut rejected = Vec::new();
        let mut help = Vec::new();
        for push in &req.push {
            match self.apply_push(device, &push.id, &push.changes) {
                Err(r) => {
                    self.metrics.pushes_rejected.inc();
                    tracing::warn!(device = %device.id, order = %push.id, code = ?r.code, field = ?r.field, "push refused");
                    rejected.push(r);
                }
                Ok(new_help) => {
                    self.metrics.pushes_applied.inc();
                    if !new_help.is_empty() {
                        help.push((push.id.clone(), new_help));
                    }
                }
            }
        }
        // New help requests are routed now, so the answer below already says where they went.
        for (order_id, requests) in help {
            if let Err(e) = self.route_help(&device.provider, &order_id, &requests) {
                tracing::error!(order = %order_id, error = %e, "help routing failed; retried with the next push");
            }
        }
        let parts = match req.parts.clone() {
            Some(p) => Some(self.parts_sync(device, p)?),
            None => None,
        };
        let (cursor, docs, removed, more) = self.answer(device, &req)?;
        let ticket = match &req.ticket_nonce {
            Some(n) => Some(self.time_authority.issue(&device.id, n, self.now_ms()).map_err(internal)?),
            None => None,
        };
        self.metrics.docs_sent.add(docs.len() as u64);
        Ok(SyncResponse { v: protocol::VERSION, cursor, docs, rejected, removed, more, ticket, parts })
    }

    /// The feed after the device's cursor, read from one consistent snapshot of storage: the
    /// cursor handed back never passes a change the answer leaves out (a compaction that
    /// commits meanwhile is either wholly visible, and the order goes whole, or not at all).
    fn answer(&self, device: &DeviceRow, req: &SyncRequest) -> Result<(u64, Vec<DocPull>, Vec<String>, bool)> {
        let mut out = None;
        self.storage.snapshot(&mut |r: &dyn storage::FeedReader| {
            out = Some(crate::feed::answer(r, device, req)?);
            Ok(())
        })?;
        out.ok_or_else(|| internal("the feed snapshot produced no answer"))
    }

    /// Merges a device's changes to one order; returns the help requests it added.
    fn apply_push(&self, device: &DeviceRow, id: &str, changes: &[u8]) -> std::result::Result<Vec<order::HelpRequest>, Rejection> {
        let reject = |code, field: Option<&str>, reason: String, server_doc: Option<Vec<u8>>| Rejection {
            id: id.to_string(),
            code,
            field: field.map(str::to_string),
            reason,
            server_doc,
        };
        let internal_reject = |e: Error| reject(RejectCode::Invalid, None, format!("server error: {e}"), None);
        let _guard = self.orders.lock().unwrap_or_else(|p| p.into_inner());
        let row = self.storage.order(&device.provider, id).map_err(|e| internal_reject(e.into()))?;
        match row {
            Some(r) if r.engineer_id == device.engineer_id => {}
            _ => return Err(reject(RejectCode::NotInScope, None, "this order is not assigned to this device's engineer".into(), None)),
        }
        let (mut doc, stored) = self.load(&device.provider, id).map_err(internal_reject)?;
        let before: WorkOrder = autosurgeon::hydrate(&doc).map_err(|e| internal_reject(internal(e)))?;
        let heads = doc.get_heads();
        if let Err(e) = crate::feed::check_changes(changes) {
            return Err(reject(RejectCode::Invalid, None, format!("not Automerge changes: {e}"), None));
        }
        if let Err(e) = doc.load_incremental(changes) {
            return Err(reject(RejectCode::Invalid, None, format!("not Automerge changes: {e}"), None));
        }
        if !doc.get_missing_deps(&[]).is_empty() {
            return Err(reject(RejectCode::ResendFull, None, "the changes depend on history this server does not have".into(), None));
        }
        if doc.get_heads() == heads {
            return Ok(Vec::new());
        }
        let server_doc = || {
            let mut d = AutoCommit::load(&stored[0]).ok()?;
            for c in &stored[1..] {
                d.load_incremental(c).ok()?;
            }
            Some(d.save())
        };
        let after: WorkOrder = match autosurgeon::hydrate(&doc) {
            Ok(a) => a,
            Err(e) => {
                let f = onsite_core::sync::shape::explain_unreadable(&doc, &before);
                return Err(reject(RejectCode::ForbiddenField, Some(&f.field), format!("the merged document is not a work order ({e}): {}", f.reason), server_doc()));
            }
        };
        if let Err(f) = onsite_core::sync::shape::check_document(&doc, &after) {
            return Err(reject(RejectCode::ForbiddenField, Some(&f.field), f.reason, server_doc()));
        }
        let keys: Vec<String> = doc.keys(automerge::ROOT).collect();
        let delivered = self.storage.receipt_hashes(&device.provider, id).map_err(|e| internal_reject(e.into()))?;
        if let Err(f) = authz::check_engineer_change(&before, &after, &keys, &device.id, &delivered) {
            return Err(reject(RejectCode::ForbiddenField, Some(&f.field), f.reason, server_doc()));
        }
        let chunk = doc.save_after(&heads);
        self.store_change(&device.provider, &mut doc, &after, &device.id, &chunk, None).map_err(internal_reject)?;
        Ok(after.help.iter().filter(|h| !before.help.contains(h)).cloned().collect())
    }

    // ----- journal -----

    pub fn journal(&self, device: &DeviceRow, upload: JournalUpload) -> Result<JournalAck> {
        let mut entries: Vec<Entry> = upload.entries.into_iter().map(protocol::WireEntry::into_entry).collect();
        entries.sort_by_key(|e| e.seq);
        // Entries the server already has must be the same entries (a retry or duplicate).
        let mut fresh: Vec<Entry> = Vec::new();
        for e in entries {
            if e.seq <= device.journal_seq {
                match self.storage.journal_hash(&device.id, e.seq)? {
                    Some(h) if h == e.hash => continue,
                    _ => {
                        return Err(Error::Conflict {
                            reason: format!("entry {} differs from the one already logged", e.seq),
                            acked_seq: Some(device.journal_seq),
                            offset: None,
                        })
                    }
                }
            }
            fresh.push(e);
        }
        let Some(first) = fresh.first() else {
            return Ok(JournalAck { acked_seq: device.journal_seq, checkpoint: None, proofs: Vec::new() });
        };
        if first.seq != device.journal_seq + 1 {
            return Err(Error::Conflict {
                reason: format!("expected entry {} next, got {}", device.journal_seq + 1, first.seq),
                acked_seq: Some(device.journal_seq),
                offset: None,
            });
        }
        let prev = device.journal_head.clone().unwrap_or_else(|| ZERO_HASH.to_string());
        let report = journal::verify(&fresh, &device.public_key, &device.id, Some(&prev));
        if let Some(p) = report.first_problem {
            return Err(Error::Unprocessable(format!("the journal does not verify: {p:?}")));
        }
        let mut rows = Vec::with_capacity(fresh.len());
        for e in &fresh {
            let body = e.body().map_err(|err| Error::Unprocessable(err.to_string()))?;
            // The leaf input is the entry's hash; the tree stores its RFC 9162 leaf hash.
            let entry_hash = unhex(&e.hash).filter(|h| h.len() == 32).ok_or_else(|| Error::Unprocessable("entry hash".into()))?;
            let leaf = merkle::leaf_hash(&entry_hash);
            rows.push(JournalRow { seq: e.seq, order_id: body.order, kind: body.kind, body: e.body.clone(), hash: e.hash.clone(), signature: e.signature.clone(), leaf });
        }
        let last_seq = fresh.last().map(|e| e.seq).unwrap_or(device.journal_seq);
        let mut receipts = Vec::new();
        for r in upload.receipts {
            let sr = onsite_core::receipt::SignedReceipt {
                order: r.order_id.clone(),
                revision: r.revision,
                receipt_sha256: sha256_hex(&r.canonical),
                strokes_sha256: r.strokes.as_deref().map(sha256_hex),
                canonical: r.canonical,
                strokes: r.strokes,
                message: r.message,
                signature: r.signature,
                journal_seq: r.journal_seq,
                signed_at_ms: 0,
            };
            onsite_core::receipt::verify(&sr, &device.public_key).map_err(|p| Error::Unprocessable(format!("receipt of {}: {}: {}", r.order_id, p.check, p.detail)))?;
            let bound = rows.iter().any(|row| row.seq == r.journal_seq && row.kind == "receipt_signed" && row.order_id.as_deref() == Some(r.order_id.as_str()));
            if !bound && r.journal_seq > device.journal_seq {
                return Err(Error::Unprocessable(format!("receipt of {} is not signed by a journal entry of this upload", r.order_id)));
            }
            receipts.push(ReceiptRow {
                order_id: sr.order,
                revision: sr.revision,
                sha256: sr.receipt_sha256,
                canonical: sr.canonical,
                strokes: sr.strokes,
                message: sr.message,
                signature: sr.signature,
                journal_seq: sr.journal_seq,
            });
        }
        let indices = self.storage.append_journal(device, &rows, &receipts).map_err(|e| match e {
            storage::Error::Conflict(reason) => Error::Conflict { reason, acked_seq: Some(device.journal_seq), offset: None },
            other => other.into(),
        })?;
        self.metrics.journal_entries.add(rows.len() as u64);
        // Checkpoint the provider's log and prove the entries that matter later.
        let leaves = self.storage.log_leaves(&device.provider)?;
        let root = merkle::root(&leaves);
        let checkpoint = Checkpoint::sign(&format!("onsite/{}", device.provider), leaves.len() as u64, &root, self.now_ms(), &self.log_key).map_err(internal)?;
        let mut proofs = Vec::new();
        for (row, idx) in rows.iter().zip(&indices) {
            if row.kind == "receipt_signed" || row.seq == last_seq {
                let path = merkle::inclusion_proof(*idx, &leaves).map_err(internal)?;
                proofs.push(InclusionProof { seq: row.seq, index: *idx, path: path.iter().map(|h| hex(h)).collect(), checkpoint: checkpoint.clone() });
            }
        }
        Ok(JournalAck { acked_seq: last_seq, checkpoint: Some(checkpoint), proofs })
    }

    /// The latest checkpoint of a provider's log.
    pub fn checkpoint(&self, provider: &str) -> Result<Checkpoint> {
        let leaves = self.storage.log_leaves(provider)?;
        Checkpoint::sign(&format!("onsite/{provider}"), leaves.len() as u64, &merkle::root(&leaves), self.now_ms(), &self.log_key).map_err(internal)
    }

    // ----- blobs -----

    pub fn blob_state(&self, provider: &str, sha: &str) -> Result<Option<(u64, u64)>> {
        check_sha(sha)?;
        if self.storage.has_blob(provider, sha)? {
            let size = self.blobs.size(provider, sha).map_err(internal)?;
            return Ok(Some((size, size)));
        }
        self.blobs.partial(provider, sha).map_err(internal)
    }

    pub fn blob_put(&self, provider: &str, sha: &str, offset: u64, length: u64, bytes: &[u8]) -> Result<(u64, bool)> {
        check_sha(sha)?;
        if length > protocol::MAX_BLOB || length == 0 {
            return Err(Error::BadRequest(format!("upload-length must be 1..={}", protocol::MAX_BLOB)));
        }
        if bytes.len() > protocol::MAX_BLOB_CHUNK {
            return Err(Error::BadRequest("chunk too large".into()));
        }
        if self.storage.has_blob(provider, sha)? {
            return Ok((length, false));
        }
        match self.blobs.put(provider, sha, offset, length, bytes).map_err(internal)? {
            PutOutcome::Partial(at) => Ok((at, false)),
            PutOutcome::LengthMismatch { declared, at } => Err(Error::Conflict {
                reason: format!("an upload of this blob with upload-length {declared} stands at {at}; finish it or wait for it to expire"),
                acked_seq: None,
                offset: Some(at),
            }),
            PutOutcome::Quota => Err(Error::TooMany("too many unfinished uploads; finish or let them expire (7 days)".into())),
            PutOutcome::Conflict(at) => Err(Error::Conflict { reason: format!("the upload stands at {at}"), acked_seq: None, offset: Some(at) }),
            PutOutcome::Mismatch => Err(Error::Unprocessable("the bytes do not hash to the blob's name; the upload was discarded".into())),
            PutOutcome::TooLong => Err(Error::BadRequest("the chunk runs past upload-length".into())),
            PutOutcome::Complete => {
                let new = self.storage.record_blob(provider, sha, length, self.now_ms())?;
                if new {
                    self.metrics.blobs_stored.inc();
                    self.metrics.blob_bytes.add(length);
                }
                Ok((length, true))
            }
        }
    }

    pub fn blob_bytes(&self, provider: &str, sha: &str) -> Result<Vec<u8>> {
        check_sha(sha)?;
        if !self.storage.has_blob(provider, sha)? {
            return Err(Error::NotFound("blob not found".into()));
        }
        let bytes = self.blobs.read(provider, sha).map_err(internal)?;
        if hex(&Sha256::digest(&bytes)) != sha {
            return Err(Error::Internal("a stored blob no longer matches its hash".into()));
        }
        Ok(bytes)
    }
}

fn check_sha(sha: &str) -> Result<()> {
    if sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        Ok(())
    } else {
        Err(Error::BadRequest("a blob is named by its lowercase hex SHA-256".into()))
    }
}
