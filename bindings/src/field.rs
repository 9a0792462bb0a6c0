//! The issue-8 sub-areas: `parts()` (the spare-part ledger), `help()` (expert help) and
//! `profile()` (the signed service record). Thin forwarders to the core's `Device`.

use std::sync::Arc;
use std::time::SystemTime;

use onsite_core::parts;

use crate::store::Handle;
use crate::types::to_time;
use crate::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum PartMovementKind {
    Borrow,
    Install,
    Return,
    ClerkIssue,
    ClerkReceive,
}

impl From<parts::Kind> for PartMovementKind {
    fn from(k: parts::Kind) -> Self {
        match k {
            parts::Kind::Borrow => Self::Borrow,
            parts::Kind::Install => Self::Install,
            parts::Kind::Return => Self::Return,
            parts::Kind::ClerkIssue => Self::ClerkIssue,
            parts::Kind::ClerkReceive => Self::ClerkReceive,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct PartMovement {
    pub id: String,
    pub kind: PartMovementKind,
    pub part_number: String,
    pub serial: Option<String>,
    pub quantity: u32,
    pub order_id: Option<String>,
    pub removed_serial: Option<String>,
    pub at: SystemTime,
    /// `device:<id>` or `clerk:<name>`.
    pub actor: String,
    pub note: String,
    /// Recorded by the checklist step, if any.
    pub step: Option<String>,
    pub synced: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct HeldPart {
    pub part_number: String,
    pub serial: Option<String>,
    pub quantity: u32,
    pub order_id: Option<String>,
    pub faulty: bool,
    pub clerk_confirmed: bool,
    pub since: SystemTime,
}

#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ReturnedPart {
    pub part_number: String,
    pub serial: Option<String>,
    pub quantity: u32,
    pub order_id: Option<String>,
    pub faulty: bool,
    pub returned_at: SystemTime,
}

/// The parts screen: what the engineer holds, returns awaiting the clerk, anomalies.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct PartsLedger {
    pub held: Vec<HeldPart>,
    pub pending_returns: Vec<ReturnedPart>,
    pub anomalies: Vec<String>,
    pub policy: BorrowRule,
}

#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct PartsCloseout {
    pub order_id: String,
    /// True when the order owes nothing: the coordinator may close it out.
    pub clear: bool,
    pub held: Vec<HeldPart>,
    pub pending_returns: Vec<ReturnedPart>,
}

/// How strictly "前件不还后件不借" applies (docs/adr/0011).
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum BorrowRule {
    Strict,
    Tolerance { max: u32 },
    Off,
}

#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct PartMovementRequest {
    pub kind: PartMovementKind,
    pub part_number: String,
    pub serial: Option<String>,
    pub quantity: u32,
    pub order_id: Option<String>,
    pub removed_serial: Option<String>,
    pub note: String,
}

fn ms(t: i64) -> SystemTime {
    to_time(onsite_core::order::Timestamp(t))
}

fn held(h: &parts::Held) -> HeldPart {
    HeldPart {
        part_number: h.part_number.clone(),
        serial: h.serial.clone(),
        quantity: h.quantity,
        order_id: h.order_id.clone(),
        faulty: h.faulty,
        clerk_confirmed: h.clerk_confirmed,
        since: ms(h.since_ms),
    }
}

fn returned(p: &parts::PendingReturn) -> ReturnedPart {
    ReturnedPart {
        part_number: p.part_number.clone(),
        serial: p.serial.clone(),
        quantity: p.quantity,
        order_id: p.order_id.clone(),
        faulty: p.faulty,
        returned_at: ms(p.returned_at_ms),
    }
}

fn movement(m: &parts::Movement, step: Option<String>, synced: bool) -> PartMovement {
    PartMovement {
        id: m.id.clone(),
        kind: m.kind.into(),
        part_number: m.part_number.clone(),
        serial: m.serial.clone(),
        quantity: m.quantity,
        order_id: m.order_id.clone(),
        removed_serial: m.removed_serial.clone(),
        at: ms(m.at_ms),
        actor: m.actor.clone(),
        note: m.note.clone(),
        step,
        synced,
    }
}

/// The engineer's spare-part ledger.
#[derive(uniffi::Object)]
pub struct PartsApi {
    pub(crate) device: Handle,
}

#[uniffi::export]
impl PartsApi {
    /// Records a borrow or a return at the clerk's desk (installs come from the checklist's
    /// parts step, or here). Refused with `PartsOutstanding` by the borrow rule, `Conflict`
    /// when custody does not allow it (a serial not held, more than held).
    pub fn record(&self, request: PartMovementRequest) -> Result<PartMovement, ApiError> {
        let kind = match request.kind {
            PartMovementKind::Borrow => parts::Kind::Borrow,
            PartMovementKind::Install => parts::Kind::Install,
            PartMovementKind::Return => parts::Kind::Return,
            PartMovementKind::ClerkIssue | PartMovementKind::ClerkReceive => {
                return Err(ApiError::InvalidInput { field: "kind".into(), reason: "clerk records come from the clerk, through sync".into() })
            }
        };
        let m = self.device.get()?.record_part(onsite_core::device::MovementInput {
            kind,
            part_number: request.part_number,
            serial: request.serial,
            quantity: request.quantity,
            order_id: request.order_id,
            removed_serial: request.removed_serial,
            note: request.note,
        })?;
        Ok(movement(&m, None, false))
    }

    pub fn ledger(&self) -> Result<PartsLedger, ApiError> {
        let device = self.device.get()?;
        let l = device.ledger()?;
        Ok(PartsLedger {
            held: l.held().into_iter().map(held).collect(),
            pending_returns: l.pending_returns.iter().map(returned).collect(),
            anomalies: l.anomalies.clone(),
            policy: self.policy()?,
        })
    }

    /// Every movement this device knows (its own and the clerk's), oldest first.
    pub fn movements(&self) -> Result<Vec<PartMovement>, ApiError> {
        Ok(self.device.get()?.part_movements()?.into_iter().map(|r| movement(&r.movement, r.step, r.synced)).collect())
    }

    /// What an order still owes before the coordinator may close it out.
    pub fn closeout(&self, order_id: String) -> Result<PartsCloseout, ApiError> {
        let c = self.device.get()?.closeout(&order_id)?;
        Ok(PartsCloseout {
            clear: c.is_clear(),
            held: c.held.iter().map(held).collect(),
            pending_returns: c.pending_returns.iter().map(returned).collect(),
            order_id: c.order_id,
        })
    }

    pub fn policy(&self) -> Result<BorrowRule, ApiError> {
        Ok(match self.device.get()?.borrow_policy()? {
            parts::BorrowPolicy::Strict => BorrowRule::Strict,
            parts::BorrowPolicy::Tolerance { max } => BorrowRule::Tolerance { max },
            parts::BorrowPolicy::Off => BorrowRule::Off,
        })
    }

    /// Sets the provider's borrow rule on this device (enforced offline too).
    pub fn set_policy(&self, rule: BorrowRule) -> Result<(), ApiError> {
        let p = match rule {
            BorrowRule::Strict => parts::BorrowPolicy::Strict,
            BorrowRule::Tolerance { max } => parts::BorrowPolicy::Tolerance { max },
            BorrowRule::Off => parts::BorrowPolicy::Off,
        };
        Ok(self.device.get()?.set_borrow_policy(p)?)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct HelpQuestion {
    pub question: String,
    /// The checklist step the question concerns.
    pub step_id: Option<String>,
    /// SHA-256 of this order's photos to share.
    pub photos: Vec<String>,
    pub include_fault: bool,
    pub include_notes: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct HelpRequestInfo {
    pub id: String,
    pub at: SystemTime,
    pub question: String,
    pub step_id: Option<String>,
    pub photos: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct HelpAnswerInfo {
    /// `routed`, `unrouted` or `answer`.
    pub kind: String,
    pub at: SystemTime,
    pub expert_id: String,
    pub expert_name: String,
    pub text: String,
    /// Reference photos (SHA-256; `evidence().blob(sha)` once synced).
    pub reference_photos: Vec<String>,
    pub suggested_steps: Vec<String>,
    /// The step the answer concerns: show it with that step.
    pub step_id: Option<String>,
    pub cost_cents: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct HelpThread {
    pub request: HelpRequestInfo,
    pub answers: Vec<HelpAnswerInfo>,
    /// Sent to the server (the order has no unsent edits).
    pub sent: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct HelpCost {
    pub order_id: String,
    pub request_id: String,
    pub expert_id: String,
    pub expert_name: String,
    pub cost_cents: i64,
    pub at: SystemTime,
}

/// Expert help from an order (seed 000 专家求助).
#[derive(uniffi::Object)]
pub struct HelpApi {
    pub(crate) device: Handle,
}

#[uniffi::export]
impl HelpApi {
    /// Asks for help; queued in the order and sent by the next sync (works offline).
    pub fn ask(&self, order_id: String, question: HelpQuestion) -> Result<HelpRequestInfo, ApiError> {
        let r = self.device.get()?.ask_help(
            &order_id,
            &onsite_core::device::HelpQuestion {
                question: question.question,
                step: question.step_id,
                photos: question.photos,
                include_fault: question.include_fault,
                include_notes: question.include_notes,
            },
        )?;
        Ok(HelpRequestInfo { id: r.id, at: ms(r.at.0), question: r.question, step_id: r.step, photos: r.photos })
    }

    /// The order's requests with what came back, oldest first.
    pub fn threads(&self, order_id: String) -> Result<Vec<HelpThread>, ApiError> {
        threads(&*self.device.get()?, &order_id)
    }

    /// Answered requests' costs across the orders on this device (reimbursement claim).
    pub fn costs(&self) -> Result<Vec<HelpCost>, ApiError> {
        Ok(self
            .device
            .get()?
            .help_costs()?
            .into_iter()
            .map(|c| HelpCost { order_id: c.order_id, request_id: c.request_id, expert_id: c.expert_id, expert_name: c.expert_name, cost_cents: c.cost_cents, at: ms(c.at.0) })
            .collect())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct CategoryCount {
    pub name: String,
    pub orders: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ServiceSummary {
    pub engineer_id: String,
    pub orders: u32,
    pub by_category: Vec<CategoryCount>,
    pub faults_solved: Vec<CategoryCount>,
    pub first_time_fix_permille: u32,
    pub rated: u32,
    /// Average rating ×100.
    pub rating_avg_centi: u32,
    pub work_minutes_median: Option<i64>,
    pub help_requests: u32,
    /// Orders whose receipt the provider's log holds.
    pub logged: u32,
    /// Highest certified level (1-5, seed 001), if any.
    pub level: Option<u8>,
    pub level_title: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct RecordVerification {
    pub ok: bool,
    pub engineer_id: Option<String>,
    pub orders: u32,
    pub logged: u32,
    pub level: Option<u8>,
    pub text: String,
}

/// The engineer's digital résumé (seed 000 数字化履历).
#[derive(uniffi::Object)]
pub struct ProfileApi {
    pub(crate) device: Handle,
}

#[uniffi::export]
impl ProfileApi {
    /// The figures, computed from completed orders with signed receipts only.
    pub fn summary(&self) -> Result<ServiceSummary, ApiError> {
        let device = self.device.get()?;
        let r = device.service_record()?;
        let log_key = r.log_key.as_deref().and_then(onsite_core::hash::unhex);
        let level = log_key
            .and_then(|k| r.certifications.iter().filter_map(|c| c.verify(&k).ok()).filter(|c| c.engineer == r.engineer).map(|c| (c.level, c.title)).max());
        let a = r.aggregates;
        let counts = |m: std::collections::BTreeMap<String, u32>| m.into_iter().map(|(name, orders)| CategoryCount { name, orders }).collect();
        Ok(ServiceSummary {
            engineer_id: r.engineer,
            orders: a.orders,
            by_category: counts(a.by_category),
            faults_solved: counts(a.faults_solved),
            first_time_fix_permille: a.first_time_fix_permille,
            rated: a.rated,
            rating_avg_centi: a.rating_avg_centi,
            work_minutes_median: a.work_minutes_median,
            help_requests: a.help_requests,
            logged: a.logged,
            level: level.as_ref().map(|(l, _)| *l),
            level_title: level.map(|(_, t)| t),
        })
    }

    /// Writes the signed service record (JSON) to `path`; another provider checks it with
    /// `verify_service_record` or `onsite verify --record`.
    pub fn export(&self, path: String) -> Result<u32, ApiError> {
        let signed = self.device.get()?.export_service_record(std::path::Path::new(&path))?;
        Ok(signed.record.orders.len() as u32)
    }
}

/// Verifies a service record file. `device_key` pins the signing device; `log_key` (the
/// provider's) requires every order to be proven in its log and checks certifications.
#[uniffi::export]
pub fn verify_service_record(path: String, device_key: Option<Vec<u8>>, log_key: Option<Vec<u8>>) -> RecordVerification {
    let bytes = std::fs::read(&path).unwrap_or_default();
    let r = onsite_core::profile::verify_record(&bytes, &onsite_core::profile::VerifyOptions { device_key, log_key });
    RecordVerification { ok: r.ok, engineer_id: r.engineer, orders: r.orders, logged: r.logged, level: r.level, text: r.text }
}

/// Help threads of an order, for `help().threads` and the order screen.
pub(crate) fn threads(device: &onsite_core::Device, order_id: &str) -> Result<Vec<HelpThread>, ApiError> {
    let sent = !device.store().pending_docs()?.iter().any(|p| p.id == order_id);
    Ok(device
        .help_threads(order_id)?
        .into_iter()
        .map(|t| HelpThread {
            request: HelpRequestInfo { id: t.request.id, at: ms(t.request.at.0), question: t.request.question, step_id: t.request.step, photos: t.request.photos },
            answers: t
                .answers
                .into_iter()
                .map(|a| HelpAnswerInfo {
                    kind: a.kind,
                    at: ms(a.at.0),
                    expert_id: a.expert_id,
                    expert_name: a.expert_name,
                    text: a.text,
                    reference_photos: a.reference_photos,
                    suggested_steps: a.suggested_steps,
                    step_id: a.step,
                    cost_cents: a.cost_cents,
                })
                .collect(),
            sent,
        })
        .collect())
}

pub(crate) fn handles(device: &Arc<onsite_core::Device>) -> (Arc<PartsApi>, Arc<HelpApi>, Arc<ProfileApi>) {
    let h = || Handle(Arc::downgrade(device));
    (Arc::new(PartsApi { device: h() }), Arc::new(HelpApi { device: h() }), Arc::new(ProfileApi { device: h() }))
}
