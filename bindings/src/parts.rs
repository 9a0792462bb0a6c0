//! `parts()`: the engineer's spare-part ledger (备件借用) at the boundary.

use std::time::SystemTime;

use onsite_core::parts;

use crate::onsite::Handle;
use crate::orders::ms_to_time;
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

fn held(h: &parts::Held) -> HeldPart {
    HeldPart {
        part_number: h.part_number.clone(),
        serial: h.serial.clone(),
        quantity: h.quantity,
        order_id: h.order_id.clone(),
        faulty: h.faulty,
        clerk_confirmed: h.clerk_confirmed,
        since: ms_to_time(h.since_ms),
    }
}

fn returned(p: &parts::PendingReturn) -> ReturnedPart {
    ReturnedPart {
        part_number: p.part_number.clone(),
        serial: p.serial.clone(),
        quantity: p.quantity,
        order_id: p.order_id.clone(),
        faulty: p.faulty,
        returned_at: ms_to_time(p.returned_at_ms),
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
        at: ms_to_time(m.at_ms),
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
