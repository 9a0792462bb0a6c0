//! Live fan-out of the feed head: every instance keeps a [`Notifier`]; a change committed
//! here publishes its position at once, and a change committed by another instance arrives
//! through the storage backend (`Storage::watch_feed`: PostgreSQL LISTEN/NOTIFY, the position
//! read back from `feed_head`). Long-polling syncs (`POST /v1/sync?wait_ms=`) and the
//! console's live views wait on it instead of polling the database.

use tokio::sync::watch;

pub struct Notifier {
    tx: watch::Sender<u64>,
    /// Set when the server starts draining: waiters answer at once instead of at their deadline.
    closing: watch::Sender<bool>,
}

impl Notifier {
    pub fn new(head: u64) -> Self {
        Self { tx: watch::Sender::new(head), closing: watch::Sender::new(false) }
    }

    /// The server is shutting down: every waiter returns now (its request is answered within
    /// the drain instead of being cut off).
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// Raises the known head to `head` (a lower or equal value changes nothing and wakes no one).
    pub fn publish(&self, head: u64) {
        self.tx.send_if_modified(|h| {
            if head > *h {
                *h = head;
                true
            } else {
                false
            }
        });
    }

    pub fn head(&self) -> u64 {
        *self.tx.borrow()
    }

    /// Becomes `true` when the server starts draining (live streams end then).
    pub fn closing(&self) -> watch::Receiver<bool> {
        self.closing.subscribe()
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.tx.subscribe()
    }

    /// Waits until the head passes `after`, `deadline` comes or the server starts draining;
    /// returns the head then.
    pub async fn wait_past(&self, after: u64, deadline: tokio::time::Instant) -> u64 {
        let (mut rx, mut closing) = (self.subscribe(), self.closing.subscribe());
        let passed = async { rx.wait_for(|h| *h > after).await.map(|h| *h) };
        let closed = async { closing.wait_for(|c| *c).await.map(|_| ()) };
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => {}
            _ = passed => {}
            _ = closed => {}
        }
        self.head()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn a_waiter_wakes_when_the_head_passes_its_cursor_and_not_before() {
        let n = Arc::new(Notifier::new(5));
        n.publish(3);
        assert_eq!(n.head(), 5, "the head never moves back");
        let soon = tokio::time::Instant::now() + Duration::from_millis(50);
        assert_eq!(n.wait_past(5, soon).await, 5, "nothing new: the wait times out");
        let n2 = n.clone();
        let waiter = tokio::spawn(async move { n2.wait_past(5, tokio::time::Instant::now() + Duration::from_secs(10)).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        n.publish(5);
        n.publish(9);
        assert_eq!(tokio::time::timeout(Duration::from_secs(2), waiter).await.unwrap().unwrap(), 9);
        // A head already past the cursor answers at once.
        assert_eq!(n.wait_past(7, tokio::time::Instant::now()).await, 9);
        // Draining: a waiter with a long deadline returns as soon as the server closes.
        let n2 = n.clone();
        let waiter = tokio::spawn(async move { n2.wait_past(9, tokio::time::Instant::now() + Duration::from_secs(60)).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        n.close();
        assert_eq!(tokio::time::timeout(Duration::from_secs(2), waiter).await.unwrap().unwrap(), 9);
        assert_eq!(n.wait_past(9, tokio::time::Instant::now() + Duration::from_secs(60)).await, 9, "closed stays closed");
    }
}
