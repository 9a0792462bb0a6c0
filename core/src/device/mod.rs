//! `Device`: the entry point an app (through the FFI), the CLI and tests use. It ties the
//! pure order logic and SLA rules to the store and an injected clock.

mod bundle;
mod help;
mod parts;
mod profile;
mod receipts;
mod sync;
#[cfg(test)]
pub(crate) mod testkit;

pub use bundle::{ExportOptions, ExportSummary};
pub use help::{HelpCost, HelpQuestion, HelpThread};
pub use parts::{Closeout, MovementInput};

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use crate::cancel::Cancel;
use crate::changes::{ChangeFeed, ChangeListener, ChangeOrigin, Subscription};
use crate::clock::{Clock, SystemClock};
use crate::location::LocationSource;
use crate::order::{self, lifecycle, Actor, EngineerNote, Event, GpsFix, Status, Timestamp, TransitionRecord, WorkOrder};
use crate::sla::{SlaPolicy, SlaReport, WorkCalendar};
use crate::sop::{self, Answer, AnswerRecord, Blocker, Evaluation, Registry, Template, TemplateRef};
use crate::evidence::journal::Draft;
use crate::evidence::{Signer, SoftwareSigner};
use crate::evidence::blob::BlobStore;
use crate::evidence::{photo, EvidenceError};
use crate::store::{Change, OrderSummary, PhotoRow, ReuseHit, SortBy, Stamp, Store};
use crate::Result;

pub struct DeviceOptions {
    pub data_dir: PathBuf,
    pub clock: Arc<dyn Clock>,
    pub calendar: WorkCalendar,
    pub sla: SlaPolicy,
    /// Refuse to complete an order that never started a checklist (default true: the SOP
    /// is how the platform later proves what was done).
    pub require_checklist: bool,
    /// Refuse to complete an order whose customer has neither signed nor refused the receipt
    /// (default true: the signed receipt is the record disputes are settled on).
    pub require_receipt: bool,
    /// The device key. `None`: a software P-256 key kept in the store (desktop, tests).
    pub signer: Option<Arc<dyn Signer>>,
    /// The public key (SEC1) of the authority whose time tickets this device accepts.
    pub time_authority: Option<Vec<u8>>,
    /// The platform's location provider, asked when an action comes without a fix.
    pub location: Option<Arc<dyn LocationSource>>,
}

impl DeviceOptions {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            clock: SystemClock::shared(),
            calendar: WorkCalendar::china_default(),
            sla: SlaPolicy::default(),
            require_checklist: true,
            require_receipt: true,
            signer: None,
            time_authority: None,
            location: None,
        }
    }

    pub fn with_signer(mut self, signer: Arc<dyn Signer>) -> Self {
        self.signer = Some(signer);
        self
    }

    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    pub fn with_location(mut self, location: Arc<dyn LocationSource>) -> Self {
        self.location = Some(location);
        self
    }
}

#[derive(Debug, Clone, Default)]
pub struct OrderFilter {
    /// Only these statuses; empty means all.
    pub statuses: Vec<Status>,
    pub sort: SortBy,
}

/// Everything a detail screen shows, in one call.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct OrderView {
    pub order: WorkOrder,
    pub sla: SlaReport,
    /// Events the engineer can raise now (button names).
    pub next_events: Vec<&'static str>,
}

/// A checklist screen in one value: the pinned template, the evaluation, the answers.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ChecklistView {
    pub template: Arc<Template>,
    pub pinned: TemplateRef,
    pub evaluation: Evaluation,
    pub answers: Vec<AnswerRecord>,
}

pub struct Device {
    store: Store,
    clock: Arc<dyn Clock>,
    calendar: WorkCalendar,
    sla: SlaPolicy,
    require_checklist: bool,
    require_receipt: bool,
    templates: RwLock<Registry>,
    blobs: BlobStore,
    photo_limits: photo::Limits,
    location: Option<Arc<dyn LocationSource>>,
    changes: ChangeFeed,
}

/// Where a photo comes from.
pub enum PhotoSource<'a> {
    Path(&'a std::path::Path),
    Bytes(&'a [u8]),
}

/// What ingest found, in one value for the capture screen.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct IngestReport {
    pub sha256: String,
    pub size: u64,
    /// False when these bytes were already stored (on this or another order).
    pub new_blob: bool,
    pub analysis: photo::Analysis,
    pub thumb_sha256: Option<String>,
    /// The same or a near-identical photo already used as evidence on other orders.
    pub reused_on: Vec<ReuseHit>,
    pub journal_seq: u64,
}

/// Hamming distance at or below which two photos count as the same picture.
pub const NEAR_DUPLICATE_BITS: u32 = 6;

/// Reuse hits named in a photo's journal entry (the total is always recorded).
pub const REUSE_HITS_JOURNALED: usize = 8;

const NOTE_MAX_CHARS: usize = 4000;

impl Device {
    pub fn open(options: DeviceOptions) -> Result<Self> {
        let store = Store::open(&options.data_dir)?;
        let signer: Arc<dyn Signer> = match options.signer {
            Some(s) => s,
            None => match store.meta("device_key")? {
                Some(hex) => {
                    let bytes = crate::hash::unhex(&hex).ok_or(crate::store::Error::NoSigner)?;
                    Arc::new(SoftwareSigner::from_secret(&bytes).map_err(crate::evidence::journal::Error::from).map_err(crate::store::Error::from)?)
                }
                None => {
                    let s = SoftwareSigner::generate().map_err(crate::evidence::journal::Error::from).map_err(crate::store::Error::from)?;
                    store.set_meta("device_key", &crate::hash::hex(&s.secret()))?;
                    Arc::new(s)
                }
            },
        };
        let public = crate::hash::hex(&signer.public_key());
        match store.meta("device_public_key")? {
            Some(known) if known != public => return Err(crate::evidence::EvidenceError::KeyMismatch.into()),
            Some(_) => {}
            None => store.set_meta("device_public_key", &public)?,
        }
        store.set_signer(signer);
        if let Some(a) = &options.time_authority {
            store.set_meta("time_authority", &crate::hash::hex(a))?;
        }
        let mut templates = Registry::with_builtins()?;
        for (name, source) in store.published_templates()? {
            templates.add(Template::parse(&name, &source)?)?;
        }
        let blobs = BlobStore::open(&options.data_dir.join("blobs")).map_err(EvidenceError::from)?;
        Ok(Self {
            store,
            blobs,
            photo_limits: photo::Limits::default(),
            clock: options.clock,
            calendar: options.calendar,
            sla: options.sla,
            require_checklist: options.require_checklist,
            require_receipt: options.require_receipt,
            templates: RwLock::new(templates),
            location: options.location,
            changes: ChangeFeed::default(),
        })
    }

    /// Registers a listener told which orders changed (after local edits and merges);
    /// delivery stops when the returned handle is dropped.
    pub fn subscribe(&self, listener: Arc<dyn ChangeListener>) -> Subscription {
        self.changes.subscribe(listener)
    }

    pub(crate) fn changed(&self, id: &str, origin: ChangeOrigin) {
        self.changes.emit([id.to_string()], origin);
    }

    pub(crate) fn changed_many(&self, ids: impl IntoIterator<Item = String>, origin: ChangeOrigin) {
        self.changes.emit(ids, origin);
    }

    /// The fix to record: the caller's, else the platform provider's (a failing provider
    /// records no fix; the engineer's action still goes through).
    fn fix_or_current(&self, fix: Option<GpsFix>) -> Option<GpsFix> {
        fix.or_else(|| {
            let source = self.location.as_ref()?;
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| source.current_fix())) {
                Ok(f) => f,
                Err(_) => {
                    tracing::warn!("the location provider failed; no fix recorded");
                    None
                }
            }
        })
    }

    pub fn device_id(&self) -> &str {
        self.store.device_id()
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn now(&self) -> Timestamp {
        Timestamp::from_datetime(self.clock.now())
    }

    /// Wall and monotonic readings taken together.
    pub fn stamp(&self) -> Stamp {
        Stamp { at_ms: self.now().0, mono_ms: self.clock.monotonic_ms() }
    }

    fn summarize(&self, order: &WorkOrder) -> OrderSummary {
        let sla = self.sla.evaluate(order, &self.calendar, self.clock.now());
        let next = sla.next_deadline();
        OrderSummary {
            id: order.id.clone(),
            status: order.status,
            priority: order.priority.as_str().to_string(),
            customer: order.customer.company.clone(),
            site: order.site.address.clone(),
            equipment: format!("{} {}", order.equipment.brand, order.equipment.model),
            engineer_id: order.engineer.id.clone(),
            reported_at: order.fault.reported_at.0,
            appointment_start: order.appointment.map(|w| w.start.0),
            appointment_end: order.appointment.map(|w| w.end.0),
            sla_deadline: next.map(|c| c.deadline.0),
            sla_kind: next.map(|c| serde_json::to_value(c.kind).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default()),
            updated_at: order.last_activity().0,
            breached: false,
        }
    }

    fn view(&self, order: WorkOrder) -> OrderView {
        let sla = self.sla.evaluate(&order, &self.calendar, self.clock.now());
        let next_events = lifecycle::engineer_events(order.status);
        OrderView { order, sla, next_events }
    }

    /// Imports one order or an array of orders from the dispatcher's JSON. Validates all of
    /// them and checks none exists before writing any.
    pub fn import_orders_json(&self, json: &str) -> Result<Vec<String>> {
        let orders = order::import::parse_orders(json, self.now())?;
        for o in &orders {
            if self.store.get(&o.id).is_ok() {
                return Err(crate::store::Error::AlreadyExists { id: o.id.clone() }.into());
            }
        }
        let mut ids = Vec::with_capacity(orders.len());
        for o in orders {
            let draft = Draft::new(
                "import",
                Some(&o.id),
                serde_json::json!({ "provider": o.provider.id, "engineer": o.engineer.id, "priority": o.priority.as_str() }),
            );
            self.store.insert(&o, &self.summarize(&o), self.stamp(), &draft)?;
            ids.push(o.id);
        }
        self.changed_many(ids.clone(), ChangeOrigin::Local);
        Ok(ids)
    }

    pub fn list(&self, filter: &OrderFilter) -> Result<Vec<OrderSummary>> {
        let now = self.now().0;
        let mut rows = self.store.list(&filter.statuses, filter.sort)?;
        for r in &mut rows {
            r.breached = r.sla_deadline.is_some_and(|d| d < now);
        }
        Ok(rows)
    }

    pub fn get(&self, id: &str) -> Result<OrderView> {
        Ok(self.view(self.store.get(id)?))
    }

    /// Applies a lifecycle event, recording wall time, monotonic reading, device and fix.
    pub fn transition(&self, id: &str, event: Event, actor: Actor, fix: Option<GpsFix>) -> Result<OrderView> {
        let fix = self.fix_or_current(fix);
        let stamp = self.stamp();
        let now = Timestamp(stamp.at_ms);
        let mono = stamp.mono_ms;
        let device = self.device_id().to_string();
        let name = event.name();
        let ((), order) = self.store.edit(
            id,
            name,
            stamp,
            |o: &mut WorkOrder| -> Result<((), Vec<Change>, Option<Draft>)> {
                let to = lifecycle::next_status(o.status, &event, actor)?;
                if to == Status::Completed {
                    let blockers = self.blockers_of(o)?;
                    if let Some(first) = blockers.first() {
                        return Err(sop::Error::Blocked { count: blockers.len(), first: first.step.clone() }.into());
                    }
                }
                let mut changes = vec![Change::Status, Change::AppendTransition];
                if let Some(w) = event.new_window() {
                    o.appointment = Some(w);
                    changes.push(Change::Appointment);
                }
                let payload = serde_json::json!({ "from": o.status, "to": to, "event": &event, "actor": actor });
                let draft = Draft::new("transition", Some(id), payload).with_fix(fix);
                o.transitions.push(TransitionRecord { from: o.status, to, event, at: now, monotonic_ms: mono, device, fix });
                o.status = to;
                Ok(((), changes, Some(draft)))
            },
            |o| self.summarize(o),
        )?;
        tracing::info!(order = id, event = name, status = %order.status, "transition");
        self.changed(id, ChangeOrigin::Local);
        Ok(self.view(order))
    }

    /// Appends an engineer note (notes are never edited in place; a correction is a new note).
    pub fn add_note(&self, id: &str, text: &str) -> Result<OrderView> {
        let text = text.trim();
        if text.is_empty() || text.chars().count() > NOTE_MAX_CHARS {
            return Err(order::Error::Invalid {
                field: "text".into(),
                reason: format!("a note has 1 to {NOTE_MAX_CHARS} characters"),
            }
            .into());
        }
        let stamp = self.stamp();
        let note = EngineerNote { at: Timestamp(stamp.at_ms), device: self.device_id().to_string(), text: text.to_string() };
        let ((), order) = self.store.edit(
            id,
            "note",
            stamp,
            |o: &mut WorkOrder| -> Result<((), Vec<Change>, Option<Draft>)> {
                let draft = Draft::new("note", Some(id), serde_json::json!({ "text": &note.text }));
                o.notes.push(note);
                Ok(((), vec![Change::AppendNote], Some(draft)))
            },
            |o| self.summarize(o),
        )?;
        self.changed(id, ChangeOrigin::Local);
        Ok(self.view(order))
    }

    fn registry(&self) -> std::sync::RwLockReadGuard<'_, Registry> {
        self.templates.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The latest version of every template this device knows.
    pub fn templates(&self) -> Vec<Arc<Template>> {
        self.registry().list()
    }

    /// Publishes a template version to this device (persisted; older versions stay).
    pub fn publish_template(&self, file_name: &str, source: &str) -> Result<Arc<Template>> {
        let t = Template::parse(file_name, source)?;
        let mut reg = self.templates.write().unwrap_or_else(|p| p.into_inner());
        if let Some(existing) = reg.get(&t.id, t.version) {
            if existing.sha256 != t.sha256 {
                return Err(sop::Error::VersionExists { id: t.id, version: t.version }.into());
            }
            return Ok(existing);
        }
        self.store.save_template(&t.id, t.version, &t.sha256, source, self.now().0)?;
        Ok(reg.add(t)?)
    }

    fn pinned_template(&self, order: &WorkOrder) -> Result<Option<(TemplateRef, Arc<Template>)>> {
        let Some(pin) = &order.checklist.template else { return Ok(None) };
        let t = self
            .registry()
            .get(&pin.id, pin.version)
            .filter(|t| t.sha256 == pin.sha256)
            .ok_or_else(|| sop::Error::TemplateMissing { id: pin.id.clone(), version: pin.version })?;
        Ok(Some((pin.clone(), t)))
    }

    fn blockers_of(&self, order: &WorkOrder) -> Result<Vec<Blocker>> {
        let mut blockers = match self.pinned_template(order)? {
            Some((_, t)) => sop::evaluate(&t, order, &order.checklist).blockers,
            None if self.require_checklist => vec![Blocker {
                step: "checklist".into(),
                label: sop::Text { zh: "作业清单".into(), en: "Checklist".into() },
                reason: sop::Text { zh: "尚未开始作业清单".into(), en: "no checklist has been started".into() },
            }],
            None => Vec::new(),
        };
        if self.require_receipt && order.receipts.is_empty() {
            blockers.push(Blocker {
                step: "receipt".into(),
                label: sop::Text { zh: "客户签收回执".into(), en: "Customer receipt".into() },
                reason: sop::Text {
                    zh: "客户尚未在回执单上签字(或记录拒签)".into(),
                    en: "the customer has not signed the receipt (or refused, recorded with a reason)".into(),
                },
            });
        }
        Ok(blockers)
    }

    fn checklist_view(&self, order: WorkOrder) -> Result<ChecklistView> {
        let (pinned, template) = self.pinned_template(&order)?.ok_or(sop::Error::NotStarted)?;
        let evaluation = sop::evaluate(&template, &order, &order.checklist);
        Ok(ChecklistView { template, pinned, evaluation, answers: order.checklist.answers })
    }

    /// Starts the order's checklist on the latest version of `template_id`, pinning it.
    pub fn start_checklist(&self, id: &str, template_id: &str) -> Result<ChecklistView> {
        let template = self.registry().latest(template_id).ok_or_else(|| sop::Error::UnknownTemplate { id: template_id.to_string() })?;
        let pin = TemplateRef {
            id: template.id.clone(),
            version: template.version,
            sha256: template.sha256.clone(),
            started_at: self.now(),
            device: self.device_id().to_string(),
        };
        let stamp = Stamp { at_ms: pin.started_at.0, mono_ms: self.clock.monotonic_ms() };
        let ((), order) = self.store.edit(
            id,
            "checklist.start",
            stamp,
            |o: &mut WorkOrder| -> Result<((), Vec<Change>, Option<Draft>)> {
                if let Some(existing) = &o.checklist.template {
                    return Err(sop::Error::AlreadyStarted { id: existing.id.clone(), version: existing.version }.into());
                }
                if o.status.is_terminal() {
                    return Err(sop::Error::Closed { step: "checklist".into(), reason: format!("the order is {}", o.status) }.into());
                }
                let draft = Draft::new("checklist_start", Some(id), serde_json::to_value(&pin).unwrap_or_default());
                o.checklist.template = Some(pin);
                Ok(((), vec![Change::ChecklistTemplate], Some(draft)))
            },
            |o| self.summarize(o),
        )?;
        self.changed(id, ChangeOrigin::Local);
        self.checklist_view(order)
    }

    pub fn checklist(&self, id: &str) -> Result<ChecklistView> {
        self.checklist_view(self.store.get(id)?)
    }

    /// Records an answer (a correction is just a newer answer; nothing is cleared).
    pub fn answer(&self, id: &str, step: &str, value: Answer) -> Result<ChecklistView> {
        let stamp = self.stamp();
        let record = AnswerRecord {
            step: step.to_string(),
            value,
            at: Timestamp(stamp.at_ms),
            monotonic_ms: stamp.mono_ms,
            device: self.device_id().to_string(),
        };
        let policy = self.borrow_policy()?;
        let engineer = self.engineer_id()?;
        let (moves, order) = self.store.edit_bound(
            id,
            "checklist.answer",
            stamp,
            |o: &mut WorkOrder, _| -> Result<(Vec<crate::parts::Movement>, Vec<Change>, Option<Draft>)> {
                let (_, template) = self.pinned_template(o)?.ok_or(sop::Error::NotStarted)?;
                sop::check_answer(&template, o, step, &record.value)?;
                // A parts step with a ledger role records its movements in this transaction.
                let moves = match (template.step(step).and_then(|s| s.ledger), &record.value) {
                    (Some(role), Answer::Parts { parts }) => self.movements_for_answer(id, step, role, parts, &engineer, stamp.at_ms)?,
                    _ => Vec::new(),
                };
                let kind = match &record.value {
                    Answer::Consent { .. } => "consent",
                    Answer::Parts { .. } => "part_movement",
                    Answer::Photos { .. } => "photo_step",
                    _ => "answer",
                };
                let mut payload = serde_json::json!({ "step": step, "value": &record.value });
                if !moves.is_empty() {
                    payload["movements"] = serde_json::to_value(&moves).unwrap_or_default();
                }
                let draft = Draft::new(kind, Some(id), payload);
                o.checklist.answers.push(record);
                Ok((moves, vec![Change::AppendAnswer], Some(draft)))
            },
            |o| self.summarize(o),
            |tx, moves, seq| {
                if moves.is_empty() {
                    return Ok(());
                }
                self.store.insert_local_tx(tx, moves, Some(step), &[seq], policy)
            },
        )?;
        if !moves.is_empty() {
            tracing::info!(order = id, step, movements = moves.len(), "parts recorded from the checklist");
        }
        self.changed(id, ChangeOrigin::Local);
        self.checklist_view(order)
    }

    pub fn mark_not_applicable(&self, id: &str, step: &str, reason: &str) -> Result<ChecklistView> {
        self.answer(id, step, Answer::NotApplicable { reason: reason.trim().to_string() })
    }

    /// Every answer ever given to `step`, oldest first (the last one is current).
    pub fn step_history(&self, id: &str, step: &str) -> Result<Vec<AnswerRecord>> {
        let order = self.store.get(id)?;
        if let Some((_, t)) = self.pinned_template(&order)? {
            if t.step(step).is_none() {
                return Err(sop::Error::UnknownStep { step: step.to_string() }.into());
            }
        }
        let mut h: Vec<AnswerRecord> = order.checklist.answers.into_iter().filter(|a| a.step == step).collect();
        h.sort_by(|a, b| (a.at, &a.device).cmp(&(b.at, &b.device)));
        Ok(h)
    }

    /// Why the order cannot be completed yet; empty when it can.
    pub fn blockers(&self, id: &str) -> Result<Vec<Blocker>> {
        self.blockers_of(&self.store.get(id)?)
    }

    /// Stores a photo as evidence for an order (optionally a checklist step): one streaming
    /// pass hashes and stores it, then analysis (EXIF, thumbnail, perceptual hash), a reuse
    /// check against other orders, and a journal entry in the same transaction as the record.
    pub fn ingest_photo(&self, order_id: &str, step: Option<&str>, source: PhotoSource<'_>, fix: Option<GpsFix>) -> Result<IngestReport> {
        self.ingest_photo_cancellable(order_id, step, source, fix, &Cancel::new())
    }

    /// [`Device::ingest_photo`] that stops (with `Error::Cancelled`) when `cancel` fires
    /// before the photo is recorded. The stored blob may stay (content-addressed, harmless);
    /// no record or journal entry is written. Once recorded, a cancel changes nothing.
    pub fn ingest_photo_cancellable(
        &self,
        order_id: &str,
        step: Option<&str>,
        source: PhotoSource<'_>,
        fix: Option<GpsFix>,
        cancel: &Cancel,
    ) -> Result<IngestReport> {
        // The order must exist before anything is stored for it.
        self.store.get(order_id)?;
        cancel.check()?;
        let fix = self.fix_or_current(fix);
        let stored = match source {
            PhotoSource::Path(p) => {
                let f = std::fs::File::open(p).map_err(EvidenceError::from)?;
                self.blobs.put(std::io::BufReader::with_capacity(256 * 1024, f))
            }
            PhotoSource::Bytes(b) => self.blobs.put_bytes(b),
        }
        .map_err(EvidenceError::from)?;
        let mut analysis = photo::analyze(&self.blobs.path(&stored.sha256), &self.photo_limits).map_err(EvidenceError::from)?;
        let thumb = match analysis.thumbnail.take() {
            Some(t) => Some(self.blobs.put_bytes(&t).map_err(EvidenceError::from)?),
            None => None,
        };
        let reused_on = self.store.find_reuse(order_id, &stored.sha256, analysis.phash, NEAR_DUPLICATE_BITS)?;
        cancel.check()?;
        let stamp = self.stamp();
        let row = PhotoRow {
            order_id: order_id.to_string(),
            sha256: stored.sha256.clone(),
            step: step.map(str::to_string),
            phash: analysis.phash,
            format: serde_json::to_value(analysis.format).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default(),
            width: analysis.width,
            height: analysis.height,
            size: stored.size,
            exif: serde_json::to_value(&analysis.exif).unwrap_or_default(),
            thumb_sha256: thumb.as_ref().map(|t| t.sha256.clone()),
            problems: analysis.problems.clone(),
            ingested_at: stamp.at_ms,
            journal_seq: 0,
        };
        let draft = Draft::new(
            "photo",
            Some(order_id),
            serde_json::json!({
                "sha256": &stored.sha256,
                "size": stored.size,
                "phash": analysis.phash.map(|p| format!("{p:016x}")),
                "step": step,
                "format": &row.format,
                "captured_at": &analysis.exif.captured_at,
                "thumb_sha256": &row.thumb_sha256,
                // At most a few hits inline: the entry's payload must stay small enough to be
                // kept in the body (a verifier reads `sha256` and `step` from it).
                "reused_on": &reused_on[..reused_on.len().min(REUSE_HITS_JOURNALED)],
                "reused_total": reused_on.len(),
            }),
        )
        .with_fix(fix);
        let mut vouched = vec![(stored.sha256.as_str(), stored.size)];
        if let Some(t) = &thumb {
            vouched.push((t.sha256.as_str(), t.size));
        }
        let journal_seq = self.store.record_photo(&row, stamp, &draft, &vouched)?;
        self.changed(order_id, ChangeOrigin::Local);
        if !reused_on.is_empty() {
            tracing::warn!(order = order_id, photo = %stored.sha256, hits = reused_on.len(), "photo already used on another order");
        }
        Ok(IngestReport {
            sha256: stored.sha256,
            size: stored.size,
            new_blob: stored.new,
            analysis,
            thumb_sha256: row.thumb_sha256,
            reused_on,
            journal_seq,
        })
    }

    pub fn photos(&self, order_id: &str) -> Result<Vec<PhotoRow>> {
        Ok(self.store.photos(order_id)?)
    }

    /// A stored blob's bytes; re-hashed first unless the database vouches for it.
    pub fn blob(&self, sha256: &str) -> Result<Vec<u8>> {
        if !self.store.blob_vouched(sha256)? {
            self.blobs.verify(sha256).map_err(EvidenceError::from)?;
        }
        Ok(self.blobs.read(sha256).map_err(EvidenceError::from)?)
    }

    /// Re-hashes a stored blob (for audits and after a crash).
    pub fn verify_blob(&self, sha256: &str) -> Result<u64> {
        Ok(self.blobs.verify(sha256).map_err(EvidenceError::from)?)
    }

    pub fn blob_path(&self, sha256: &str) -> std::path::PathBuf {
        self.blobs.path(sha256)
    }

    /// This device's public key (SEC1, uncompressed).
    pub fn public_key(&self) -> Vec<u8> {
        self.store.signer().map(|s| s.public_key()).unwrap_or_default()
    }

    /// Journal entries, all or one order's.
    pub fn journal(&self, order_id: Option<&str>) -> Result<Vec<crate::evidence::Entry>> {
        Ok(self.store.journal_entries(order_id)?)
    }

    /// Verifies the whole journal: chain, signatures, no gaps.
    pub fn verify_journal(&self) -> Result<crate::evidence::journal::Report> {
        let entries = self.store.journal_entries(None)?;
        Ok(crate::evidence::journal::verify(&entries, &self.public_key(), self.device_id(), Some(crate::evidence::journal::ZERO_HASH)))
    }

    /// Accepts a server-signed time ticket and journals it; later entries are anchored to it.
    pub fn accept_time_ticket(&self, ticket: crate::evidence::time::TimeTicket, round_trip_ms: u64) -> Result<u64> {
        let authority = self
            .store
            .meta("time_authority")?
            .and_then(|h| crate::hash::unhex(&h))
            .ok_or(EvidenceError::NoAuthority)?;
        if !ticket.verify(&authority, self.device_id()) {
            return Err(EvidenceError::Ticket("not signed by this device's time authority for this device".into()).into());
        }
        let receipt = crate::evidence::time::TicketReceipt { ticket, round_trip_ms };
        let draft = Draft::new("time_ticket", None, serde_json::to_value(&receipt).unwrap_or_default());
        Ok(self.store.append_journal(self.stamp(), &draft)?)
    }

    /// Answers every open step with `sop::demo` answers until none is open (demos, tests,
    /// benchmarks). Returns the number of answers given.
    pub fn walk_checklist_demo(&self, id: &str) -> Result<usize> {
        let mut n = 0;
        loop {
            let view = self.checklist(id)?;
            let order = self.store.get(id)?;
            let Some(step) = view.evaluation.open().first().and_then(|s| view.template.step(s)).cloned() else {
                return Ok(n);
            };
            let answer = sop::demo::answer_for(&view.template, &view.evaluation, &order, &step, self.now());
            self.answer(id, &step.id, answer)?;
            n += 1;
            if n > 10_000 {
                return Ok(n);
            }
        }
    }

    /// The order's whole Automerge document, for a peer or a server.
    pub fn document_bytes(&self, id: &str) -> Result<Vec<u8>> {
        Ok(self.store.document_bytes(id)?)
    }

    /// Merges a document received from a peer or a server.
    pub fn merge_document(&self, bytes: &[u8]) -> Result<OrderView> {
        let order = self.store.merge(bytes, |o| self.summarize(o), self.stamp())?;
        self.changed(&order.id, ChangeOrigin::Remote);
        Ok(self.view(order))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::order::import::tests::sample_json;
    use crate::order::{TimeWindow, LocationSource};
    use chrono::TimeZone;

    fn device(dir: &std::path::Path, clock: Arc<ManualClock>) -> Device {
        Device::open(DeviceOptions::new(dir).with_clock(clock)).unwrap()
    }

    fn clock() -> Arc<ManualClock> {
        Arc::new(ManualClock::at(chrono::Utc.with_ymd_and_hms(2026, 11, 23, 1, 30, 0).unwrap()))
    }

    fn window(d: &Device) -> TimeWindow {
        TimeWindow { start: Timestamp(d.now().0 + 3_600_000), end: Timestamp(d.now().0 + 7_200_000) }
    }

    #[test]
    fn full_lifecycle_is_recorded_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let clock = clock();
        let d = device(dir.path(), clock.clone());
        assert_eq!(d.import_orders_json(&sample_json("WO-1")).unwrap(), vec!["WO-1"]);
        let fix = GpsFix { lat: 39.9, lon: 116.4, accuracy_m: 8.0, source: LocationSource::Gps, mock: false };
        let w = window(&d);
        let events = [
            Event::Accept,
            Event::ContactCustomer { window: w },
            Event::Depart,
            Event::Arrive,
            Event::StartWork,
            Event::RequestSignature,
            Event::Complete,
        ];
        for e in events {
            clock.advance(chrono::Duration::minutes(10));
            if e == Event::Complete {
                let err = d.transition("WO-1", e.clone(), Actor::Engineer, Some(fix)).unwrap_err();
                assert!(matches!(err, crate::Error::Sop(sop::Error::Blocked { .. })), "{err:?}");
                d.start_checklist("WO-1", "onsite-repair").unwrap();
                assert!(d.walk_checklist_demo("WO-1").unwrap() > 15);
                assert_eq!(d.blockers("WO-1").unwrap().iter().map(|b| b.step.as_str()).collect::<Vec<_>>(), ["receipt"]);
                d.sign_receipt("WO-1", &testkit::input()).unwrap();
                assert!(d.blockers("WO-1").unwrap().is_empty());
            }
            d.transition("WO-1", e, Actor::Engineer, Some(fix)).unwrap();
        }
        d.add_note("WO-1", "replaced the DC-in board").unwrap();
        let device_id = d.device_id().to_string();
        drop(d);

        let d = device(dir.path(), clock);
        assert_eq!(d.device_id(), device_id, "device id is stable");
        let v = d.get("WO-1").unwrap();
        assert_eq!(v.order.status, Status::Completed);
        assert_eq!(v.order.transitions.len(), 7);
        assert_eq!(v.order.appointment, Some(w));
        let t = &v.order.transitions[3];
        assert_eq!((t.from, t.to), (Status::EnRoute, Status::OnSite));
        assert_eq!(t.monotonic_ms, 40 * 60_000);
        assert_eq!(t.fix, Some(fix));
        assert_eq!(t.device, device_id);
        assert_eq!(v.order.notes[0].text, "replaced the DC-in board");
        assert!(v.next_events.is_empty());
        assert!(v.sla.clocks.iter().all(|c| matches!(c.state, crate::sla::ClockState::Met { .. })));
        let list = d.list(&OrderFilter::default()).unwrap();
        assert_eq!(list[0].status, Status::Completed);
        assert_eq!(list[0].sla_deadline, None);
    }

    #[test]
    fn illegal_transition_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let d = device(dir.path(), clock());
        d.import_orders_json(&sample_json("WO-1")).unwrap();
        let err = d.transition("WO-1", Event::Arrive, Actor::Engineer, None).unwrap_err();
        assert!(matches!(err, crate::Error::Order(order::Error::IllegalTransition { .. })));
        let v = d.get("WO-1").unwrap();
        assert_eq!(v.order.status, Status::Assigned);
        assert!(v.order.transitions.is_empty());
        assert!(matches!(
            d.transition("nope", Event::Accept, Actor::Engineer, None),
            Err(crate::Error::Store(crate::store::Error::NotFound { .. }))
        ));
        assert!(matches!(d.add_note("WO-1", "   "), Err(crate::Error::Order(order::Error::Invalid { .. }))));
    }

    #[test]
    fn list_filters_and_sorts_by_sla_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let clock = clock();
        let d = device(dir.path(), clock.clone());
        let low = sample_json("WO-LOW").replace("\"urgent\"", "\"low\"");
        let normal = sample_json("WO-NORMAL").replace("\"urgent\"", "\"normal\"");
        d.import_orders_json(&format!("[{low},{normal},{}]", sample_json("WO-URGENT"))).unwrap();
        let ids = |d: &Device| -> Vec<String> { d.list(&OrderFilter::default()).unwrap().into_iter().map(|s| s.id).collect() };
        // All three share the 2 h first-contact deadline: ties go to the higher priority.
        assert_eq!(ids(&d), ["WO-URGENT", "WO-NORMAL", "WO-LOW"]);
        // Contacting the urgent customer leaves its 2 h response clock running at 11:10;
        // the others are due at the same time, so the order holds...
        clock.advance(chrono::Duration::minutes(5));
        d.transition("WO-NORMAL", Event::Accept, Actor::Engineer, None).unwrap();
        let w = window(&d);
        d.transition("WO-NORMAL", Event::ContactCustomer { window: w }, Actor::Engineer, None).unwrap();
        // ...and the normal order, accepted and contacted, now waits only for its on-site clock.
        assert_eq!(ids(&d), ["WO-URGENT", "WO-LOW", "WO-NORMAL"]);
        d.transition("WO-URGENT", Event::Accept, Actor::Engineer, None).unwrap();
        let accepted = d.list(&OrderFilter { statuses: vec![Status::Accepted], ..Default::default() }).unwrap();
        assert_eq!(accepted.len(), 1);
        assert_eq!(accepted[0].id, "WO-URGENT");
        assert!(d.list(&OrderFilter::default()).unwrap().iter().all(|s| !s.breached));
        clock.advance(chrono::Duration::hours(30));
        let rows = d.list(&OrderFilter::default()).unwrap();
        let breached: Vec<&str> = rows.iter().filter(|s| s.breached).map(|s| s.id.as_str()).collect();
        assert_eq!(breached, ["WO-URGENT", "WO-LOW"], "the contacted order's on-site clock still runs");
        assert!(matches!(
            d.import_orders_json(&sample_json("WO-LOW")),
            Err(crate::Error::Store(crate::store::Error::AlreadyExists { .. }))
        ));
    }

    #[test]
    fn compaction_keeps_every_edit() {
        let dir = tempfile::tempdir().unwrap();
        let d = device(dir.path(), clock());
        d.import_orders_json(&sample_json("WO-1")).unwrap();
        for i in 0..100 {
            d.add_note("WO-1", &format!("note {i}")).unwrap();
        }
        let (bytes, count) = d.store().document_footprint().unwrap();
        assert_eq!(count, 1);
        assert!(bytes < 16 * 1024, "100 notes compacted into {bytes} bytes");
        let d2 = device(dir.path(), clock());
        let notes = d2.get("WO-1").unwrap().order.notes;
        assert_eq!(notes.len(), 100);
        assert_eq!(notes[99].text, "note 99");
    }

    #[test]
    fn two_devices_merge_concurrent_edits() {
        let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let a = device(a_dir.path(), clock());
        let b = device(b_dir.path(), clock());
        assert_ne!(a.device_id(), b.device_id());
        a.import_orders_json(&sample_json("WO-1")).unwrap();
        b.merge_document(&a.document_bytes("WO-1").unwrap()).unwrap();
        a.add_note("WO-1", "from a").unwrap();
        b.add_note("WO-1", "from b").unwrap();
        b.transition("WO-1", Event::Accept, Actor::Engineer, None).unwrap();
        let merged_a = a.merge_document(&b.document_bytes("WO-1").unwrap()).unwrap();
        let merged_b = b.merge_document(&a.document_bytes("WO-1").unwrap()).unwrap();
        assert_eq!(merged_a.order, merged_b.order);
        assert_eq!(merged_a.order.notes.len(), 2);
        assert_eq!(merged_a.order.status, Status::Accepted);
        assert_eq!(a.list(&OrderFilter::default()).unwrap()[0].status, Status::Accepted, "summary follows merges");
        assert!(matches!(a.merge_document(b"garbage"), Err(crate::Error::Store(crate::store::Error::Document { .. }))));
    }
}
