//! Change observation: screens subscribe and are told which orders changed, after local
//! edits or merges from sync, so a list or detail screen refreshes without polling.
//!
//! Notifications are sent after the change is committed and outside every store lock, so a
//! listener may read the store from its callback. A listener that panics is contained and
//! logged; the others are still told. Dropping the [`Subscription`] stops delivery.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, Weak};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum ChangeOrigin {
    /// An edit made on this device (import, transition, checklist, photo, receipt, ...).
    Local,
    /// Changes that arrived from the server (or a peer document merge).
    Remote,
}

pub trait ChangeListener: Send + Sync {
    fn orders_changed(&self, order_ids: &[String], origin: ChangeOrigin);
}

type Listeners = RwLock<Vec<(u64, Arc<dyn ChangeListener>)>>;

#[derive(Default)]
pub struct ChangeFeed {
    next: AtomicU64,
    listeners: Arc<Listeners>,
}

/// Keeps a listener registered; dropping it (or [`Subscription::cancel`]) unregisters.
pub struct Subscription {
    id: u64,
    listeners: Weak<Listeners>,
}

impl Subscription {
    pub fn cancel(&self) {
        if let Some(l) = self.listeners.upgrade() {
            if let Ok(mut v) = l.write() {
                v.retain(|(id, _)| *id != self.id);
            }
        }
    }

    pub fn is_active(&self) -> bool {
        self.listeners.upgrade().and_then(|l| l.read().ok().map(|v| v.iter().any(|(id, _)| *id == self.id))).unwrap_or(false)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.cancel();
    }
}

impl ChangeFeed {
    pub fn subscribe(&self, listener: Arc<dyn ChangeListener>) -> Subscription {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut v) = self.listeners.write() {
            v.push((id, listener));
        }
        Subscription { id, listeners: Arc::downgrade(&self.listeners) }
    }

    pub fn listener_count(&self) -> usize {
        self.listeners.read().map(|v| v.len()).unwrap_or(0)
    }

    /// Tells every listener; ids are deduplicated and sorted. Nothing is sent for no ids.
    pub fn emit(&self, ids: impl IntoIterator<Item = String>, origin: ChangeOrigin) {
        let mut ids: Vec<String> = ids.into_iter().collect();
        ids.sort();
        ids.dedup();
        if ids.is_empty() {
            return;
        }
        // Snapshot, then call without the lock: a listener may subscribe or drop its handle.
        let listeners: Vec<Arc<dyn ChangeListener>> = match self.listeners.read() {
            Ok(v) => v.iter().map(|(_, l)| l.clone()).collect(),
            Err(_) => return,
        };
        for l in listeners {
            let call = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| l.orders_changed(&ids, origin)));
            if call.is_err() {
                tracing::warn!(orders = ids.len(), "a change listener failed; the others were still told");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Rec(Mutex<Vec<(Vec<String>, ChangeOrigin)>>);
    impl ChangeListener for Rec {
        fn orders_changed(&self, ids: &[String], origin: ChangeOrigin) {
            self.0.lock().unwrap().push((ids.to_vec(), origin));
        }
    }
    struct Panics;
    impl ChangeListener for Panics {
        fn orders_changed(&self, _: &[String], _: ChangeOrigin) {
            panic!("listener bug");
        }
    }

    #[test]
    fn delivers_deduplicated_ids_until_the_handle_drops() {
        let feed = ChangeFeed::default();
        let rec = Arc::new(Rec::default());
        let _bad = feed.subscribe(Arc::new(Panics));
        let sub = feed.subscribe(rec.clone());
        assert!(sub.is_active());
        feed.emit(["b".to_string(), "a".into(), "b".into()], ChangeOrigin::Local);
        feed.emit(Vec::<String>::new(), ChangeOrigin::Local);
        assert_eq!(rec.0.lock().unwrap().as_slice(), &[(vec!["a".to_string(), "b".into()], ChangeOrigin::Local)]);
        drop(sub);
        feed.emit(["c".to_string()], ChangeOrigin::Remote);
        assert_eq!(rec.0.lock().unwrap().len(), 1, "no delivery after the handle dropped");
        assert_eq!(feed.listener_count(), 1);
    }
}
