//! Cooperative cancellation for long operations (a sync pass, photo ingest, bundle export).
//! The caller keeps a clone and calls [`Cancel::cancel`]; the operation checks at safe
//! points (between requests, between chunks, before a commit) and stops with
//! [`crate::Error::Cancelled`]. Work already committed stays committed: cancelling never
//! loses accepted data, it only stops what has not started.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// `Err(Cancelled)` once cancelled.
    pub fn check(&self) -> crate::Result<()> {
        if self.is_cancelled() {
            Err(crate::Error::Cancelled)
        } else {
            Ok(())
        }
    }

    /// Sleeps up to `d`, waking early (and returning true) when cancelled.
    pub fn sleep(&self, d: Duration) -> bool {
        let step = Duration::from_millis(20);
        let mut left = d;
        while !left.is_zero() {
            if self.is_cancelled() {
                return true;
            }
            let s = left.min(step);
            std::thread::sleep(s);
            left -= s;
        }
        self.is_cancelled()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_the_flag_and_sleep_wakes_early() {
        let c = Cancel::new();
        assert!(c.check().is_ok());
        let other = c.clone();
        let t = std::thread::spawn(move || other.sleep(Duration::from_secs(30)));
        std::thread::sleep(Duration::from_millis(50));
        c.cancel();
        assert!(t.join().unwrap(), "sleep reports the cancel");
        assert!(matches!(c.check(), Err(crate::Error::Cancelled)));
    }
}
