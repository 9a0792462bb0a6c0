//! Expert help: experts, routing of requests, what an expert sees, answers into the order.

use onsite_core::order::{HelpAnswer, HelpRequest, Timestamp, WorkOrder};
use serde::{Deserialize, Serialize};

use super::{random_hex, token_hash, Error, Result, Service};
use crate::storage::{ExpertRow, HelpRow};

#[derive(Debug, Clone, Deserialize)]
pub struct ExpertInput {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub categories: Vec<String>,
    #[serde(default)]
    pub brands: Vec<String>,
    /// What one answer costs the provider (分).
    pub fee_cents: i64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AnswerInput {
    pub text: String,
    #[serde(default)]
    pub suggested_steps: Vec<String>,
    /// SHA-256 of reference photos uploaded first with `PUT /v1/blobs/{sha}`.
    #[serde(default)]
    pub reference_photos: Vec<String>,
    #[serde(default)]
    pub step: Option<String>,
}

/// What an expert sees of a request: the question and the evidence the engineer shared.
#[derive(Debug, Clone, Serialize)]
pub struct HelpView {
    pub request: HelpRow,
    pub question: String,
    pub step: Option<String>,
    pub photos: Vec<String>,
    pub equipment: String,
    pub fault: Option<String>,
    pub notes: Vec<String>,
}

fn lower(v: &[String]) -> Vec<String> {
    v.iter().map(|s| s.trim().to_lowercase()).filter(|s| !s.is_empty()).collect()
}

/// Routing rules (docs/adr/0011): an expert for the equipment's category and brand; else one
/// for the category and any brand; else a generalist (no categories). Ties go to the expert
/// with the fewest open requests, then the smallest id.
pub fn route<'a>(experts: &'a [ExpertRow], open: &dyn Fn(&str) -> usize, category: &str, brand: &str) -> Option<&'a ExpertRow> {
    let (category, brand) = (category.trim().to_lowercase(), brand.trim().to_lowercase());
    let tiers: [&dyn Fn(&ExpertRow) -> bool; 3] =
        [&|e| e.categories.contains(&category) && e.brands.contains(&brand), &|e| e.categories.contains(&category) && e.brands.is_empty(), &|e| {
            e.categories.is_empty()
        }];
    for tier in tiers {
        let best = experts.iter().filter(|e| tier(e)).min_by(|a, b| open(&a.id).cmp(&open(&b.id)).then_with(|| a.id.cmp(&b.id)));
        if best.is_some() {
            return best;
        }
    }
    None
}

impl Service {
    /// Registers an expert; returns the expert's bearer token (shown once).
    pub fn add_expert(&self, provider: &str, input: ExpertInput) -> Result<String> {
        if input.id.trim().is_empty() || input.name.trim().is_empty() || input.fee_cents < 0 {
            return Err(Error::BadRequest("id and name are required; fee_cents >= 0".into()));
        }
        let token = format!("exp_{}", random_hex(24));
        let row = ExpertRow {
            provider: provider.to_string(),
            id: input.id.trim().to_string(),
            name: input.name.trim().to_string(),
            categories: lower(&input.categories),
            brands: lower(&input.brands),
            fee_cents: input.fee_cents,
        };
        self.storage.add_expert(&row, &token_hash(&token)).map_err(|e| match e {
            crate::storage::Error::Exists(what) => Error::Conflict { reason: format!("{what} already exists"), acked_seq: None, offset: None },
            other => other.into(),
        })?;
        Ok(token)
    }

    pub fn expert(&self, token: Option<&str>) -> Result<ExpertRow> {
        let token = token.ok_or(Error::Unauthorized)?;
        self.storage.expert_by_token(&token_hash(token))?.ok_or(Error::Unauthorized)
    }

    /// Routes requests that arrived with a device's push, and tells the engineer where each
    /// went (a `routed` or `unrouted` entry in the order, sent back by the same sync).
    pub(crate) fn route_help(&self, provider: &str, order_id: &str, requests: &[HelpRequest]) -> Result<()> {
        let order = self.order(provider, order_id)?;
        let experts = self.storage.experts(provider)?;
        let open_rows = self.storage.help_requests(provider, None)?;
        let open = |id: &str| open_rows.iter().filter(|h| h.expert_id.as_deref() == Some(id) && h.status == "routed").count();
        let now = self.now_ms();
        let mut notes = Vec::new();
        for r in requests {
            if self.storage.help(provider, &r.id)?.is_some() {
                continue;
            }
            let chosen = route(&experts, &open, &order.equipment.category, &order.equipment.brand);
            self.storage.upsert_help(&HelpRow {
                provider: provider.to_string(),
                id: r.id.clone(),
                order_id: order_id.to_string(),
                engineer: order.engineer.id.clone(),
                expert_id: chosen.map(|e| e.id.clone()),
                status: if chosen.is_some() { "routed" } else { "unrouted" }.into(),
                cost_cents: 0,
                created_at: now,
            })?;
            tracing::info!(order = order_id, request = %r.id, expert = ?chosen.map(|e| &e.id), "help request routed");
            notes.push(HelpAnswer {
                request_id: r.id.clone(),
                at: Timestamp(now),
                kind: if chosen.is_some() { "routed" } else { "unrouted" }.into(),
                // An unrouted note names no expert (empty id and name).
                expert_id: chosen.map_or_else(String::new, |e| e.id.clone()),
                expert_name: chosen.map_or_else(String::new, |e| e.name.clone()),
                text: match chosen {
                    Some(e) => format!("sent to {} ({} / {})", e.name, order.equipment.category, order.equipment.brand),
                    None => "no expert covers this equipment yet; the dispatcher was told".into(),
                },
                reference_photos: Vec::new(),
                suggested_steps: Vec::new(),
                step: r.step.clone(),
                cost_cents: 0,
            });
        }
        if !notes.is_empty() {
            self.dispatcher_edit(provider, order_id, |o, _| {
                o.help_answers.extend(notes.iter().cloned());
                Ok(())
            })?;
        }
        Ok(())
    }

    pub fn help_list(&self, provider: &str, expert: Option<&str>) -> Result<Vec<HelpRow>> {
        Ok(self.storage.help_requests(provider, expert)?)
    }

    /// What the expert sees: only the evidence the engineer chose to share.
    pub fn help_view(&self, expert: &ExpertRow, request_id: &str) -> Result<HelpView> {
        let row = self.storage.help(&expert.provider, request_id)?.ok_or_else(|| Error::NotFound(format!("help request {request_id}")))?;
        if row.expert_id.as_deref() != Some(expert.id.as_str()) {
            return Err(Error::Forbidden("this request was routed to another expert".into()));
        }
        let order: WorkOrder = self.order(&expert.provider, &row.order_id)?;
        let r = order.help.iter().find(|h| h.id == request_id).ok_or_else(|| Error::NotFound(format!("help request {request_id}")))?;
        Ok(HelpView {
            question: r.question.clone(),
            step: r.step.clone(),
            photos: r.photos.clone(),
            equipment: format!("{} {} {}", order.equipment.category, order.equipment.brand, order.equipment.model),
            fault: r.include_fault.then(|| order.fault.description.clone()),
            notes: if r.include_notes { order.notes.iter().map(|n| n.text.clone()).collect() } else { Vec::new() },
            request: row,
        })
    }

    /// The expert's answer goes into the order (the engineer's device gets it by sync) and
    /// the cost is recorded for reimbursement.
    pub fn help_answer(&self, expert: &ExpertRow, request_id: &str, input: AnswerInput) -> Result<HelpAnswer> {
        let view = self.help_view(expert, request_id)?;
        if input.text.trim().is_empty() || input.text.chars().count() > 4000 {
            return Err(Error::BadRequest("an answer has 1 to 4000 characters".into()));
        }
        for sha in &input.reference_photos {
            if !self.storage.has_blob(&expert.provider, sha)? {
                return Err(Error::BadRequest(format!("reference photo {sha} is not uploaded")));
            }
        }
        let answer = HelpAnswer {
            request_id: request_id.to_string(),
            at: Timestamp(self.now_ms()),
            kind: "answer".into(),
            expert_id: expert.id.clone(),
            expert_name: expert.name.clone(),
            text: input.text.trim().to_string(),
            reference_photos: input.reference_photos,
            suggested_steps: input.suggested_steps,
            step: input.step.or(view.step),
            cost_cents: expert.fee_cents,
        };
        let a = answer.clone();
        self.dispatcher_edit(&expert.provider, &view.request.order_id, |o, _| {
            o.help_answers.push(a.clone());
            Ok(())
        })?;
        self.storage.upsert_help(&HelpRow { status: "answered".into(), cost_cents: view.request.cost_cents + expert.fee_cents, ..view.request })?;
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expert(id: &str, cats: &[&str], brands: &[&str]) -> ExpertRow {
        ExpertRow {
            provider: "p".into(),
            id: id.into(),
            name: id.into(),
            categories: cats.iter().map(|s| s.to_string()).collect(),
            brands: brands.iter().map(|s| s.to_string()).collect(),
            fee_cents: 100,
        }
    }

    #[test]
    fn routing_prefers_brand_then_category_then_generalists_then_load() {
        let experts = vec![
            expert("a-general", &[], &[]),
            expert("b-laptop", &["laptop"], &[]),
            expert("c-lenovo", &["laptop"], &["lenovo"]),
            expert("d-lenovo", &["laptop"], &["lenovo"]),
        ];
        let idle = |_: &str| 0;
        assert_eq!(route(&experts, &idle, "Laptop", "Lenovo").unwrap().id, "c-lenovo");
        let busy_c = |id: &str| if id == "c-lenovo" { 3 } else { 0 };
        assert_eq!(route(&experts, &busy_c, "laptop", "lenovo").unwrap().id, "d-lenovo");
        assert_eq!(route(&experts, &idle, "laptop", "dell").unwrap().id, "b-laptop");
        assert_eq!(route(&experts, &idle, "printer", "hp").unwrap().id, "a-general");
        assert!(route(&experts[1..], &idle, "printer", "hp").is_none());
    }
}
