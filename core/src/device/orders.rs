//! Orders on the device: import, list, detail view, lifecycle events, notes, peer merge.

use super::Device;
use crate::changes::ChangeOrigin;
use crate::evidence::journal::{Draft, JournalKind};
use crate::order::lifecycle::{self, Raised};
use crate::order::{self, Actor, EngineerNote, Event, GpsFix, Status, Timestamp, WorkOrder};
use crate::sla::SlaReport;
use crate::sop;
use crate::store::{Change, OrderSummary, SortBy};
use crate::Result;

#[derive(Debug, Clone, Default)]
pub struct OrderFilter {
    /// Only these statuses; empty means all.
    pub statuses: Vec<Status>,
    pub sort: SortBy,
}

/// Everything a detail screen shows, in one call.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct OrderView {
    pub order: WorkOrder,
    pub sla: SlaReport,
    /// Events the engineer can raise now (button names).
    pub next_events: Vec<&'static str>,
}

const NOTE_MAX_CHARS: usize = 4000;

impl Device {
    pub(crate) fn view(&self, order: WorkOrder) -> OrderView {
        let sla = self.sla.evaluate(&order, &self.calendar, self.clock.now());
        let next_events = lifecycle::engineer_events(order.status);
        OrderView { order, sla, next_events }
    }

    /// Imports one order or an array of orders from the dispatcher's JSON. Validates all of
    /// them and checks none exists before writing any.
    pub fn import_orders_json(&self, json: &str) -> Result<Vec<String>> {
        let orders = order::import::parse_orders(json, self.now())?;
        for o in &orders {
            if self.store.get(&o.id).is_ok() {
                return Err(crate::store::Error::AlreadyExists { id: o.id.clone() }.into());
            }
        }
        let mut ids = Vec::with_capacity(orders.len());
        for o in orders {
            let draft = Draft::new(
                JournalKind::Import,
                Some(&o.id),
                serde_json::json!({ "provider": o.provider.id, "engineer": o.engineer.id, "priority": o.priority.as_str() }),
            );
            self.store.insert(&o, &self.summarize(&o), self.stamp(), &draft)?;
            ids.push(o.id);
        }
        self.changed_many(ids.clone(), ChangeOrigin::Local);
        Ok(ids)
    }

    pub fn list(&self, filter: &OrderFilter) -> Result<Vec<OrderSummary>> {
        let now = self.now().0;
        let mut rows = self.store.list(&filter.statuses, filter.sort)?;
        for r in &mut rows {
            r.breached = r.sla_deadline.is_some_and(|d| d < now);
        }
        Ok(rows)
    }

    pub fn get(&self, id: &str) -> Result<OrderView> {
        Ok(self.view(self.store.get(id)?))
    }

    /// Applies a lifecycle event, recording wall time, monotonic reading, device and fix.
    pub fn transition(&self, id: &str, event: Event, actor: Actor, fix: Option<GpsFix>) -> Result<OrderView> {
        let fix = self.fix_or_current(fix)?;
        let stamp = self.stamp();
        let now = Timestamp(stamp.at_ms);
        let mono = stamp.mono_ms;
        let device = self.device_id().to_string();
        let name = event.name();
        let ((), order) = self.store.edit(
            id,
            name,
            stamp,
            |o: &mut WorkOrder| -> Result<((), Vec<Change>, Option<Draft>)> {
                let to = lifecycle::next_status(o.status, &event, actor)?;
                if to == Status::Completed {
                    let blockers = self.blockers_of(o)?;
                    if let Some(first) = blockers.first() {
                        return Err(sop::Error::Blocked { count: blockers.len(), first: first.step.clone() }.into());
                    }
                }
                let mut changes = vec![Change::Status, Change::AppendTransition];
                if event.new_window().is_some() {
                    changes.push(Change::Appointment);
                }
                let payload = serde_json::json!({ "from": o.status, "to": to, "event": &event, "actor": actor });
                let draft = Draft::new(JournalKind::Transition, Some(id), payload).with_fix(fix);
                lifecycle::apply(o, event, Raised { actor, at: now, monotonic_ms: mono, device, fix })?;
                Ok(((), changes, Some(draft)))
            },
            |o| self.summarize(o),
        )?;
        tracing::info!(order = id, event = name, status = %order.status, "transition");
        self.changed(id, ChangeOrigin::Local);
        Ok(self.view(order))
    }

    /// Appends an engineer note (notes are never edited in place; a correction is a new note).
    pub fn add_note(&self, id: &str, text: &str) -> Result<OrderView> {
        let text = text.trim();
        if text.is_empty() || text.chars().count() > NOTE_MAX_CHARS {
            return Err(order::Error::Invalid { field: "text".into(), reason: format!("a note has 1 to {NOTE_MAX_CHARS} characters") }.into());
        }
        let stamp = self.stamp();
        let note = EngineerNote { at: Timestamp(stamp.at_ms), device: self.device_id().to_string(), text: text.to_string() };
        let ((), order) = self.store.edit(
            id,
            "note",
            stamp,
            |o: &mut WorkOrder| -> Result<((), Vec<Change>, Option<Draft>)> {
                let draft = Draft::new(JournalKind::Note, Some(id), serde_json::json!({ "text": &note.text }));
                o.notes.push(note);
                Ok(((), vec![Change::AppendNote], Some(draft)))
            },
            |o| self.summarize(o),
        )?;
        self.changed(id, ChangeOrigin::Local);
        Ok(self.view(order))
    }

    /// What the order documents take on disk, and where the database is.
    pub fn footprint(&self) -> Result<(crate::store::Footprint, std::path::PathBuf)> {
        Ok((self.store.document_footprint()?, self.store.path().to_path_buf()))
    }

    /// The order's whole Automerge document, for a peer or a server.
    pub fn document_bytes(&self, id: &str) -> Result<Vec<u8>> {
        Ok(self.store.document_bytes(id)?)
    }

    /// Merges a document received from a peer or a server.
    pub fn merge_document(&self, bytes: &[u8]) -> Result<OrderView> {
        let order = self.store.merge(bytes, |o| self.summarize(o), self.stamp())?;
        self.changed(&order.id, ChangeOrigin::Remote);
        Ok(self.view(order))
    }
}
