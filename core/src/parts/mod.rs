//! Spare-part custody (seed 003: 备件借用, "前件不还后件不借").
//!
//! Every movement of a part between the spare-parts clerk, the engineer and a customer's
//! machine is a [`Movement`]: recorded on the device (as a signed journal entry, in the same
//! transaction as its row), or by the clerk on the server and merged in through sync. The
//! ledger is the fold of all movements in time order ([`Ledger::replay`]); merging two
//! replicas is the union of their movements (ids are unique), so it commutes and repeats
//! harmlessly.
//!
//! Local movements are checked before they are recorded ([`Ledger::check`]): custody at the
//! serial level, stock never negative, and the borrow policy (docs/adr/0011). Movements
//! from elsewhere are never refused (they happened); the fold applies what it can and lists
//! the rest as anomalies for the clerk to resolve.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("invalid `{field}`: {reason}")]
    Invalid { field: String, reason: String },
    /// The borrow policy refuses a new borrow while earlier parts are unaccounted for.
    #[error("borrow refused (前件不还后件不借): {outstanding} part(s) of earlier orders not returned, first {first}")]
    BorrowRefused { outstanding: u32, first: String },
    /// Custody or stock would be wrong: a serial not held, a quantity above what is held.
    #[error("{0}")]
    Custody(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// The engineer takes a good part from the clerk, for an order.
    Borrow,
    /// The part is fitted to the customer's machine on an order; the removed part (if any,
    /// `removed_serial`) enters the engineer's custody as faulty, to be returned.
    Install,
    /// The engineer hands a part back to the clerk (a good unused one or a faulty one).
    Return,
    /// The clerk's record of handing a part out (confirms a borrow, or is one).
    ClerkIssue,
    /// The clerk's record of receiving a part back (confirms a return, or is one).
    ClerkReceive,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Borrow => "borrow",
            Kind::Install => "install",
            Kind::Return => "return",
            Kind::ClerkIssue => "clerk_issue",
            Kind::ClerkReceive => "clerk_receive",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "borrow" => Kind::Borrow,
            "install" => Kind::Install,
            "return" => Kind::Return,
            "clerk_issue" => Kind::ClerkIssue,
            "clerk_receive" => Kind::ClerkReceive,
            _ => return None,
        })
    }

    pub fn is_clerk(self) -> bool {
        matches!(self, Kind::ClerkIssue | Kind::ClerkReceive)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Movement {
    /// Unique across replicas (device id + random, or the server's id for clerk records).
    pub id: String,
    pub kind: Kind,
    pub engineer: String,
    pub part_number: String,
    /// `None` for parts without a serial (screws, thermal pads): counted by quantity.
    pub serial: Option<String>,
    pub quantity: u32,
    pub order_id: Option<String>,
    /// For `Install`: the serial of the part taken out of the machine (faulty).
    pub removed_serial: Option<String>,
    pub at_ms: i64,
    /// `device:<id>` or `clerk:<name>`.
    pub actor: String,
    #[serde(default)]
    pub note: String,
    /// Lamport clock: one more than the highest the recorder had seen. The fold orders by
    /// it, so each recorder's own sequence holds even when wall clocks disagree or repeat.
    #[serde(default)]
    pub lamport: u64,
}

/// What the engineer holds of one part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Held {
    pub part_number: String,
    pub serial: Option<String>,
    pub quantity: u32,
    /// The order it was borrowed for (or removed on).
    pub order_id: Option<String>,
    pub faulty: bool,
    /// The clerk has recorded handing it out (for faulty parts: n/a).
    pub clerk_confirmed: bool,
    pub since_ms: i64,
}

/// A return the clerk has not recorded receiving yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PendingReturn {
    pub part_number: String,
    pub serial: Option<String>,
    pub quantity: u32,
    pub order_id: Option<String>,
    pub faulty: bool,
    pub returned_at_ms: i64,
}

/// How strictly "前件不还后件不借" is applied (docs/adr/0011).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
#[derive(Default)]
pub enum BorrowPolicy {
    /// No borrow for an order while any part tied to another order is still held.
    #[default]
    Strict,
    /// As strict, tolerating up to `max` held parts of other orders.
    Tolerance { max: u32 },
    /// No check (a provider that does not apply the rule).
    Off,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Ledger {
    /// Serial-level custody: serial -> what is held.
    pub serials: BTreeMap<String, Held>,
    /// Parts without serial: (part number, order) -> held.
    pub bulk: BTreeMap<(String, Option<String>), Held>,
    /// Installed serials: serial -> order.
    pub installed: BTreeMap<String, Option<String>>,
    pub pending_returns: Vec<PendingReturn>,
    /// Movements the fold could not apply (remote records that contradict custody).
    pub anomalies: Vec<String>,
    /// The highest Lamport clock folded in: a new local movement takes the next one.
    pub max_lamport: u64,
}

fn custody(msg: impl Into<String>) -> Error {
    Error::Custody(msg.into())
}

fn invalid(field: &str, reason: &str) -> Error {
    Error::Invalid { field: field.into(), reason: reason.into() }
}

impl Movement {
    /// Shape checks that do not depend on the ledger.
    pub fn validate(&self) -> Result<(), Error> {
        let pn = self.part_number.trim();
        if pn.is_empty() || pn.len() > 64 {
            return Err(invalid("part_number", "1 to 64 characters"));
        }
        if let Some(s) = &self.serial {
            if s.trim().is_empty() || s.len() > 64 {
                return Err(invalid("serial", "1 to 64 characters, or none for parts without serial"));
            }
            if self.quantity != 1 {
                return Err(invalid("quantity", "a serialized part moves one at a time"));
            }
        }
        if self.quantity == 0 || self.quantity > 1000 {
            return Err(invalid("quantity", "1 to 1000"));
        }
        if self.removed_serial.is_some() && self.kind != Kind::Install {
            return Err(invalid("removed_serial", "only an install removes a part"));
        }
        if matches!(self.kind, Kind::Borrow | Kind::Install) && self.order_id.is_none() {
            return Err(invalid("order_id", "a borrow or an install is for an order"));
        }
        Ok(())
    }
}

impl Ledger {
    /// Folds movements in (Lamport clock, time, id) order: the same order on every replica.
    /// Never fails: contradictions become anomalies.
    pub fn replay<'a>(movements: impl IntoIterator<Item = &'a Movement>) -> Ledger {
        let mut all: Vec<&Movement> = movements.into_iter().collect();
        all.sort_by(|a, b| a.lamport.cmp(&b.lamport).then_with(|| a.at_ms.cmp(&b.at_ms)).then_with(|| a.id.cmp(&b.id)));
        let mut l = Ledger::default();
        for m in all {
            l.max_lamport = l.max_lamport.max(m.lamport);
            if let Err(e) = l.apply(m) {
                l.anomalies.push(format!("{} {} ({}): {e}", m.kind.as_str(), m.serial.as_deref().unwrap_or(&m.part_number), m.id));
            }
        }
        l
    }

    /// Applies one movement, or says why it does not fit (the ledger is then unchanged).
    pub fn apply(&mut self, m: &Movement) -> Result<(), Error> {
        self.apply_inner(m)?;
        self.max_lamport = self.max_lamport.max(m.lamport);
        Ok(())
    }

    fn apply_inner(&mut self, m: &Movement) -> Result<(), Error> {
        m.validate()?;
        match (m.kind, &m.serial) {
            (Kind::Borrow | Kind::ClerkIssue, Some(serial)) => {
                if let Some(h) = self.serials.get_mut(serial) {
                    // The other party's record of the same hand-out confirms it.
                    if !h.faulty && h.order_id == m.order_id && (m.kind == Kind::ClerkIssue) != h.clerk_confirmed {
                        h.clerk_confirmed = true;
                        return Ok(());
                    }
                    return Err(custody(format!("serial {serial} is already held")));
                }
                if self.installed.contains_key(serial) {
                    return Err(custody(format!("serial {serial} is installed in a customer's machine")));
                }
                self.serials.insert(serial.clone(), held(m, false, m.kind == Kind::ClerkIssue));
            }
            (Kind::Borrow | Kind::ClerkIssue, None) => {
                let key = (m.part_number.clone(), m.order_id.clone());
                let h = self.bulk.entry(key).or_insert_with(|| Held { quantity: 0, ..held(m, false, false) });
                h.quantity += m.quantity;
                h.clerk_confirmed |= m.kind == Kind::ClerkIssue;
            }
            (Kind::Install, Some(serial)) => {
                let h = self.serials.get(serial).ok_or_else(|| custody(format!("serial {serial} is not held by the engineer")))?;
                if h.faulty {
                    return Err(custody(format!("serial {serial} is a faulty part")));
                }
                if let Some(removed) = &m.removed_serial {
                    if self.serials.contains_key(removed) || removed == serial {
                        return Err(custody(format!("removed serial {removed} is already held")));
                    }
                }
                self.serials.remove(serial);
                self.installed.insert(serial.clone(), m.order_id.clone());
                if let Some(removed) = &m.removed_serial {
                    let faulty = Held { serial: Some(removed.clone()), faulty: true, clerk_confirmed: false, ..held(m, true, false) };
                    self.serials.insert(removed.clone(), faulty);
                }
            }
            (Kind::Install, None) => {
                let key = (m.part_number.clone(), m.order_id.clone());
                let have = self.bulk_held(&m.part_number, m.order_id.as_deref());
                if have < m.quantity {
                    return Err(custody(format!("only {have} of {} held for this order", m.part_number)));
                }
                let h = self.bulk.get_mut(&key).ok_or_else(|| custody("bulk entry vanished"))?;
                h.quantity -= m.quantity;
                if h.quantity == 0 {
                    self.bulk.remove(&key);
                }
            }
            (Kind::Return, Some(serial)) => {
                let h = self.serials.remove(serial).ok_or_else(|| custody(format!("serial {serial} is not held by the engineer")))?;
                self.pending_returns.push(PendingReturn {
                    part_number: h.part_number,
                    serial: Some(serial.clone()),
                    quantity: 1,
                    order_id: h.order_id,
                    faulty: h.faulty,
                    returned_at_ms: m.at_ms,
                });
            }
            (Kind::Return, None) => {
                let key = self
                    .bulk
                    .iter()
                    .find(|((pn, order), h)| *pn == m.part_number && (m.order_id.is_none() || *order == m.order_id) && h.quantity >= m.quantity)
                    .map(|(k, _)| k.clone())
                    .ok_or_else(|| custody(format!("fewer than {} of {} held", m.quantity, m.part_number)))?;
                let h = self.bulk.get_mut(&key).ok_or_else(|| custody("bulk entry vanished"))?;
                h.quantity -= m.quantity;
                let order_id = key.1.clone();
                if h.quantity == 0 {
                    self.bulk.remove(&key);
                }
                self.pending_returns.push(PendingReturn {
                    part_number: m.part_number.clone(),
                    serial: None,
                    quantity: m.quantity,
                    order_id,
                    faulty: false,
                    returned_at_ms: m.at_ms,
                });
            }
            (Kind::ClerkReceive, serial) => {
                // Confirms a pending return; a receive with nothing pending takes the part
                // out of the engineer's hands directly (the clerk saw it come back).
                let pos = self.pending_returns.iter().position(|p| p.serial == *serial && p.part_number == m.part_number);
                match (pos, serial) {
                    (Some(i), _) => {
                        let p = &mut self.pending_returns[i];
                        if p.quantity > m.quantity && serial.is_none() {
                            p.quantity -= m.quantity;
                        } else {
                            self.pending_returns.remove(i);
                        }
                    }
                    (None, Some(s)) => {
                        self.serials.remove(s).ok_or_else(|| custody(format!("serial {s} was neither held nor returned")))?;
                    }
                    (None, None) => {
                        let key = self
                            .bulk
                            .iter()
                            .find(|((pn, _), h)| *pn == m.part_number && h.quantity >= m.quantity)
                            .map(|(k, _)| k.clone())
                            .ok_or_else(|| custody(format!("fewer than {} of {} held or returned", m.quantity, m.part_number)))?;
                        if let Some(h) = self.bulk.get_mut(&key) {
                            h.quantity -= m.quantity;
                            if h.quantity == 0 {
                                self.bulk.remove(&key);
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn bulk_held(&self, part_number: &str, order: Option<&str>) -> u32 {
        self.bulk.iter().filter(|((pn, o), _)| pn == part_number && o.as_deref() == order).map(|(_, h)| h.quantity).sum()
    }

    /// Everything the engineer holds, serials first.
    pub fn held(&self) -> Vec<&Held> {
        self.serials.values().chain(self.bulk.values()).collect()
    }

    /// What an order still owes: parts held for it, and returns the clerk has not received.
    pub fn unaccounted(&self, order_id: &str) -> (Vec<&Held>, Vec<&PendingReturn>) {
        let held = self.held().into_iter().filter(|h| h.order_id.as_deref() == Some(order_id)).collect();
        let pending = self.pending_returns.iter().filter(|p| p.order_id.as_deref() == Some(order_id)).collect();
        (held, pending)
    }

    /// Checks a movement the engineer is about to record: it must fit custody, and a borrow
    /// must pass the policy.
    pub fn check(&self, m: &Movement, policy: BorrowPolicy) -> Result<(), Error> {
        if m.kind.is_clerk() {
            return Err(invalid("kind", "clerk records come from the clerk"));
        }
        if m.kind == Kind::Borrow {
            let others: Vec<&Held> = self.held().into_iter().filter(|h| h.order_id != m.order_id).collect();
            let allowed = match policy {
                BorrowPolicy::Strict => 0,
                BorrowPolicy::Tolerance { max } => max as usize,
                BorrowPolicy::Off => usize::MAX,
            };
            if others.len() > allowed {
                let first = others[0];
                let what = first.serial.clone().unwrap_or_else(|| first.part_number.clone());
                let order = first.order_id.clone().unwrap_or_else(|| "no order".into());
                return Err(Error::BorrowRefused { outstanding: others.len() as u32, first: format!("{what} ({order})") });
            }
        }
        let mut trial = self.clone();
        trial.apply(m)
    }
}

fn held(m: &Movement, faulty: bool, clerk_confirmed: bool) -> Held {
    Held {
        part_number: m.part_number.clone(),
        serial: m.serial.clone(),
        quantity: m.quantity,
        order_id: m.order_id.clone(),
        faulty,
        clerk_confirmed,
        since_ms: m.at_ms,
    }
}

#[cfg(test)]
mod tests;
