//! The order's SOP checklist on the device: templates, start (pin), answers, blockers.

use std::sync::Arc;

use super::Device;
use crate::changes::ChangeOrigin;
use crate::evidence::journal::{Draft, JournalKind};
use crate::order::{Timestamp, WorkOrder};
use crate::sop::{self, Answer, AnswerRecord, Blocker, Evaluation, Template, TemplateRef};
use crate::store::{Change, Stamp};
use crate::Result;

/// A checklist screen in one value: the pinned template, the evaluation, the answers.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ChecklistView {
    pub template: Arc<Template>,
    pub pinned: TemplateRef,
    pub evaluation: Evaluation,
    pub answers: Vec<AnswerRecord>,
}

impl Device {
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

    pub(crate) fn pinned_template(&self, order: &WorkOrder) -> Result<Option<(TemplateRef, Arc<Template>)>> {
        let Some(pin) = &order.checklist.template else { return Ok(None) };
        let t = self
            .registry()
            .get(&pin.id, pin.version)
            .filter(|t| t.sha256 == pin.sha256)
            .ok_or_else(|| sop::Error::TemplateMissing { id: pin.id.clone(), version: pin.version })?;
        Ok(Some((pin.clone(), t)))
    }

    pub(crate) fn blockers_of(&self, order: &WorkOrder) -> Result<Vec<Blocker>> {
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

    pub(crate) fn checklist_view(&self, order: WorkOrder) -> Result<ChecklistView> {
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
                let draft = Draft::of(JournalKind::ChecklistStart, Some(id), &pin).map_err(crate::store::Error::from)?;
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
        let consent = matches!(value, Answer::Consent { .. });
        let record =
            AnswerRecord { step: step.to_string(), value, at: Timestamp(stamp.at_ms), monotonic_ms: stamp.mono_ms, device: self.device_id().to_string() };
        let policy = self.borrow_policy()?;
        let engineer = self.engineer_id()?;
        let written = std::cell::Cell::new(0u64);
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
                    Answer::Consent { .. } => JournalKind::Consent,
                    Answer::Parts { .. } => JournalKind::PartMovement,
                    Answer::Photos { .. } => JournalKind::PhotoStep,
                    _ => JournalKind::Answer,
                };
                let mut payload = serde_json::json!({ "step": step, "value": &record.value });
                if !moves.is_empty() {
                    payload["movements"] = serde_json::to_value(&moves)
                        .map_err(|e| crate::evidence::journal::Error::Payload { kind: kind.as_str(), reason: e.to_string() })
                        .map_err(crate::store::Error::from)?;
                }
                let draft = Draft::new(kind, Some(id), payload);
                o.checklist.answers.push(record);
                Ok((moves, vec![Change::AppendAnswer], Some(draft)))
            },
            |o| self.summarize(o),
            |tx, moves, seq| {
                written.set(seq);
                if moves.is_empty() {
                    return Ok(());
                }
                self.store.insert_local_tx(tx, moves, Some(step), &[seq], policy)
            },
        )?;
        if !moves.is_empty() {
            tracing::info!(order = id, step, movements = moves.len(), "parts recorded from the checklist");
        }
        if consent {
            // The hardware key countersigns off the edit path (ADR 0017).
            self.countersigner.request(written.get(), false);
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
}
