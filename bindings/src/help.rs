//! `help()`: expert help from an order (专家求助) at the boundary.

use std::time::SystemTime;

use crate::onsite::Handle;
use crate::orders::ms_to_time;
use crate::ApiError;

#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct HelpQuestion {
    pub question: String,
    /// The checklist step the question concerns.
    pub step_id: Option<String>,
    /// SHA-256 of this order's photos to share.
    pub photos: Vec<String>,
    pub include_fault: bool,
    pub include_notes: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct HelpRequestInfo {
    pub id: String,
    pub at: SystemTime,
    pub question: String,
    pub step_id: Option<String>,
    pub photos: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct HelpAnswerInfo {
    /// `routed`, `unrouted` or `answer`.
    pub kind: String,
    pub at: SystemTime,
    pub expert_id: String,
    pub expert_name: String,
    pub text: String,
    /// Reference photos (SHA-256; `evidence().blob(sha)` once synced).
    pub reference_photos: Vec<String>,
    pub suggested_steps: Vec<String>,
    /// The step the answer concerns: show it with that step.
    pub step_id: Option<String>,
    pub cost_cents: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct HelpThread {
    pub request: HelpRequestInfo,
    pub answers: Vec<HelpAnswerInfo>,
    /// Sent to the server (the order has no unsent edits).
    pub sent: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct HelpCost {
    pub order_id: String,
    pub request_id: String,
    pub expert_id: String,
    pub expert_name: String,
    pub cost_cents: i64,
    pub at: SystemTime,
}

/// Expert help from an order (seed 000 专家求助).
#[derive(uniffi::Object)]
pub struct HelpApi {
    pub(crate) device: Handle,
}

#[uniffi::export]
impl HelpApi {
    /// Asks for help; queued in the order and sent by the next sync (works offline).
    pub fn ask(&self, order_id: String, question: HelpQuestion) -> Result<HelpRequestInfo, ApiError> {
        let r = self.device.get()?.ask_help(
            &order_id,
            &onsite_core::device::HelpQuestion {
                question: question.question,
                step: question.step_id,
                photos: question.photos,
                include_fault: question.include_fault,
                include_notes: question.include_notes,
            },
        )?;
        Ok(HelpRequestInfo { id: r.id, at: ms_to_time(r.at.0), question: r.question, step_id: r.step, photos: r.photos })
    }

    /// The order's requests with what came back, oldest first.
    pub fn threads(&self, order_id: String) -> Result<Vec<HelpThread>, ApiError> {
        Ok(self.device.get()?.help_threads(&order_id)?.into_iter().map(thread).collect())
    }

    /// Answered requests' costs across the orders on this device (reimbursement claim).
    pub fn costs(&self) -> Result<Vec<HelpCost>, ApiError> {
        Ok(self
            .device
            .get()?
            .help_costs()?
            .into_iter()
            .map(|c| HelpCost {
                order_id: c.order_id,
                request_id: c.request_id,
                expert_id: c.expert_id,
                expert_name: c.expert_name,
                cost_cents: c.cost_cents,
                at: ms_to_time(c.at.0),
            })
            .collect())
    }
}

/// One core help thread as the boundary's record.
pub(crate) fn thread(t: onsite_core::device::HelpThread) -> HelpThread {
    HelpThread {
        request: HelpRequestInfo {
            id: t.request.id,
            at: ms_to_time(t.request.at.0),
            question: t.request.question,
            step_id: t.request.step,
            photos: t.request.photos,
        },
        answers: t
            .answers
            .into_iter()
            .map(|a| HelpAnswerInfo {
                kind: a.kind,
                at: ms_to_time(a.at.0),
                expert_id: a.expert_id,
                expert_name: a.expert_name,
                text: a.text,
                reference_photos: a.reference_photos,
                suggested_steps: a.suggested_steps,
                step_id: a.step,
                cost_cents: a.cost_cents,
            })
            .collect(),
        sent: t.sent,
    }
}
