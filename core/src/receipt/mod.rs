//! The signed service receipt (维修回执单 / 服务交付报告): what was done on site, in a form the
//! customer signs on the engineer's device and anyone can verify later, offline.
//!
//! A receipt is built from the order's document, its checklist and photo records, plus what
//! only the engineer and customer can say (diagnosis, work done, charges, rating). Its
//! canonical bytes (RFC 8785, [`crate::jcs`]) are hashed; the device signs a small
//! [`SigningMessage`] binding that hash, the hash of the customer's signature strokes and the
//! journal head, and the signing is itself a journal entry. A signed receipt never changes:
//! a correction is a new revision that names the one it supersedes.
//!
//! See docs/adr/0008-receipts-and-bundles.md.

pub mod build;
pub mod html;

use serde::{Deserialize, Serialize};

use crate::evidence::signer;
use crate::hash::sha256_hex;

pub use build::{build, BuildContext};

pub const RECEIPT_VERSION: u32 = 1;
pub const RECEIPT_KIND: &str = "onsite.receipt";
pub const SIGNATURE_KIND: &str = "onsite.receipt.signature";

pub const TEXT_MAX_CHARS: usize = 4000;
pub const COMMENT_MAX_CHARS: usize = 500;
pub const MAX_CHARGE_LINES: usize = 50;
/// Follow-up call (回访) window after the visit, in working days (seed 003: 3-7).
pub const FOLLOW_UP_WORKING_DAYS: (u32, u32) = (3, 7);

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Error {
    #[error("invalid receipt field `{field}`: {reason}")]
    Invalid { field: String, reason: String },
    #[error("a receipt cannot be signed while the order is {status}: {reason}")]
    WrongStatus { status: String, reason: String },
    #[error("order `{order}` has no receipt revision {revision}")]
    NotFound { order: String, revision: u32 },
    #[error(transparent)]
    Canonical(#[from] crate::jcs::Error),
    #[error(transparent)]
    Signer(#[from] signer::Error),
    #[error(transparent)]
    Strokes(#[from] crate::signature::Error),
}

pub(crate) fn invalid(field: &str, reason: impl Into<String>) -> Error {
    Error::Invalid { field: field.to_string(), reason: reason.into() }
}

/// Who pays for a charge line (seed 003: warranty repairs are free; software faults and
/// user-caused damage are paid service, 有偿服务).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChargeBasis {
    Warranty,
    Paid,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChargeLine {
    pub description: String,
    /// In the currency's minor unit (分 for CNY); integers, so no rounding ever.
    pub amount_cents: i64,
    pub basis: ChargeBasis,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rating {
    /// 1 (very unsatisfied) to 5 (very satisfied).
    pub score: u8,
    pub comment: String,
}

/// What the customer decided when shown the receipt.
#[derive(Debug, Clone, PartialEq)]
pub enum CustomerDecision {
    /// Signed on the device: the strokes as captured.
    Signed { strokes: Vec<crate::signature::Stroke> },
    /// Refused to sign: an outcome with its reason, never a missing field.
    Refused { reason: String },
}

/// What the engineer and customer supply; everything else comes from the order.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceiptInput {
    pub diagnosis: String,
    pub work_done: String,
    pub charges: Vec<ChargeLine>,
    /// ISO 4217 code, e.g. `CNY`.
    pub currency: String,
    pub rating: Option<Rating>,
    /// The customer's name as they give it (the person signing, 签收人).
    pub signer_name: String,
    pub decision: CustomerDecision,
    /// Required for a revision after the first: why the signed receipt is corrected.
    pub correction_reason: Option<String>,
}

impl ReceiptInput {
    /// Checks every field; errors name the field.
    pub fn validate(&self) -> Result<(), Error> {
        let text = |field: &str, v: &str, max: usize, required: bool| -> Result<(), Error> {
            let n = v.trim().chars().count();
            if required && n == 0 {
                return Err(invalid(field, "is required"));
            }
            if n > max {
                return Err(invalid(field, format!("at most {max} characters")));
            }
            Ok(())
        };
        text("diagnosis", &self.diagnosis, TEXT_MAX_CHARS, true)?;
        text("work_done", &self.work_done, TEXT_MAX_CHARS, true)?;
        text("signer_name", &self.signer_name, 100, true)?;
        if self.currency.len() != 3 || !self.currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(invalid("currency", "an ISO 4217 code such as CNY"));
        }
        if self.charges.len() > MAX_CHARGE_LINES {
            return Err(invalid("charges", format!("at most {MAX_CHARGE_LINES} lines")));
        }
        for (i, c) in self.charges.iter().enumerate() {
            text(&format!("charges[{i}].description"), &c.description, 200, true)?;
            if !(0..=1_000_000_000).contains(&c.amount_cents) {
                return Err(invalid(&format!("charges[{i}].amount_cents"), "0 to 1,000,000,000"));
            }
        }
        if let Some(r) = &self.rating {
            if !(1..=5).contains(&r.score) {
                return Err(invalid("rating.score", "1 to 5"));
            }
            text("rating.comment", &r.comment, COMMENT_MAX_CHARS, false)?;
        }
        match &self.decision {
            CustomerDecision::Signed { strokes } => {
                if strokes.is_empty() {
                    return Err(invalid("strokes", "a signature has at least one stroke"));
                }
            }
            CustomerDecision::Refused { reason } => text("refusal_reason", reason, COMMENT_MAX_CHARS, true)?,
        }
        if let Some(r) = &self.correction_reason {
            text("correction_reason", r, COMMENT_MAX_CHARS, true)?;
        }
        Ok(())
    }
}

/// The journal head a receipt is bound to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeadRef {
    pub seq: u64,
    pub hash: String,
}

/// What the device's key signs: the receipt's hash, the strokes' hash and the journal head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigningMessage {
    pub v: u32,
    pub kind: String,
    pub order: String,
    pub revision: u32,
    pub receipt_sha256: String,
    pub strokes_sha256: Option<String>,
    pub journal_head: HeadRef,
}

impl SigningMessage {
    pub fn canonical(&self) -> Result<Vec<u8>, Error> {
        Ok(crate::jcs::to_vec_of(self)?)
    }
}

/// A signed receipt as stored on the device and carried in bundles.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SignedReceipt {
    pub order: String,
    pub revision: u32,
    /// The receipt's canonical JSON, exactly as hashed.
    #[serde(skip)]
    pub canonical: Vec<u8>,
    pub receipt_sha256: String,
    /// The signature strokes in the `signature` module's canonical encoding (absent when
    /// the customer refused).
    #[serde(skip)]
    pub strokes: Option<Vec<u8>>,
    pub strokes_sha256: Option<String>,
    /// The canonical signing message and the device's ES256 signature over it (r || s).
    #[serde(skip)]
    pub message: Vec<u8>,
    #[serde(serialize_with = "crate::hash::hex_serde::serialize")]
    pub signature: Vec<u8>,
    pub journal_seq: u64,
    pub signed_at_ms: i64,
}

impl SignedReceipt {
    /// The receipt parsed back from its canonical JSON.
    pub fn receipt(&self) -> Result<Receipt, serde_json::Error> {
        serde_json::from_slice(&self.canonical)
    }

    /// Whether the customer refused to sign (read from the receipt itself).
    pub fn refused(&self) -> Result<bool, serde_json::Error> {
        Ok(matches!(self.receipt()?.outcome, Outcome::Refused { .. }))
    }
}

/// One failed check of [`verify`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub check: &'static str,
    pub detail: String,
}

fn problem(check: &'static str, detail: impl Into<String>) -> Problem {
    Problem { check, detail: detail.into() }
}

/// Verifies a signed receipt against the device's public key: canonical form, hashes,
/// strokes binding, signing message and signature. Returns the parsed receipt.
pub fn verify(sr: &SignedReceipt, public_key: &[u8]) -> Result<Receipt, Problem> {
    let value = crate::jcs::parse_canonical(&sr.canonical).map_err(|e| problem("receipt.canonical", e.to_string()))?;
    if sha256_hex(&sr.canonical) != sr.receipt_sha256 {
        return Err(problem("receipt.hash", "the receipt's bytes do not match its SHA-256"));
    }
    let receipt: Receipt = serde_json::from_value(value).map_err(|e| problem("receipt.schema", e.to_string()))?;
    if receipt.v != RECEIPT_VERSION || receipt.kind != RECEIPT_KIND {
        return Err(problem("receipt.version", format!("unknown receipt kind {} v{}", receipt.kind, receipt.v)));
    }
    if receipt.order != sr.order || receipt.revision != sr.revision {
        return Err(problem("receipt.identity", "the receipt names another order or revision"));
    }
    let bound_strokes = match &receipt.outcome {
        Outcome::Signed { strokes_sha256, .. } => Some(strokes_sha256.clone()),
        Outcome::Refused { .. } => None,
    };
    if bound_strokes != sr.strokes_sha256 {
        return Err(problem("signature_strokes.binding", "the receipt binds other strokes than the ones recorded"));
    }
    match (&sr.strokes, &sr.strokes_sha256) {
        (Some(bytes), Some(h)) => {
            if &sha256_hex(bytes) != h {
                return Err(problem("signature_strokes.hash", "the signature strokes do not match their SHA-256"));
            }
            crate::signature::decode(bytes).map_err(|e| problem("signature_strokes.decode", e.to_string()))?;
        }
        (None, None) => {}
        _ => return Err(problem("signature_strokes.binding", "strokes and their hash must both be present or both absent")),
    }
    let message = SigningMessage {
        v: 1,
        kind: SIGNATURE_KIND.into(),
        order: receipt.order.clone(),
        revision: receipt.revision,
        receipt_sha256: sr.receipt_sha256.clone(),
        strokes_sha256: sr.strokes_sha256.clone(),
        journal_head: receipt.journal_head.clone(),
    }
    .canonical()
    .map_err(|e| problem("receipt.message", e.to_string()))?;
    if message != sr.message {
        return Err(problem("receipt.message", "the signed message does not bind this receipt, strokes and journal head"));
    }
    if !signer::verify(public_key, &sr.message, &sr.signature).unwrap_or(false) {
        return Err(problem("receipt.signature", "the device signature over the receipt does not verify"));
    }
    Ok(receipt)
}

// ---- the receipt document (canonical JSON; times are RFC 3339 UTC strings) ----

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    pub v: u32,
    pub kind: String,
    pub order: String,
    pub revision: u32,
    pub supersedes: Option<Superseded>,
    pub issued_at: String,
    pub device: String,
    pub provider: Party,
    pub engineer: Party,
    pub customer: CustomerPart,
    pub site: SitePart,
    pub equipment: EquipmentPart,
    pub fault: FaultPart,
    pub diagnosis: Diagnosis,
    pub work_done: String,
    pub parts: Vec<PartLine>,
    pub checklist: Option<ChecklistOutcome>,
    pub photos: Vec<PhotoLine>,
    pub times: Times,
    pub charges: Charges,
    pub rating: Option<Rating>,
    pub follow_up: FollowUp,
    pub outcome: Outcome,
    pub journal_head: HeadRef,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Superseded {
    pub revision: u32,
    pub sha256: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Party {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerPart {
    pub company: String,
    pub contact: String,
    pub phone: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SitePart {
    pub address: String,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub in_service_area: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EquipmentPart {
    pub category: String,
    pub brand: String,
    pub model: String,
    pub serial: String,
    pub warranty: String,
    pub warranty_ends: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultPart {
    pub description: String,
    pub reported_at: String,
    pub channel: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnosis {
    /// The checklist's fault classification (硬件 / 软件 / 人为损坏), when answered.
    pub fault_kind: Vec<String>,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartLine {
    /// The parts step that recorded it (borrowed, fitted, returned).
    pub step: String,
    pub part_number: String,
    pub serial: String,
    pub quantity: u32,
    pub returned_serial: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChecklistOutcome {
    pub template: String,
    pub version: u32,
    pub template_sha256: String,
    pub steps: Vec<StepOutcome>,
    pub consents: Vec<ConsentOutcome>,
    /// Steps still blocking completion when the customer signed.
    pub open_blockers: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepOutcome {
    pub step: String,
    pub label: String,
    /// done, open, locked, not_applicable
    pub state: String,
    pub na_reason: Option<String>,
    pub answered_at: Option<String>,
    pub corrections: u32,
    pub flags: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentOutcome {
    pub step: String,
    pub accepted: bool,
    pub risk_sha256: String,
    pub strokes_sha256: String,
    pub at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhotoLine {
    pub sha256: String,
    pub step: Option<String>,
    /// EXIF capture time as the camera wrote it (not trusted; the journal time is).
    pub captured_at: Option<String>,
    /// When this device ingested it and the journal entry that recorded it; absent for a
    /// photo another device recorded (it is in that device's journal).
    pub ingested_at: Option<String>,
    pub journal_seq: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Times {
    pub reported_at: String,
    pub arrived_at: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// Report to arrival.
    pub response_minutes: Option<i64>,
    /// Arrival to finish.
    pub on_site_minutes: Option<i64>,
    /// Start of work to finish.
    pub work_minutes: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Charges {
    /// warranty (nothing to pay), paid, or mixed.
    pub coverage: String,
    pub currency: String,
    pub lines: Vec<ChargeLine>,
    pub total_cents: i64,
    pub payable_cents: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FollowUp {
    /// Local dates (YYYY-MM-DD) of the follow-up window, in working days after the visit.
    pub earliest: String,
    pub latest: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Outcome {
    Signed { signer_name: String, strokes_sha256: String, strokes: u32, points: u32, duration_ms: u32 },
    Refused { signer_name: String, reason: String },
}

#[cfg(test)]
mod tests;
