//! The spare-part ledger on the server: device movements in and out, the clerk's records,
//! the ledger view and close-out.

use onsite_core::order::Status;
use onsite_core::parts::{Kind, Ledger, Movement};
use onsite_core::profile::SignedCertification;
use onsite_core::sync::protocol::{PartsSyncRequest, PartsSyncResponse};
use serde::{Deserialize, Serialize};

use super::{internal, random_hex, Error, Result, Service};
use crate::storage::{CertificationRow, DeviceRow, MovementRecord, StoredMovement};

/// What the parts clerk records (through the dispatcher API).
#[derive(Debug, Clone, Deserialize)]
pub struct ClerkMovement {
    pub engineer_id: String,
    /// `issue` (handed out) or `receive` (got back).
    pub kind: String,
    pub part_number: String,
    #[serde(default)]
    pub serial: Option<String>,
    #[serde(default = "one")]
    pub quantity: u32,
    #[serde(default)]
    pub order_id: Option<String>,
    pub clerk: String,
    #[serde(default)]
    pub note: String,
}

fn one() -> u32 {
    1
}

/// The closeout refusal: what an order still owes.
#[derive(Debug, Clone, Serialize)]
pub struct Unaccounted {
    pub held: Vec<onsite_core::parts::Held>,
    pub pending_returns: Vec<onsite_core::parts::PendingReturn>,
}

impl Service {
    /// A device's movements in, the engineer's other movements and certifications out.
    pub fn parts_sync(&self, device: &DeviceRow, req: PartsSyncRequest) -> Result<PartsSyncResponse> {
        let author = format!("device:{}", device.id);
        let mut rows = Vec::new();
        for m in &req.movements {
            m.validate().map_err(|e| Error::BadRequest(e.to_string()))?;
            if m.engineer != device.engineer_id || m.actor != author || m.kind.is_clerk() {
                return Err(Error::Forbidden(format!("movement {} is not this device's to record", m.id)));
            }
            let body = serde_json::to_string(m).map_err(internal)?;
            rows.push(MovementRecord { id: m.id.clone(), order_id: m.order_id.clone(), author: author.clone(), body });
        }
        self.storage.add_movements(&device.provider, &device.engineer_id, &rows)?;
        let mut cursor = req.cursor;
        let mut movements = Vec::new();
        for StoredMovement { seq, body } in self.storage.movements_after(&device.provider, &device.engineer_id, req.cursor)? {
            cursor = cursor.max(seq);
            let m: Movement = serde_json::from_str(&body).map_err(internal)?;
            if m.actor != author {
                movements.push(m);
            }
        }
        let all = self.storage.certifications(&device.provider, &device.engineer_id)?;
        let certifications = if all.len() as u32 == req.certs_known {
            Vec::new()
        } else {
            all.into_iter().map(|CertificationRow { body, signature, .. }| SignedCertification { body, signature }).collect()
        };
        Ok(PartsSyncResponse { cursor, acked: req.movements.iter().map(|m| m.id.clone()).collect(), movements, certifications })
    }

    /// The clerk hands a part out or takes one back. Clerk records are never refused for
    /// custody (they are what happened at the desk); contradictions show as anomalies.
    pub fn clerk_movement(&self, provider: &str, input: ClerkMovement) -> Result<Movement> {
        let kind = match input.kind.as_str() {
            "issue" => Kind::ClerkIssue,
            "receive" => Kind::ClerkReceive,
            _ => return Err(Error::BadRequest("kind is issue or receive".into())),
        };
        if input.clerk.trim().is_empty() || input.engineer_id.trim().is_empty() {
            return Err(Error::BadRequest("clerk and engineer_id are required".into()));
        }
        let m = Movement {
            id: format!("clerk-{}", random_hex(8)),
            kind,
            engineer: input.engineer_id.clone(),
            part_number: input.part_number.trim().to_string(),
            serial: input.serial.map(|s| s.trim().to_string()).filter(|s| !s.is_empty()),
            quantity: input.quantity,
            order_id: input.order_id,
            removed_serial: None,
            at_ms: self.now_ms(),
            actor: format!("clerk:{}", input.clerk.trim()),
            note: input.note,
            lamport: 0,
        };
        // After everything the server knows of this engineer's ledger.
        let known = self.movements(provider, &input.engineer_id)?;
        let lamport = known.iter().map(|m| m.lamport).max().unwrap_or(0) + 1;
        let m = Movement { lamport, ..m };
        m.validate().map_err(|e| Error::BadRequest(e.to_string()))?;
        let body = serde_json::to_string(&m).map_err(internal)?;
        let record = MovementRecord { id: m.id.clone(), order_id: m.order_id.clone(), author: m.actor.clone(), body };
        self.storage.add_movements(provider, &m.engineer, &[record])?;
        Ok(m)
    }

    pub fn parts_ledger(&self, provider: &str, engineer: &str) -> Result<Ledger> {
        Ok(Ledger::replay(self.movements(provider, engineer)?.iter()))
    }

    /// Every stored movement of an engineer; one that no longer parses is an error.
    fn movements(&self, provider: &str, engineer: &str) -> Result<Vec<Movement>> {
        let rows = self.storage.movements_after(provider, engineer, 0)?;
        rows.iter().map(|r| serde_json::from_str(&r.body).map_err(|e| internal(format!("stored movement {}: {e}", r.seq)))).collect()
    }

    /// The coordinator confirms the order done (seed 003: only after the parts are back):
    /// refused while the order is not completed or its engineer's ledger still holds parts
    /// for it, or returns the clerk has not received.
    pub fn close_order(&self, provider: &str, order_id: &str, by: &str) -> Result<i64> {
        let order = self.order(provider, order_id)?;
        if order.status != Status::Completed {
            return Err(Error::Conflict { reason: format!("the order is {}, not completed", order.status), acked_seq: None, offset: None });
        }
        if let Some(at) = self.storage.closeout(provider, order_id)? {
            return Ok(at);
        }
        let ledger = self.parts_ledger(provider, &order.engineer.id)?;
        let (held, pending) = ledger.unaccounted(order_id);
        if !held.is_empty() || !pending.is_empty() {
            let owed = Unaccounted { held: held.into_iter().cloned().collect(), pending_returns: pending.into_iter().cloned().collect() };
            return Err(Error::Conflict {
                reason: format!("parts not accounted for: {}", serde_json::to_string(&owed).unwrap_or_default()),
                acked_seq: None,
                offset: None,
            });
        }
        let at = self.now_ms();
        self.storage.close_order(provider, order_id, at, by)?;
        Ok(at)
    }

    pub fn closeout(&self, provider: &str, order_id: &str) -> Result<Option<i64>> {
        Ok(self.storage.closeout(provider, order_id)?)
    }
}
