//! The engineer's spare-part ledger on the device (see `crate::parts`, docs/adr/0011).

use super::Device;
use crate::parts::{BorrowPolicy, Held, Kind, Ledger, Movement, PendingReturn};
use crate::sop::{LedgerRole, PartUse};
use crate::store::parts_store::MovementRow;
use crate::store::MetaKey;
use crate::Result;

/// The engineer of a device not enrolled with a provider.
pub const LOCAL_ENGINEER: &str = "local";

/// A movement the engineer records outside a checklist (at the clerk's desk).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MovementInput {
    pub kind: Kind,
    pub part_number: String,
    pub serial: Option<String>,
    pub quantity: u32,
    pub order_id: Option<String>,
    pub removed_serial: Option<String>,
    pub note: String,
}

/// What an order still owes before the coordinator may close it out.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Closeout {
    pub order_id: String,
    pub held: Vec<Held>,
    pub pending_returns: Vec<PendingReturn>,
}

impl Closeout {
    pub fn is_clear(&self) -> bool {
        self.held.is_empty() && self.pending_returns.is_empty()
    }

    /// What the order still owes before close-out: parts held plus returns not received.
    pub fn owed(&self) -> usize {
        self.held.len() + self.pending_returns.len()
    }
}

impl Device {
    /// The engineer this device works for (after enrolment), else `local`.
    pub fn engineer_id(&self) -> Result<String> {
        Ok(self.store.meta(MetaKey::SyncEngineer)?.unwrap_or_else(|| LOCAL_ENGINEER.into()))
    }

    pub fn borrow_policy(&self) -> Result<BorrowPolicy> {
        // No policy set: the default rule (docs/adr/0011).
        Ok(self.store.meta_json(MetaKey::PartsBorrowPolicy)?.unwrap_or_default())
    }

    pub fn set_borrow_policy(&self, policy: BorrowPolicy) -> Result<()> {
        let json = serde_json::to_string(&policy).map_err(|e| crate::parts::Error::Invalid { field: "policy".into(), reason: e.to_string() })?;
        Ok(self.store.set_meta(MetaKey::PartsBorrowPolicy, &json)?)
    }

    pub(crate) fn new_movement_id(&self) -> String {
        let mut b = [0u8; 8];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut b);
        format!("{}-{}", &self.device_id()[..self.device_id().len().min(8)], crate::hash::hex(&b))
    }

    fn movement(&self, input: MovementInput, engineer: &str, at_ms: i64) -> Movement {
        Movement {
            id: self.new_movement_id(),
            kind: input.kind,
            engineer: engineer.to_string(),
            part_number: input.part_number.trim().to_string(),
            serial: input.serial.map(|s| s.trim().to_string()).filter(|s| !s.is_empty()),
            quantity: input.quantity,
            order_id: input.order_id,
            removed_serial: input.removed_serial.map(|s| s.trim().to_string()).filter(|s| !s.is_empty()),
            at_ms,
            actor: format!("device:{}", self.device_id()),
            note: input.note,
            lamport: 0,
        }
    }

    /// Records a movement made at the clerk's desk (a borrow, a return) or by hand. Checked
    /// against custody and the borrow policy; sealed by a journal entry.
    pub fn record_part(&self, input: MovementInput) -> Result<Movement> {
        if let Some(order) = &input.order_id {
            self.store.get(order)?;
        }
        let stamp = self.stamp();
        let m = self.movement(input, &self.engineer_id()?, stamp.at_ms);
        self.store.record_movements(stamp, std::slice::from_ref(&m), self.borrow_policy()?)?;
        let m = self.store.movements()?.into_iter().rev().find(|r| r.movement.id == m.id).map(|r| r.movement).unwrap_or(m);
        tracing::info!(kind = m.kind.as_str(), part = %m.part_number, serial = ?m.serial, order = ?m.order_id, "part movement");
        if let Some(order) = &m.order_id {
            self.changed(order, crate::changes::ChangeOrigin::Local);
        }
        Ok(m)
    }

    pub fn ledger(&self) -> Result<Ledger> {
        Ok(self.store.ledger()?)
    }

    pub fn part_movements(&self) -> Result<Vec<MovementRow>> {
        Ok(self.store.movements()?)
    }

    /// Parts an order still owes: held for it, or returned but not yet received by the clerk.
    pub fn closeout(&self, order_id: &str) -> Result<Closeout> {
        self.store.get(order_id)?;
        self.closeout_of(order_id)
    }

    /// [`Device::closeout`] for an order already known to exist (no document load).
    pub(crate) fn closeout_of(&self, order_id: &str) -> Result<Closeout> {
        let ledger = self.store.ledger()?;
        let (held, pending) = ledger.unaccounted(order_id);
        Ok(Closeout { order_id: order_id.to_string(), held: held.into_iter().cloned().collect(), pending_returns: pending.into_iter().cloned().collect() })
    }

    /// The movements a parts-step answer records: one per listed part not already recorded
    /// by an earlier answer to the same step (a correction adds, it never un-happens a
    /// movement: to undo a borrow, return the part).
    /// Runs inside the answer's write: it must not take the writer lock (no `meta` reads).
    pub(crate) fn movements_for_answer(
        &self,
        order_id: &str,
        step: &str,
        role: LedgerRole,
        parts: &[PartUse],
        engineer: &str,
        at_ms: i64,
    ) -> Result<Vec<Movement>> {
        let done = self.store.step_movements(order_id, step)?;
        // The writer lock is held by the answer's edit: committed state is the latest.
        let base = self.store.max_lamport()?;
        let mut out = Vec::new();
        for p in parts {
            let already =
                done.iter().chain(out.iter()).any(|m: &Movement| m.serial.as_deref() == Some(p.serial.trim()) && m.part_number == p.part_number.trim());
            if already {
                continue;
            }
            let input = MovementInput {
                kind: role.kind(),
                part_number: p.part_number.clone(),
                serial: Some(p.serial.clone()),
                quantity: p.quantity,
                order_id: Some(order_id.to_string()),
                removed_serial: if role == LedgerRole::Install { p.returned_serial.clone() } else { None },
                note: format!("checklist step {step}"),
            };
            let mut m = self.movement(input, engineer, at_ms);
            m.lamport = base + 1 + out.len() as u64;
            out.push(m);
        }
        Ok(out)
    }
}
