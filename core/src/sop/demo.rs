//! Plausible, valid answers for demos, benchmarks and tests: what a careful engineer would
//! enter. Apps never use this; they collect real answers.

use super::engine::Evaluation;
use super::template::{Step, StepKind, Template};
use crate::order::checklist::{Answer, PartUse, PhotoRef};
use crate::order::{Timestamp, WorkOrder};
use crate::signature::{self, StrokePoint};

/// A short, valid two-stroke signature.
pub fn sample_strokes() -> Vec<signature::Stroke> {
    let stroke = |y: f32, t0: u32| -> signature::Stroke {
        (0..24).map(|i| StrokePoint { x: 10.0 + i as f32 * 6.0, y: y + (i as f32 * 0.7).sin() * 8.0, t_ms: t0 + i * 16, pressure: 0.55 }).collect()
    };
    vec![stroke(40.0, 0), stroke(70.0, 600)]
}

/// A consent answer for `step` (which must be a consent step).
pub fn consent(step: &Step, accepted: bool, signer: &str) -> Answer {
    let risk_sha256 = match &step.kind {
        StepKind::Consent { risk_sha256, .. } => risk_sha256.clone(),
        _ => String::new(),
    };
    let strokes = signature::encode(&sample_strokes()).unwrap_or_default();
    let strokes_sha256 = signature::strokes_sha256(&strokes);
    Answer::Consent { accepted, risk_sha256, signer: signer.to_string(), strokes: strokes.into(), strokes_sha256 }
}

/// A valid answer for `step` given what has been answered so far.
pub fn answer_for(template: &Template, eval: &Evaluation, order: &WorkOrder, step: &Step, now: Timestamp) -> Answer {
    match &step.kind {
        StepKind::Confirmation => Answer::Confirmed,
        StepKind::Photo { min, .. } => Answer::Photos {
            photos: (0..(*min).max(1))
                .map(|k| PhotoRef {
                    sha256: crate::hash::sha256_hex(format!("{}/{}/{k}", order.id, step.id).as_bytes()),
                    label: format!("{} #{}", step.label.en, k + 1),
                })
                .collect(),
        },
        StepKind::Measurement { min, max, .. } => Answer::Measurement {
            value: match (min, max) {
                (Some(a), Some(b)) => (a + b) / 2.0,
                (Some(a), None) => *a,
                (None, Some(b)) => *b,
                (None, None) => 1.0,
            },
        },
        StepKind::Note => Answer::Note { text: format!("{}: done", step.label.en) },
        StepKind::Choice { options, .. } => Answer::Choice { selected: vec![options[0].id.clone()] },
        StepKind::Barcode { expected, expected_field, expected_from_step } => {
            let from_parts = expected_from_step.as_ref().and_then(|from| {
                let st = eval.status(template, from)?;
                match st.current.map(|a| &order.checklist.answers[a].value) {
                    Some(Answer::Parts { parts }) => parts.first().map(|p| p.serial.clone()),
                    _ => None,
                }
            });
            let scanned = if expected_field.is_some() {
                order.equipment.serial.clone()
            } else {
                from_parts.or_else(|| expected.first().cloned()).unwrap_or_else(|| "UNKNOWN".into())
            };
            Answer::Barcode { scanned }
        }
        // One part per order through the ledger: borrowed, fitted (the old one taken out),
        // and the faulty old one returned, so each order leaves nothing outstanding.
        StepKind::Parts => {
            let (serial, returned_serial) = match step.ledger {
                Some(super::template::LedgerRole::Return) => {
                    // The faulty part taken out, or the unused one when nothing was fitted.
                    let fitted = order.checklist.answers.iter().any(|a| {
                        template.step(&a.step).and_then(|s| s.ledger) == Some(super::template::LedgerRole::Install)
                            && matches!(&a.value, Answer::Parts { parts } if !parts.is_empty())
                    });
                    (if fitted { format!("OLD-{}", order.id) } else { format!("SN-{}", order.id) }, None)
                }
                Some(super::template::LedgerRole::Install) | None => (format!("SN-{}", order.id), Some(format!("OLD-{}", order.id))),
                Some(super::template::LedgerRole::Borrow) => (format!("SN-{}", order.id), None),
            };
            Answer::Parts { parts: vec![PartUse { part_number: "FRU-5B20W77543".into(), serial, quantity: 1, returned_serial }] }
        }
        StepKind::Timer { .. } => Answer::Observation { started: Timestamp(now.0 - 6 * 60_000), stopped: now, reproduced: true },
        StepKind::Consent { .. } => consent(step, true, "王女士"),
    }
}
