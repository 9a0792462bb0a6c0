//! Builds a [`Receipt`] from an order, its checklist and photo records. Pure: the caller
//! supplies the clock reading, the journal head and the records.

use std::collections::BTreeSet;

use super::*;
use crate::evidence::photo::PhotoRecord;
use crate::order::{Status, Timestamp, WorkOrder};
use crate::sla::WorkCalendar;
use crate::sop::{self, Answer, StepState, Template};

/// The step of the seed templates whose choice classifies the fault (硬件 / 软件 / 人为损坏).
pub const FAULT_KIND_STEP: &str = "fault_kind";

pub struct BuildContext<'a> {
    pub revision: u32,
    pub supersedes: Option<Superseded>,
    pub device: &'a str,
    pub now: Timestamp,
    pub journal_head: HeadRef,
    pub calendar: &'a WorkCalendar,
    /// The order's pinned checklist template, if a checklist was started.
    pub template: Option<&'a Template>,
    pub photos: &'a [PhotoRecord],
}

pub(crate) fn rfc3339(t: Timestamp) -> String {
    t.to_datetime().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn minutes(from: Option<Timestamp>, to: Option<Timestamp>) -> Option<i64> {
    Some((to?.0 - from?.0) / 60_000)
}

/// The receipt, and the canonical encoding of the signature strokes when the customer signed.
pub fn build(order: &WorkOrder, input: &ReceiptInput, ctx: &BuildContext<'_>) -> Result<(Receipt, Option<Vec<u8>>), Error> {
    input.validate()?;
    let (outcome, strokes) = match &input.decision {
        CustomerDecision::Signed { strokes } => {
            let bytes = crate::signature::encode(strokes)?;
            let points = strokes.iter().map(Vec::len).sum::<usize>() as u32;
            let duration_ms = strokes.iter().flatten().map(|p| p.t_ms).max().unwrap_or(0);
            let o = Outcome::Signed {
                signer_name: input.signer_name.trim().to_string(),
                strokes_sha256: sha256_hex(&bytes),
                strokes: strokes.len() as u32,
                points,
                duration_ms,
            };
            (o, Some(bytes))
        }
        CustomerDecision::Refused { reason } => {
            (Outcome::Refused { signer_name: input.signer_name.trim().to_string(), reason: reason.trim().to_string() }, None)
        }
    };

    let evaluation = ctx.template.map(|t| (t, sop::evaluate(t, order, &order.checklist)));
    let answers = &order.checklist.answers;
    let current = |step: &str| -> Option<&sop::AnswerRecord> {
        let (t, e) = evaluation.as_ref()?;
        e.status(t, step)?.current.and_then(|i| answers.get(i))
    };

    let mut fault_kind = Vec::new();
    if let Some(Answer::Choice { selected }) = current(FAULT_KIND_STEP).map(|a| &a.value) {
        fault_kind = selected.clone();
    }

    let mut parts = Vec::new();
    let mut consents = Vec::new();
    let checklist = evaluation.as_ref().map(|(t, e)| {
        let mut steps = Vec::with_capacity(t.steps.len());
        for (step, status) in t.steps.iter().zip(&e.steps) {
            let cur = status.current.and_then(|i| answers.get(i));
            let (state, na_reason) = match &status.state {
                StepState::Done => ("done", None),
                StepState::Open => ("open", None),
                StepState::Locked { .. } => ("locked", None),
                StepState::NotApplicable { reason: sop::NaReason::Condition } => ("not_applicable", Some("condition".to_string())),
                StepState::NotApplicable { reason: sop::NaReason::Marked { reason } } => ("not_applicable", Some(reason.clone())),
            };
            if let Some(a) = cur {
                match &a.value {
                    Answer::Parts { parts: used } => parts.extend(used.iter().map(|p| PartLine {
                        step: step.id.clone(),
                        part_number: p.part_number.clone(),
                        serial: p.serial.clone(),
                        quantity: p.quantity,
                        returned_serial: p.returned_serial.clone(),
                    })),
                    Answer::Consent { accepted, risk_sha256, strokes_sha256, .. } => consents.push(ConsentOutcome {
                        step: step.id.clone(),
                        accepted: *accepted,
                        risk_sha256: risk_sha256.clone(),
                        strokes_sha256: strokes_sha256.clone(),
                        at: rfc3339(a.at),
                    }),
                    _ => {}
                }
            }
            steps.push(StepOutcome {
                step: step.id.clone(),
                label: step.label.zh.clone(),
                state: state.to_string(),
                na_reason,
                answered_at: cur.map(|a| rfc3339(a.at)),
                corrections: status.answers.saturating_sub(1) as u32,
                flags: status.flags.iter().map(flag_name).collect(),
            });
        }
        ChecklistOutcome {
            template: t.id.clone(),
            version: t.version,
            template_sha256: t.sha256.clone(),
            steps,
            consents,
            open_blockers: e.blockers.iter().map(|b| b.step.clone()).collect(),
        }
    });

    // Photos: every one recorded on this device for the order, plus any a checklist answer
    // names that another device recorded.
    let mut photos: Vec<PhotoLine> = ctx
        .photos
        .iter()
        .map(|p| PhotoLine {
            sha256: p.sha256.clone(),
            step: p.step.clone(),
            captured_at: p.exif.get("captured_at").and_then(|v| v.as_str()).map(String::from),
            ingested_at: Some(rfc3339(Timestamp(p.ingested_at))),
            journal_seq: Some(p.journal_seq),
        })
        .collect();
    let known: BTreeSet<String> = photos.iter().map(|p| p.sha256.clone()).collect();
    let mut named = BTreeSet::new();
    for a in answers {
        if let Answer::Photos { photos: refs } = &a.value {
            for r in refs {
                if !known.contains(&r.sha256) && named.insert(r.sha256.clone()) {
                    photos.push(PhotoLine { sha256: r.sha256.clone(), step: Some(a.step.clone()), captured_at: None, ingested_at: None, journal_seq: None });
                }
            }
        }
    }
    photos.sort_by(|a, b| (&a.journal_seq.is_none(), &a.journal_seq, &a.sha256).cmp(&(&b.journal_seq.is_none(), &b.journal_seq, &b.sha256)));

    let arrived = order.first_reached(Status::OnSite);
    let started = order.first_reached(Status::InProgress);
    let finished = order.first_reached(Status::AwaitingSignature).or(Some(ctx.now));
    let follow_from = finished.unwrap_or(ctx.now).to_datetime();
    let local_day = |n: u32| -> String {
        let end = ctx.calendar.end_of_nth_working_day_after(follow_from, n) - chrono::Duration::milliseconds(1);
        end.with_timezone(&ctx.calendar.offset).date_naive().format("%Y-%m-%d").to_string()
    };

    let total: i64 = input.charges.iter().map(|c| c.amount_cents).sum();
    let payable: i64 = input.charges.iter().filter(|c| c.basis == ChargeBasis::Paid).map(|c| c.amount_cents).sum();
    let coverage = match (input.charges.iter().any(|c| c.basis == ChargeBasis::Warranty), input.charges.iter().any(|c| c.basis == ChargeBasis::Paid)) {
        (_, false) if input.charges.is_empty() => "no_charge",
        (true, false) => "warranty",
        (false, true) => "paid",
        _ => "mixed",
    };

    let receipt = Receipt {
        v: RECEIPT_VERSION,
        kind: RECEIPT_KIND.to_string(),
        order: order.id.clone(),
        revision: ctx.revision,
        supersedes: ctx.supersedes.clone(),
        issued_at: rfc3339(ctx.now),
        device: ctx.device.to_string(),
        provider: Party { id: order.provider.id.clone(), name: order.provider.name.clone() },
        engineer: Party { id: order.engineer.id.clone(), name: order.engineer.name.clone() },
        customer: CustomerPart { company: order.customer.company.clone(), contact: order.customer.contact.clone(), phone: order.customer.phone.clone() },
        site: SitePart {
            address: order.site.address.clone(),
            lat: order.site.location.map(|l| l.lat),
            lon: order.site.location.map(|l| l.lon),
            in_service_area: order.site.in_service_area,
        },
        equipment: EquipmentPart {
            category: order.equipment.category.clone(),
            brand: order.equipment.brand.clone(),
            model: order.equipment.model.clone(),
            serial: order.equipment.serial.clone(),
            warranty: order.equipment.warranty.as_str().to_string(),
            warranty_ends: order.equipment.warranty_ends.clone(),
        },
        fault: FaultPart {
            description: order.fault.description.clone(),
            reported_at: rfc3339(order.fault.reported_at),
            channel: order.fault.channel.as_str().to_string(),
        },
        diagnosis: Diagnosis { fault_kind, text: input.diagnosis.trim().to_string() },
        work_done: input.work_done.trim().to_string(),
        parts,
        checklist,
        photos,
        times: Times {
            reported_at: rfc3339(order.fault.reported_at),
            arrived_at: arrived.map(rfc3339),
            started_at: started.map(rfc3339),
            finished_at: finished.map(rfc3339),
            response_minutes: minutes(Some(order.fault.reported_at), arrived),
            on_site_minutes: minutes(arrived, finished),
            work_minutes: minutes(started, finished),
        },
        charges: Charges {
            coverage: coverage.to_string(),
            currency: input.currency.clone(),
            lines: input.charges.iter().map(|c| ChargeLine { description: c.description.trim().to_string(), ..c.clone() }).collect(),
            total_cents: total,
            payable_cents: payable,
        },
        rating: input.rating.as_ref().map(|r| Rating { score: r.score, comment: r.comment.trim().to_string() }),
        follow_up: FollowUp { earliest: local_day(FOLLOW_UP_WORKING_DAYS.0), latest: local_day(FOLLOW_UP_WORKING_DAYS.1) },
        outcome,
        journal_head: ctx.journal_head.clone(),
    };
    Ok((receipt, strokes))
}

fn flag_name(f: &sop::Flag) -> String {
    match f {
        sop::Flag::OutOfRange { .. } => "out_of_range",
        sop::Flag::BarcodeMismatch { .. } => "barcode_mismatch",
        sop::Flag::ConsentRefused => "consent_refused",
        sop::Flag::ObservationShort { .. } => "observation_short",
    }
    .to_string()
}
