//! The sync engine's vocabulary: options, progress, report, status, errors and the retry
//! policy. The engine (`engine.rs`) runs on a [`crate::Device`], whose store holds the
//! outbox: unacknowledged journal entries, dirty orders, photos to upload.

use serde::Serialize;

use crate::sync::transport::{NetError, Response};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("this device is not enrolled with a server; enrol it with a code from the dispatcher")]
    NotEnrolled,
    #[error("the server refused this device ({0}); it may have been revoked: enrol it again")]
    Unauthorized(String),
    #[error("the server refused the request: {0}")]
    Refused(String),
    #[error("network: {0}")]
    Network(#[from] NetError),
    #[error("the server failed ({status}): {reason}")]
    Server { status: u16, reason: String },
    #[error("the server's answer cannot be understood: {0}")]
    Protocol(String),
    /// The device's own journal does not hold together (the database was altered): nothing
    /// of it is uploaded; `onsite journal verify` names the entry.
    #[error("this device's journal does not hold together and is not uploaded: {0}")]
    Journal(String),
    #[error("cancelled")]
    Cancelled,
    /// This device's copy of a photo is missing or damaged (its encryption fails to
    /// authenticate): it can never upload, and is wedged with this reason.
    #[error("this device's copy of the photo cannot be read: {0}")]
    LocalBlob(String),
    /// The server showed a log checkpoint that does not extend the one this device saw
    /// before: the provider's log was forked or rolled back. The sync stops; both
    /// checkpoints are kept as evidence (`Device::log_fork`).
    #[error("the provider's evidence log is not consistent with what this device saw before: {0}")]
    LogFork(String),
}

impl Error {
    /// Worth retrying later (the network or the server may recover).
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Network(_) | Error::Server { .. })
    }
}

/// Reads an error response: 401/403 unauthorized, 5xx and 429 transient, other 4xx refused.
pub fn classify(resp: &Response) -> Error {
    let reason = serde_json::from_slice::<super::protocol::ErrorBody>(&resp.body)
        .map(|b| format!("{}: {}", b.error, b.reason))
        .unwrap_or_else(|_| String::from_utf8_lossy(&resp.body[..resp.body.len().min(200)]).into_owned());
    match resp.status {
        401 | 403 => Error::Unauthorized(reason),
        429 | 500..=599 => Error::Server { status: resp.status, reason },
        _ => Error::Refused(format!("{} {}", resp.status, reason)),
    }
}

#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// Attempts per request before the pass gives up on it (transient failures only).
    pub max_attempts: u32,
    /// Exponential backoff with full jitter: `base * 2^attempt`, capped.
    pub base_backoff_ms: u64,
    pub max_backoff_ms: u64,
    /// Journal entries per upload request.
    pub journal_batch: usize,
    /// Ask for a new time ticket when the last one is older than this.
    pub ticket_every_ms: i64,
    /// Photos are retried across passes after this backoff base, and wedged after this many
    /// permanent failures.
    pub blob_wedge_after: u32,
    /// Stops the pass between requests (and during a backoff wait) once fired.
    pub cancel: crate::Cancel,
}

impl Default for SyncOptions {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base_backoff_ms: 500,
            max_backoff_ms: 30_000,
            journal_batch: 30_000,
            ticket_every_ms: 10 * 60 * 1000,
            blob_wedge_after: 3,
            cancel: crate::Cancel::new(),
        }
    }
}

impl SyncOptions {
    /// The wait before retry `attempt` (1-based), with full jitter from `entropy`.
    pub fn backoff_ms(&self, attempt: u32, entropy: u64) -> u64 {
        let exp = self.base_backoff_ms.saturating_mul(1u64 << attempt.min(20)).min(self.max_backoff_ms);
        if exp == 0 {
            return 0;
        }
        exp / 2 + entropy % (exp / 2 + 1)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Journal,
    Orders,
    Photos,
}

/// Progress for the app's sync indicator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SyncProgress {
    pub phase: Phase,
    pub done: u64,
    pub total: u64,
}

pub trait SyncObserver: Send + Sync {
    fn progress(&self, progress: &SyncProgress);
}

/// An order the server refused in a pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RejectedOrder {
    pub id: String,
    /// The server's reason code (`RejectCode::as_str`).
    pub code: String,
    /// The field that broke a rule, when one did.
    pub field: Option<String>,
}

/// What one sync pass did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SyncReport {
    pub round_trips: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// Wire bytes (both directions) of each phase.
    pub journal_bytes: u64,
    pub orders_bytes: u64,
    pub photos_bytes: u64,
    pub retries: u64,
    pub journal_uploaded: u64,
    pub receipts_uploaded: u64,
    pub orders_pushed: u64,
    pub orders_pulled: u64,
    /// Orders refused by the server.
    pub orders_rejected: Vec<RejectedOrder>,
    /// Orders rebuilt on the server's version after a refusal.
    pub orders_rebased: u64,
    pub orders_removed: Vec<String>,
    /// Orders changed by this pass (for change listeners).
    pub changed_orders: Vec<String>,
    pub blobs_uploaded: u64,
    pub blob_bytes: u64,
    /// Part movements the server acknowledged / new ones merged in (the clerk's).
    pub movements_pushed: u64,
    pub movements_pulled: u64,
    /// Expert reference photos downloaded.
    pub photos_fetched: u64,
    /// Failures this pass could not get past (the outbox keeps the work).
    pub errors: Vec<String>,
}

impl SyncReport {
    /// Everything that was pending went through.
    pub fn complete(&self) -> bool {
        self.errors.is_empty()
    }
}

/// What the UI shows about sync, from local state only.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SyncStatus {
    pub enrolled: bool,
    pub server: Option<String>,
    pub provider: Option<String>,
    pub engineer: Option<String>,
    pub pending_journal: u64,
    pub pending_orders: u64,
    pub pending_blobs: u64,
    pub removed_orders: u64,
    /// Photos that failed permanently: (sha256, reason).
    pub wedged: Vec<(String, String)>,
    pub last_success_at: Option<i64>,
    pub last_error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let o = SyncOptions { base_backoff_ms: 100, max_backoff_ms: 5_000, ..Default::default() };
        for attempt in 1..30 {
            let cap = (100u64 << attempt.min(20)).min(5_000);
            for e in [0u64, 1, 77, u64::MAX] {
                let b = o.backoff_ms(attempt, e);
                assert!(b >= cap / 2 && b <= cap, "attempt {attempt}: {b} not in [{}, {cap}]", cap / 2);
            }
        }
        assert_ne!(o.backoff_ms(3, 1), o.backoff_ms(3, 250), "jitter spreads retries");
    }

    #[test]
    fn responses_are_classified() {
        let r = |status| Response { status, headers: vec![], body: br#"{"error":"x","reason":"y"}"#.to_vec() };
        assert!(matches!(classify(&r(401)), Error::Unauthorized(_)));
        assert!(classify(&r(503)).is_transient());
        assert!(classify(&r(429)).is_transient());
        assert!(!classify(&r(422)).is_transient());
    }
}
