//! What the server does, independent of HTTP: enrolment, dispatcher edits, batched sync with
//! field ownership, journal verification into the evidence log, resumable blobs.

use std::sync::{Arc, Mutex, MutexGuard};

use automerge::ActorId;
use onsite_core::clock::Clock;
use onsite_core::evidence::signer::{Signer, SoftwareSigner};
use onsite_core::evidence::time::TimeAuthority;
use onsite_core::hash::{hex, sha256_hex, unhex};

mod access;
pub mod attestation;
mod blobs;
mod evidence;
mod feed;
mod help;
mod hydrated;
mod journal;
mod log;
mod orders;
mod parts;
mod profile;
mod sync;

pub use evidence::{PhotoRecord, ReceiptView};
pub use help::{route, AnswerInput, ExpertInput, HelpView};
pub use log::{parse_tile_path, ConsistencyProof, TileRef, WitnessEndpoint};
pub use orders::BoardRow;
pub use parts::{ClerkMovement, Unaccounted};

use crate::blobs::Blobs;
use crate::metrics::Metrics;
use crate::storage::{self, MetaKey, Storage};

/// Change rows per order before the server folds them into the snapshot.
pub const COMPACT_AFTER: u64 = 64;
/// Threads merging one sync request's pushes by default: one (see `Service::apply_pushes`).
pub const DEFAULT_PUSH_WORKERS: usize = 1;
/// Most threads a request's pushes are merged on.
pub const MAX_PUSH_WORKERS: usize = 8;
/// The key store's name for the log's note key (Ed25519 seed).
pub const LOG_NOTE_KEY: &str = "log-note-key";
/// Key-store name of the console's session HMAC key.
pub const CONSOLE_SESSION_KEY: &str = "console-session-key";
/// Enrolment codes live this long unless the dispatcher says otherwise.
pub const CODE_TTL_MS: i64 = 24 * 3600 * 1000;
/// The longest a dispatcher may make a code live (30 days).
pub const MAX_CODE_TTL_MINUTES: i64 = 30 * 24 * 60;
/// Origin of dispatcher edits in the feed (devices never have this id).
pub use onsite_core::sync::authz::SERVER_ORIGIN;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    BadRequest(String),
    #[error("missing, unknown or revoked credentials")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{reason}")]
    Conflict { reason: String, acked_seq: Option<u64>, offset: Option<u64> },
    #[error("{0}")]
    Unprocessable(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    TooMany(String),
    #[error("{0}")]
    Timeout(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<storage::Error> for Error {
    fn from(e: storage::Error) -> Self {
        match e {
            storage::Error::NotFound(what) => Error::NotFound(format!("{what} not found")),
            storage::Error::Exists(what) => Error::Conflict { reason: format!("{what} already exists"), acked_seq: None, offset: None },
            storage::Error::Conflict(reason) => Error::Conflict { reason, acked_seq: None, offset: None },
            storage::Error::Refused(reason) => Error::Forbidden(reason),
            other => Error::Internal(other.to_string()),
        }
    }
}

fn internal(e: impl std::fmt::Display) -> Error {
    Error::Internal(e.to_string())
}

pub type Result<T> = std::result::Result<T, Error>;

pub fn token_hash(token: &str) -> String {
    sha256_hex(token.as_bytes())
}

/// A 32-byte secret kept in the key store under `name`: read, or created once (when several
/// instances start at once, the first to create it wins and the others read that one).
fn shared_secret(keys: &dyn crate::keys::KeyStore, name: &str) -> Result<Vec<u8>> {
    let secret = match keys.get(name).map_err(internal)? {
        Some(secret) => secret,
        None => {
            let fresh: [u8; 32] = rand::random();
            match keys.create(name, &fresh) {
                Ok(()) => fresh.to_vec(),
                Err(crate::keys::Error::Exists { .. }) => keys.get(name).map_err(internal)?.ok_or_else(|| internal("a key that exists cannot be read"))?,
                Err(e) => return Err(internal(e)),
            }
        }
    };
    if secret.len() != 32 {
        return Err(internal(format!("the {name} key is not 32 bytes")));
    }
    Ok(secret)
}

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut b);
    hex(&b)
}

/// Order documents are read, merged and written under their order's lock: pushes to one
/// order serialize, different orders proceed in parallel. A fixed set of shards (an order
/// hashes to one) keeps memory bounded; two orders sharing a shard only wait for each other.
pub(crate) struct OrderLocks {
    shards: Vec<Mutex<()>>,
}

impl OrderLocks {
    const SHARDS: usize = 256;

    fn new() -> Self {
        Self { shards: (0..Self::SHARDS).map(|_| Mutex::new(())).collect() }
    }

    fn shard(&self, provider: &str, id: &str) -> usize {
        let h = sha256_hex(format!("{provider}\u{0}{id}").as_bytes());
        usize::from_str_radix(&h[..8], 16).map_or(0, |n| n % self.shards.len())
    }

    /// The lock of one order.
    pub(crate) fn lock(&self, provider: &str, id: &str) -> MutexGuard<'_, ()> {
        let m = &self.shards[self.shard(provider, id)];
        m.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The locks of several orders, taken in shard order (so two callers never deadlock).
    pub(crate) fn lock_all<'a>(&self, provider: &str, ids: impl IntoIterator<Item = &'a str>) -> Vec<MutexGuard<'_, ()>> {
        let mut shards: Vec<usize> = ids.into_iter().map(|id| self.shard(provider, id)).collect();
        shards.sort_unstable();
        shards.dedup();
        shards.into_iter().map(|i| self.shards[i].lock().unwrap_or_else(|p| p.into_inner())).collect()
    }
}

pub struct Service {
    storage: Arc<dyn Storage>,
    blobs: Blobs,
    clock: Arc<dyn Clock>,
    metrics: Metrics,
    /// Failed credential attempts per source address (see `http::FailureLimiter`).
    limiter: crate::http::FailureLimiter,
    time_authority: TimeAuthority,
    log_key: SoftwareSigner,
    /// Seed of the Ed25519 key that signs the log's C2SP checkpoints.
    note_seed: Vec<u8>,
    /// The witnesses checkpoints go to, and what they cosigned.
    witnessing: log::Witnessing,
    actor: ActorId,
    admin_token_hash: String,
    locks: OrderLocks,
    /// The typed order of recently written documents, by their heads (`hydrated.rs`).
    hydrated: hydrated::Hydrated,
    /// Change rows per order before compaction ([`COMPACT_AFTER`] unless configured).
    compact_after: u64,
    /// Threads merging one sync request's pushes ([`DEFAULT_PUSH_WORKERS`] unless configured).
    push_workers: usize,
    /// The feed head, published on every commit here and on every commit the backend hears of.
    notifier: Arc<crate::notify::Notifier>,
    /// Key attestation at enrolment (docs/adr/0019).
    attestation: Arc<attestation::AttestationConfig>,
    /// The HMAC key of console sessions and their CSRF tokens.
    console_key: Vec<u8>,
    /// SLA clocks of the board (docs/adr/0004): the defaults of seed 002 and China's calendar.
    sla: onsite_core::sla::SlaPolicy,
    calendar: onsite_core::sla::WorkCalendar,
}

impl Service {
    /// Opens the service over `storage`, creating the server's keys on first start.
    pub fn new(storage: Arc<dyn Storage>, keys: &dyn crate::keys::KeyStore, blobs: Blobs, clock: Arc<dyn Clock>, admin_token: &str) -> Result<Self> {
        let key = |name: MetaKey| -> Result<SoftwareSigner> {
            if let Some(secret) = keys.get(name.as_str()).map_err(internal)? {
                return SoftwareSigner::from_secret(&secret).map_err(internal);
            }
            // Databases from before the key store kept the keys in `meta`: move them out.
            let k = match storage.meta(name)? {
                // Moved to the key store before (the entry was emptied), and gone from it now: a
                // new key would silently break every device that pinned the old one.
                Some(h) if h.is_empty() => {
                    return Err(internal(format!(
                        "the {} key is missing from the key store (DATA/keys); restore it: devices pinned it at enrolment",
                        name.as_str()
                    )))
                }
                Some(h) => SoftwareSigner::from_secret(&unhex(&h).ok_or_else(|| internal("bad key"))?).map_err(internal)?,
                // Never created: the first start.
                None => SoftwareSigner::generate().map_err(internal)?,
            };
            match keys.create(name.as_str(), &k.secret()) {
                Ok(()) => {}
                // Another instance starting at the same moment created it: use that one.
                Err(crate::keys::Error::Exists { .. }) => {
                    let secret = keys.get(name.as_str()).map_err(internal)?.ok_or_else(|| internal("a key that exists cannot be read"))?;
                    return SoftwareSigner::from_secret(&secret).map_err(internal);
                }
                Err(e) => return Err(internal(e)),
            }
            storage.set_meta(name, "")?;
            Ok(k)
        };
        let time_authority = TimeAuthority::new(Box::new(key(MetaKey::TimeAuthorityKey)?));
        // The Ed25519 seed that signs the log's C2SP checkpoints (ADR 0020): created once,
        // shared by every instance through the key store like the others.
        let note_seed = shared_secret(keys, LOG_NOTE_KEY)?;
        // The HMAC key of the console's session cookies (docs/adr/0021), shared the same way
        // so a session signed in on one instance is honoured by every other.
        let console_key = shared_secret(keys, CONSOLE_SESSION_KEY)?;
        let log_key = key(MetaKey::LogKey)?;
        let actor = match storage.meta(MetaKey::Actor)? {
            Some(a) => ActorId::from(unhex(&a).ok_or_else(|| internal("bad actor"))?),
            None => {
                let a = ActorId::random();
                storage.set_meta(MetaKey::Actor, &a.to_hex_string())?;
                a
            }
        };
        let notifier = Arc::new(crate::notify::Notifier::new(storage.max_seq()?));
        let n = notifier.clone();
        if storage.watch_feed(Arc::new(move |head| n.publish(head)))? {
            tracing::info!("listening for feed changes committed by other instances");
        }
        Ok(Self {
            storage,
            blobs,
            clock,
            metrics: Metrics::default(),
            limiter: Default::default(),
            time_authority,
            log_key,
            note_seed,
            witnessing: Default::default(),
            actor,
            admin_token_hash: token_hash(admin_token),
            locks: OrderLocks::new(),
            hydrated: hydrated::Hydrated::new(hydrated::DEFAULT_CAPACITY),
            compact_after: COMPACT_AFTER,
            push_workers: DEFAULT_PUSH_WORKERS,
            notifier,
            console_key,
            sla: Default::default(),
            calendar: onsite_core::sla::WorkCalendar::china_default(),
            attestation: Default::default(),
        })
    }

    /// Takes the client address from `X-Forwarded-For` when the peer is one of `proxies`.
    pub fn with_trusted_proxies(mut self, proxies: Vec<std::net::IpAddr>) -> Self {
        self.limiter = crate::http::FailureLimiter::with_trusted_proxies(proxies);
        self
    }

    /// Compacts an order after `n` change rows (tests use small values to compact often).
    /// Threads that merge one request's pushes (1..=[`MAX_PUSH_WORKERS`]).
    pub fn with_push_workers(mut self, n: usize) -> Self {
        self.push_workers = n.clamp(1, MAX_PUSH_WORKERS);
        self
    }

    pub fn with_attestation(mut self, config: attestation::AttestationConfig) -> Self {
        self.attestation = Arc::new(config);
        self
    }

    /// The attestation policy that applies to `provider`'s enrolments.
    pub fn attestation_policy(&self, provider: &str) -> onsite_core::attest::Policy {
        self.attestation.policy(provider)
    }

    pub fn with_compact_after(mut self, n: u64) -> Self {
        self.compact_after = n.max(1);
        self
    }

    /// The console's session HMAC key (`console::session`).
    pub(crate) fn console_key(&self) -> &[u8] {
        &self.console_key
    }

    pub(crate) fn now_ms(&self) -> i64 {
        self.clock.now().timestamp_millis()
    }

    pub fn time_authority_key(&self) -> Vec<u8> {
        self.time_authority.public_key()
    }

    pub fn log_key(&self) -> Vec<u8> {
        self.log_key.public_key()
    }

    /// The storage, for tests and tools that inspect it (routes go through the methods).
    pub fn storage(&self) -> &dyn Storage {
        &*self.storage
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Failed credential attempts per source address.
    pub fn limiter(&self) -> &crate::http::FailureLimiter {
        &self.limiter
    }

    /// The feed head as this instance knows it (waiters block on it).
    pub fn notifier(&self) -> &crate::notify::Notifier {
        &self.notifier
    }

    /// The blob store (for `/health` and tools).
    pub fn blob_store(&self) -> &dyn crate::blobs::ObjectStore {
        self.blobs.store()
    }

    /// The feed's head: the highest position handed out.
    pub fn head(&self) -> Result<u64> {
        Ok(self.storage.max_seq()?)
    }
}
