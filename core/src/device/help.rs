//! Expert help (seed 000 专家求助): the engineer asks from an order with chosen evidence; the
//! request rides in the order's document, so it is queued offline and sent by the next
//! sync; the server routes it to an expert and the answers come back the same way.

use super::Device;
use crate::evidence::journal::{Draft, JournalKind};
use crate::order::{self, HelpAnswer, HelpRequest, Timestamp, WorkOrder};
use crate::store::Change;
use crate::Result;

const QUESTION_MAX_CHARS: usize = 2000;

/// What the engineer asks, and which evidence goes with it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HelpQuestion {
    pub question: String,
    pub step: Option<String>,
    pub photos: Vec<String>,
    pub include_fault: bool,
    pub include_notes: bool,
}

/// A request and what came back for it, for the order screen.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct HelpThread {
    pub request: HelpRequest,
    pub answers: Vec<HelpAnswer>,
    /// The request has reached the server (the order has no unsent changes).
    pub sent: bool,
}

/// One expert answer's cost, for the reimbursement claim (seed 000 2.1).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HelpCost {
    pub order_id: String,
    pub request_id: String,
    pub expert_id: String,
    pub expert_name: String,
    pub cost_cents: i64,
    pub at: Timestamp,
}

fn invalid(field: &str, reason: impl Into<String>) -> crate::Error {
    order::Error::Invalid { field: field.into(), reason: reason.into() }.into()
}

impl Device {
    /// Records a help request on the order (sent with the next sync).
    pub fn ask_help(&self, order_id: &str, q: &HelpQuestion) -> Result<HelpRequest> {
        let question = q.question.trim();
        if question.is_empty() || question.chars().count() > QUESTION_MAX_CHARS {
            return Err(invalid("question", format!("1 to {QUESTION_MAX_CHARS} characters")));
        }
        let photos = self.store.photos(order_id)?;
        for sha in &q.photos {
            if !photos.iter().any(|p| &p.sha256 == sha) {
                return Err(invalid("photos", format!("{sha} is not a photo of this order")));
            }
        }
        let stamp = self.stamp();
        let request = HelpRequest {
            id: self.new_movement_id(),
            at: Timestamp(stamp.at_ms),
            device: self.device_id().to_string(),
            question: question.to_string(),
            step: q.step.clone(),
            photos: q.photos.clone(),
            include_fault: q.include_fault,
            include_notes: q.include_notes,
        };
        let r = request.clone();
        let ((), _) = self.store.edit(
            order_id,
            "help.request",
            stamp,
            |o: &mut WorkOrder| -> Result<((), Vec<Change>, Option<crate::evidence::journal::Draft>)> {
                if o.status == crate::order::Status::Cancelled {
                    return Err(invalid("order", "the order is cancelled"));
                }
                if let Some(step) = &r.step {
                    let known = self.pinned_template(o)?.is_some_and(|(_, t)| t.step(step).is_some());
                    if !known {
                        return Err(invalid("step", format!("`{step}` is not a step of this order's checklist")));
                    }
                }
                let draft = Draft::of(JournalKind::HelpRequest, Some(order_id), &r).map_err(crate::store::Error::from)?;
                o.help.push(r);
                Ok(((), vec![Change::AppendHelp], Some(draft)))
            },
            |o| self.summarize(o),
        )?;
        tracing::info!(order = order_id, request = %request.id, photos = request.photos.len(), "help requested");
        self.changed(order_id, crate::changes::ChangeOrigin::Local);
        Ok(request)
    }

    /// The order's help requests with their answers, oldest first.
    pub fn help_threads(&self, order_id: &str) -> Result<Vec<HelpThread>> {
        self.help_threads_of(&self.store.get(order_id)?)
    }

    /// The help threads of a loaded order.
    pub(crate) fn help_threads_of(&self, o: &WorkOrder) -> Result<Vec<HelpThread>> {
        let sent = !self.store.pending_docs()?.iter().any(|p| p.id == o.id);
        Ok(o.help
            .iter()
            .map(|r| HelpThread { request: r.clone(), answers: o.help_answers.iter().filter(|a| a.request_id == r.id).cloned().collect(), sent })
            .collect())
    }

    /// Every answered request's cost across the orders on this device (a report: it loads
    /// each order's document once).
    pub fn help_costs(&self) -> Result<Vec<HelpCost>> {
        let mut out = Vec::new();
        for s in self.store.list(&[], crate::store::SortBy::Updated)? {
            let o = self.store.get(&s.id)?;
            for a in o.help_answers.iter().filter(|a| a.kind == "answer") {
                out.push(HelpCost {
                    order_id: o.id.clone(),
                    request_id: a.request_id.clone(),
                    expert_id: a.expert_id.clone(),
                    expert_name: a.expert_name.clone(),
                    cost_cents: a.cost_cents,
                    at: a.at,
                });
            }
        }
        out.sort_by_key(|c| c.at);
        Ok(out)
    }
}
