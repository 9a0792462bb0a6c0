//! The typed order of recently written documents, keyed by the document's heads.
//!
//! A push is checked against the order as it was before the merge, which took a whole hydrate
//! of the stored document on every push (half of the hydrating the server does). The order
//! each write leaves behind (a merged push, a dispatcher's edit, a new order) is kept here
//! under the heads of the document it was read from or written into. A later write uses it
//! only when the document it loaded has exactly those heads: the same heads are the same
//! changes, so the same order, whichever instance wrote them; anything else is a miss and is
//! hydrated. Entries are small (the typed order, not the Automerge document, which ADR 0016
//! measured at ~470 KB) and bounded in number; the oldest insertion goes first.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use automerge::ChangeHash;
use onsite_core::order::WorkOrder;

/// Orders kept by default: a provider's busy day, at a few tens of KB each.
pub const DEFAULT_CAPACITY: usize = 4096;

type Key = (String, String);

pub struct Hydrated {
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    orders: HashMap<Key, (Vec<ChangeHash>, Arc<WorkOrder>)>,
    /// Keys in insertion order, for eviction.
    age: VecDeque<Key>,
}

impl Hydrated {
    pub fn new(capacity: usize) -> Self {
        Self { capacity, inner: Mutex::new(Inner::default()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The order of `provider`/`id` if it was kept for a document with exactly `heads`.
    pub fn get(&self, provider: &str, id: &str, heads: &[ChangeHash]) -> Option<Arc<WorkOrder>> {
        let inner = self.lock();
        let (kept, order) = inner.orders.get(&(provider.to_string(), id.to_string()))?;
        (kept.as_slice() == heads).then(|| order.clone())
    }

    /// Keeps `order` as what the document of `provider`/`id` with `heads` hydrates to.
    pub fn put(&self, provider: &str, id: &str, heads: Vec<ChangeHash>, order: Arc<WorkOrder>) {
        if self.capacity == 0 {
            return;
        }
        let mut inner = self.lock();
        let key = (provider.to_string(), id.to_string());
        if inner.orders.insert(key.clone(), (heads, order)).is_none() {
            inner.age.push_back(key);
        }
        while inner.orders.len() > self.capacity {
            let Some(oldest) = inner.age.pop_front() else { break };
            inner.orders.remove(&oldest);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().orders.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(id: &str) -> Arc<WorkOrder> {
        let json = format!(
            r#"{{"id": "{id}", "provider": {{"id": "p", "name": "P"}},
  "customer": {{"company": "C", "contact": "c", "phone": "+86 10 6552 1234"}},
  "site": {{"address": "a", "lat": 39.9087, "lon": 116.4602, "in_service_area": true, "distance_km": 8.4}},
  "equipment": {{"category": "laptop", "brand": "ThinkPad", "model": "T14", "serial": "PF3", "warranty": "in_warranty", "warranty_ends": "2027-06-30"}},
  "fault": {{"description": "black screen", "reported_at": "2026-11-23T09:10:00+08:00", "channel": "phone"}},
  "priority": "urgent", "engineer": {{"id": "e", "name": "E"}}}}"#
        );
        Arc::new(onsite_core::order::import::parse_orders(&json, onsite_core::order::Timestamp(0)).unwrap().remove(0))
    }

    fn heads(n: u8) -> Vec<ChangeHash> {
        vec![ChangeHash([n; 32])]
    }

    #[test]
    fn an_order_is_served_only_for_the_heads_it_was_kept_under() {
        let h = Hydrated::new(8);
        h.put("p", "WO-1", heads(1), order("WO-1"));
        assert_eq!(h.get("p", "WO-1", &heads(1)).map(|o| o.id.clone()).as_deref(), Some("WO-1"));
        assert!(h.get("p", "WO-1", &heads(2)).is_none(), "another document state");
        assert!(h.get("q", "WO-1", &heads(1)).is_none(), "another provider");
        h.put("p", "WO-1", heads(2), order("WO-1"));
        assert!(h.get("p", "WO-1", &heads(1)).is_none(), "replaced by the newer state");
        assert!(h.get("p", "WO-1", &heads(2)).is_some());
    }

    #[test]
    fn the_oldest_order_goes_first_and_the_bound_holds() {
        let h = Hydrated::new(3);
        for k in 0..5u8 {
            h.put("p", &format!("WO-{k}"), heads(k), order(&format!("WO-{k}")));
        }
        assert_eq!(h.len(), 3);
        assert!(h.get("p", "WO-0", &heads(0)).is_none() && h.get("p", "WO-1", &heads(1)).is_none());
        assert!(h.get("p", "WO-4", &heads(4)).is_some());
        // Replacing a kept order does not grow the queue past the bound.
        for _ in 0..10 {
            h.put("p", "WO-4", heads(9), order("WO-4"));
        }
        assert_eq!(h.len(), 3);
        let off = Hydrated::new(0);
        off.put("p", "WO-1", heads(1), order("WO-1"));
        assert_eq!(off.len(), 0);
    }
}
