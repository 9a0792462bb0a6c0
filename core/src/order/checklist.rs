//! Checklist state as it lives in the work-order document: the pinned template and an
//! append-only list of answers. Nothing is ever removed or edited; a correction is a new
//! answer, and the current answer of a step is its latest by (time, device, position).

use autosurgeon::{Hydrate, Reconcile};
use serde::Serialize;

use crate::order::Timestamp;

#[derive(Debug, Clone, PartialEq, Serialize, Reconcile, Hydrate)]
pub struct TemplateRef {
    pub id: String,
    pub version: u32,
    pub sha256: String,
    pub started_at: Timestamp,
    pub device: String,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Reconcile, Hydrate)]
pub struct Checklist {
    pub template: Option<TemplateRef>,
    pub answers: Vec<AnswerRecord>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Reconcile, Hydrate)]
pub struct AnswerRecord {
    pub step: String,
    pub value: Answer,
    pub at: Timestamp,
    pub monotonic_ms: u64,
    pub device: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Reconcile, Hydrate)]
pub struct PhotoRef {
    /// SHA-256 of the photo's bytes (lowercase hex): the evidence blob's address.
    pub sha256: String,
    pub label: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Reconcile, Hydrate)]
pub struct PartUse {
    pub part_number: String,
    pub serial: String,
    pub quantity: u32,
    /// Serial of the faulty part taken out and returned, if any.
    pub returned_serial: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Reconcile, Hydrate)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Answer {
    Confirmed,
    Photos {
        photos: Vec<PhotoRef>,
    },
    Measurement {
        value: f64,
    },
    Note {
        text: String,
    },
    Choice {
        selected: Vec<String>,
    },
    Barcode {
        scanned: String,
    },
    Parts {
        parts: Vec<PartUse>,
    },
    Observation {
        started: Timestamp,
        stopped: Timestamp,
        reproduced: bool,
    },
    /// The customer's decision on the exact risk text shown (its hash), with the signature
    /// strokes in the canonical encoding of `signature::encode` and their hash.
    Consent {
        accepted: bool,
        risk_sha256: String,
        signer: String,
        #[serde(serialize_with = "hex_bytes")]
        strokes: autosurgeon::bytes::ByteVec,
        strokes_sha256: String,
    },
    NotApplicable {
        reason: String,
    },
}

impl Answer {
    /// A consent answer: the customer's strokes in the canonical encoding and its hash,
    /// the one way every front end builds one.
    pub fn consent(accepted: bool, risk_sha256: String, signer: String, strokes: &[crate::signature::Stroke]) -> Result<Self, crate::signature::Error> {
        let encoded = crate::signature::encode(strokes)?;
        let strokes_sha256 = crate::signature::strokes_sha256(&encoded);
        Ok(Answer::Consent { accepted, risk_sha256, signer, strokes: encoded.into(), strokes_sha256 })
    }

    /// What any answer must satisfy whatever its step says: a measurement is a finite number.
    /// (The step's own rules, range and kind, are the SOP engine's, on the device.)
    pub fn check(&self) -> Result<(), super::Error> {
        match self {
            Answer::Measurement { value } if !value.is_finite() => {
                Err(super::Error::Invalid { field: "value".into(), reason: "must be a finite number".into() })
            }
            _ => Ok(()),
        }
    }

    /// The step kind this answer is for (`None` for not-applicable, which fits any kind).
    pub fn kind(&self) -> Option<&'static str> {
        Some(match self {
            Answer::Confirmed => "confirmation",
            Answer::Photos { .. } => "photo",
            Answer::Measurement { .. } => "measurement",
            Answer::Note { .. } => "note",
            Answer::Choice { .. } => "choice",
            Answer::Barcode { .. } => "barcode",
            Answer::Parts { .. } => "parts",
            Answer::Observation { .. } => "timer",
            Answer::Consent { .. } => "consent",
            Answer::NotApplicable { .. } => return None,
        })
    }
}

fn hex_bytes<S: serde::Serializer>(b: &autosurgeon::bytes::ByteVec, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&crate::hash::hex(b))
}
