//! Order documents on the server: dispatch (create), dispatcher edits (assign, cancel,
//! priority), reads, and storing a merged change (with compaction, in one storage call).

use automerge::AutoCommit;
use onsite_core::order::lifecycle::{self, Raised};
use onsite_core::order::{self, document, Actor, Event, Priority, WorkOrder};

use super::{internal, Error, Result, Service, SERVER_ORIGIN};
use crate::storage::{self, Compaction, NewChange, OrderRow};

/// One row of the console's board: the order's summary (as devices list it) and what the
/// dispatcher also searches and reads.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BoardRow {
    #[serde(flatten)]
    pub order: onsite_core::OrderSummary,
    pub serial: String,
    pub engineer_name: String,
}

/// Read-merge-write attempts before a write that keeps meeting other instances' changes
/// gives up (each attempt reloads the document).
pub(super) const MAX_STALE_RETRIES: usize = 8;

impl Service {
    pub(super) fn load(&self, provider: &str, id: &str) -> Result<(AutoCommit, Vec<Vec<u8>>)> {
        let stored = self.storage.document(provider, id)?;
        let doc = document::load_stored(&stored).map_err(internal)?;
        Ok((doc.with_actor(self.actor.clone()), stored))
    }

    pub(super) fn row_of(&self, provider: &str, o: &WorkOrder) -> OrderRow {
        OrderRow {
            provider: provider.to_string(),
            id: o.id.clone(),
            engineer_id: o.engineer.id.clone(),
            status: o.status.as_str().to_string(),
            priority: o.priority.as_str().to_string(),
            customer: o.customer.company.clone(),
            updated_seq: 0,
            assigned_seq: 0,
            compacted_seq: 0,
            summary: self.summary_of(o),
        }
    }

    /// The order's board summary as stored in its row: the deadlines are fixed by the order,
    /// so `breached` is left false and decided when the row is read.
    pub(crate) fn summary_of(&self, o: &WorkOrder) -> String {
        let s = self.board_row(o);
        // A summary is a plain struct of strings and numbers: it always serializes.
        serde_json::to_string(&s).unwrap_or_else(|e| {
            tracing::error!(order = %o.id, error = %e, "an order summary did not serialize; the console will read the document");
            String::new()
        })
    }

    /// Loads an order for a read-merge-write: its `updated_seq` first, then the document
    /// (which therefore holds at least everything up to that seq). `store_change` with that
    /// seq is refused as stale if another writer (instance) stored a change meanwhile.
    pub(super) fn load_for_write(&self, provider: &str, id: &str) -> Result<(AutoCommit, Vec<Vec<u8>>, u64)> {
        let seq = self.storage.order(provider, id)?.ok_or_else(|| Error::NotFound(format!("order `{id}` not found")))?.updated_seq;
        let (doc, stored) = self.load(provider, id)?;
        Ok((doc, stored, seq))
    }

    /// Stores a new chunk of `after.id`, compacting the order in the same transaction once
    /// it has more than `compact_after` change rows.
    #[allow(clippy::too_many_arguments)] // the change, where it came from and what it was read at
    pub(super) fn store_change(
        &self,
        provider: &str,
        doc: &mut AutoCommit,
        after: &WorkOrder,
        origin: &str,
        chunk: &[u8],
        previous_engineer: Option<&str>,
        expected_seq: u64,
    ) -> std::result::Result<u64, storage::Error> {
        let row = self.row_of(provider, after);
        let change = NewChange { row: &row, origin, chunk, previous_engineer, expected_seq };
        let mut snapshot = || doc.save();
        let stored = self.storage.store_change(&change, Compaction { after_rows: self.compact_after, snapshot: &mut snapshot })?;
        self.notifier.publish(stored.seq);
        Ok(stored.seq)
    }

    fn board_row(&self, o: &WorkOrder) -> BoardRow {
        BoardRow {
            order: onsite_core::OrderSummary::of(o, &self.sla, &self.calendar, self.clock.now()),
            serial: o.equipment.serial.clone(),
            engineer_name: o.engineer.name.clone(),
        }
    }

    /// Every order of `provider` as the board shows it, from the summary column (an order
    /// stored before that column existed is read from its document once per call).
    /// `breached` is decided against the clock now.
    pub fn board(&self, provider: &str) -> Result<Vec<(OrderRow, BoardRow)>> {
        let now = self.now_ms();
        let mut out = Vec::new();
        for row in self.storage.orders(provider, None)? {
            let mut b = match serde_json::from_str::<BoardRow>(&row.summary) {
                Ok(b) => b,
                Err(_) => self.board_row(&self.order(provider, &row.id)?),
            };
            b.order.breached = b.order.sla_deadline.is_some_and(|d| d <= now);
            out.push((row, b));
        }
        Ok(out)
    }

    pub fn create_orders(&self, provider: &str, json: &str) -> Result<Vec<String>> {
        let now = order::Timestamp(self.now_ms());
        let orders = order::import::parse_orders(json, now).map_err(|e| Error::BadRequest(e.to_string()))?;
        if let Some(o) = orders.iter().find(|o| o.provider.id != provider) {
            return Err(Error::Forbidden(format!("order `{}` names provider `{}`, not yours", o.id, o.provider.id)));
        }
        let _guards = self.locks.lock_all(provider, orders.iter().map(|o| o.id.as_str()));
        for o in &orders {
            if self.storage.order(provider, &o.id)?.is_some() {
                return Err(Error::Conflict { reason: format!("order `{}` already exists", o.id), acked_seq: None, offset: None });
            }
        }
        let mut ids = Vec::new();
        for o in orders {
            let mut doc = document::create(&o, self.actor.clone(), "dispatch", now.0).map_err(internal)?;
            let seq = self.storage.create_order(&self.row_of(provider, &o), &doc.save())?;
            self.notifier.publish(seq);
            self.hydrated.put(provider, &o.id, doc.get_heads(), std::sync::Arc::new(o.clone()));
            ids.push(o.id);
        }
        self.metrics.orders_created.add(ids.len() as u64);
        Ok(ids)
    }

    pub fn order(&self, provider: &str, id: &str) -> Result<WorkOrder> {
        let (doc, _) = self.load(provider, id)?;
        document::hydrate(&doc).map_err(internal)
    }

    /// An order and the fields whose concurrent values the merge resolved (winner first, each
    /// with its author: a device id, or `server` for the dispatcher's edits), from one load.
    pub fn order_with_conflicts(&self, provider: &str, id: &str) -> Result<(WorkOrder, Vec<document::FieldConflict>)> {
        let (doc, _) = self.load(provider, id)?;
        let order = document::hydrate(&doc).map_err(internal)?;
        let server = self.actor.to_hex_string();
        let mut conflicts = document::conflicts(&doc).map_err(internal)?;
        for v in conflicts.iter_mut().flat_map(|c| c.values.iter_mut()) {
            if v.actor == server {
                v.actor = SERVER_ORIGIN.to_string();
            }
        }
        Ok((order, conflicts))
    }

    pub fn orders(&self, provider: &str, engineer: Option<&str>) -> Result<Vec<OrderRow>> {
        Ok(self.storage.orders(provider, engineer)?)
    }

    /// A dispatcher's edit: `f` changes the order; the change goes to the feed. When another
    /// instance stored a change meanwhile, the edit is redone on the fresh document.
    pub(super) fn dispatcher_edit(&self, provider: &str, id: &str, mut f: impl FnMut(&mut WorkOrder, i64) -> Result<()>) -> Result<WorkOrder> {
        let _guard = self.locks.lock(provider, id);
        for _ in 0..MAX_STALE_RETRIES {
            let (mut doc, _, read_at) = self.load_for_write(provider, id)?;
            let before = match self.hydrated.get(provider, id, &doc.get_heads()) {
                Some(o) => (*o).clone(),
                None => document::hydrate(&doc).map_err(internal)?,
            };
            let mut after = before.clone();
            let now = self.now_ms();
            f(&mut after, now)?;
            if after == before {
                return Ok(after);
            }
            let chunk = document::reconcile_commit(&mut doc, &after, "dispatcher", now).map_err(internal)?;
            match self.store_change(provider, &mut doc, &after, SERVER_ORIGIN, &chunk, Some(&before.engineer.id), read_at) {
                Err(storage::Error::Stale(_)) => continue,
                other => {
                    other?;
                    // What the document now hydrates to (an order written into a document
                    // reads back as itself: `order::document` tests).
                    self.hydrated.put(provider, id, doc.get_heads(), std::sync::Arc::new(after.clone()));
                    return Ok(after);
                }
            }
        }
        Err(Error::Conflict { reason: format!("order `{id}` kept changing; try again"), acked_seq: None, offset: None })
    }

    pub fn assign(&self, provider: &str, id: &str, engineer_id: &str, name: &str) -> Result<WorkOrder> {
        if engineer_id.trim().is_empty() {
            return Err(Error::BadRequest("engineer_id is required".into()));
        }
        self.dispatcher_edit(provider, id, |o, _| {
            if o.status.is_terminal() {
                return Err(Error::Conflict { reason: format!("order is {}", o.status.as_str()), acked_seq: None, offset: None });
            }
            o.engineer = order::Engineer { id: engineer_id.to_string(), name: name.to_string() };
            Ok(())
        })
    }

    pub fn cancel(&self, provider: &str, id: &str, reason: &str) -> Result<WorkOrder> {
        self.dispatcher_edit(provider, id, |o, now| {
            let event = Event::Cancel { reason: reason.to_string() };
            let raised = Raised { actor: Actor::Dispatcher, at: order::Timestamp(now), monotonic_ms: 0, device: SERVER_ORIGIN.into(), fix: None };
            lifecycle::apply(o, event, raised).map_err(|e| Error::Conflict { reason: e.to_string(), acked_seq: None, offset: None })?;
            Ok(())
        })
    }

    pub fn set_priority(&self, provider: &str, id: &str, priority: &str) -> Result<WorkOrder> {
        let p = Priority::parse(priority).ok_or_else(|| Error::BadRequest("priority is urgent, normal or low".into()))?;
        self.dispatcher_edit(provider, id, |o, _| {
            o.priority = p;
            Ok(())
        })
    }
}
