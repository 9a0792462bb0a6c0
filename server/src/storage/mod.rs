//! The server's storage: the [`Storage`] trait, the rows it speaks in and a backend-neutral
//! [`Error`]. Backends live beside it (`sqlite.rs`: one SQLite file in WAL mode, the default)
//! and each must pass the conformance suite in `conformance.rs` (docs/adr/0009,
//! docs/adr/0013). Blobs live outside, as files named by SHA-256 (see `blobs.rs`).
//!
//! The order feed: every server-side change to an order is a row of `feed` with a global
//! sequence number. A device's cursor is the highest seq it applied; answering a sync reads
//! the feed after the cursor (indexed), never every document.

pub mod conformance;
mod postgres;
mod sqlite;

pub use self::postgres::PostgresStorage;
pub use sqlite::SqliteStorage;

/// The backend a `--database` URL names: `postgres://...` (or `postgresql://`), or
/// `sqlite://PATH`. `None` for `sqlite://` without a path: the embedded default file.
pub fn open_url(url: &str) -> Result<Option<std::sync::Arc<dyn Storage>>> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Some(std::sync::Arc::new(PostgresStorage::open(url)?)));
    }
    match url.strip_prefix("sqlite://") {
        Some("") => Ok(None),
        Some(path) => Ok(Some(std::sync::Arc::new(SqliteStorage::open(std::path::Path::new(path))?))),
        None => Err(Error::Backend(format!("`{}` is neither sqlite://PATH nor postgres://...", redact(url)).into())),
    }
}

/// A database URL with its password (if any) hidden, for messages and logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// What any backend reports. Backend failures keep their cause as the source, without
/// this module naming the backend's types.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
    #[error("the database has schema version {found}, newer than this server supports ({supported})")]
    TooNew { found: u32, supported: u32 },
    #[error("{0} already exists")]
    Exists(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// Optimistic concurrency: the order changed since it was read.
    #[error("order `{0}` changed since it was read")]
    Stale(String),
    /// The caller's own check refused the write (an enrolment's attestation policy).
    #[error("{0}")]
    Refused(String),
}

pub type Result<T> = std::result::Result<T, Error>;

/// A log tree computation's failure as a storage error: a missing leaf is damage.
pub fn log_error(e: onsite_core::evidence::log::tree::Error<Error>) -> Error {
    use onsite_core::evidence::log::tree::Error as T;
    match e {
        T::Store(e) => e,
        T::MissingLeaf(i) => Error::Corrupt(format!("log leaf {i} is missing")),
        range @ T::Range { .. } => Error::Conflict(range.to_string()),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpertRow {
    pub provider: String,
    pub id: String,
    pub name: String,
    pub categories: Vec<String>,
    pub brands: Vec<String>,
    pub fee_cents: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HelpRow {
    pub provider: String,
    pub id: String,
    pub order_id: String,
    pub engineer: String,
    pub expert_id: Option<String>,
    pub status: String,
    pub cost_cents: i64,
    pub created_at: i64,
}

/// Decides an enrolment for a provider (the attestation policy); see [`Storage::enrol`].
pub type Admit<'a> = &'a dyn Fn(&str) -> Result<Option<String>>;

/// Admits every enrolment, recording nothing.
pub fn admit_all(_provider: &str) -> Result<Option<String>> {
    Ok(None)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRow {
    pub id: String,
    pub provider: String,
    pub engineer_id: String,
    pub public_key: Vec<u8>,
    pub revoked: bool,
    pub journal_seq: u64,
    pub journal_head: Option<String>,
    /// The key attestation's verdict (JSON), or the reason it failed, when the provider's
    /// policy checks attestations (docs/adr/0019).
    pub attestation: Option<String>,
    /// When the server last heard from the device (UTC ms; to the minute).
    pub last_seen_ms: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct OrderRow {
    pub provider: String,
    pub id: String,
    pub engineer_id: String,
    pub status: String,
    pub priority: String,
    pub customer: String,
    pub updated_seq: u64,
    pub assigned_seq: u64,
    pub compacted_seq: u64,
    /// The order's summary as JSON (`onsite_core::OrderSummary`, `breached` false), written
    /// with every change; '' for rows stored before migration 005 and not changed since.
    /// Not part of the `/v1/orders` answer (the console reads it).
    #[serde(skip_serializing)]
    pub summary: String,
}

/// A connection pool's state and the time its operations took, since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    pub max: u64,
    pub in_use: u64,
    pub idle: u64,
    /// Operations (one connection checkout each) and their summed duration.
    pub ops: u64,
    pub op_micros: u64,
    /// Summed time callers waited for a free connection.
    pub wait_micros: u64,
}

/// One feed row after a cursor.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedRow {
    pub seq: u64,
    pub order_id: String,
    pub kind: String,
    pub origin: String,
    pub engineer_id: Option<String>,
}

/// A verified journal entry to store and log.
#[derive(Debug, Clone)]
pub struct JournalRow {
    pub seq: u64,
    pub order_id: Option<String>,
    pub kind: String,
    pub body: Vec<u8>,
    pub hash: String,
    pub signature: Vec<u8>,
    pub leaf: [u8; 32],
}

/// A journal entry about one order, as the console reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderEntry {
    pub device_id: String,
    pub seq: u64,
    pub kind: String,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone)]
pub struct ReceiptRow {
    pub order_id: String,
    pub revision: u32,
    pub sha256: String,
    pub canonical: Vec<u8>,
    pub strokes: Option<Vec<u8>>,
    pub message: Vec<u8>,
    pub signature: Vec<u8>,
    pub journal_seq: u64,
}

/// Reads of the order feed; inside [`Storage::snapshot`] they all see one committed state.
pub trait FeedReader {
    /// The highest feed position ever handed out (never goes backwards, even when
    /// compaction removed the newest rows).
    fn head(&self) -> Result<u64>;
    fn order(&self, provider: &str, id: &str) -> Result<Option<OrderRow>>;
    /// The stored document: the snapshot followed by the change chunks after it.
    fn document(&self, provider: &str, id: &str) -> Result<Vec<Vec<u8>>>;
    /// Feed rows after `cursor` up to `upto` concerning `engineer` (their orders, and orders
    /// taken away from them).
    fn feed(&self, provider: &str, engineer: &str, cursor: u64, upto: u64) -> Result<Vec<FeedRow>>;
    /// Change chunks of one order with seq in `(after, upto]`, skipping `origin`.
    fn chunks_after(&self, provider: &str, id: &str, after: u64, upto: u64, skip_origin: &str) -> Result<Vec<Vec<u8>>>;
}

/// A device's merged change to one order, with the order's new summary row.
#[derive(Debug, Clone, Copy)]
pub struct NewChange<'a> {
    pub row: &'a OrderRow,
    /// The device id, or `SERVER_ORIGIN` for dispatcher edits.
    pub origin: &'a str,
    pub chunk: &'a [u8],
    /// The engineer before this change: when it differs, the feed gets unassign + assign.
    pub previous_engineer: Option<&'a str>,
    /// The order's `updated_seq` when the writer read it (before loading the document). If
    /// another writer (another instance) stored a change since, this one is refused with
    /// [`Error::Stale`] and nothing is written: the writer reloads and merges again.
    pub expected_seq: u64,
}

/// When and how a stored change compacts its order.
pub struct Compaction<'a> {
    /// Compact once the order has more change rows than this.
    pub after_rows: u64,
    /// The whole document (snapshot bytes), asked for only when compaction happens.
    pub snapshot: &'a mut dyn FnMut() -> Vec<u8>,
}

/// The outcome of [`Storage::store_change`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredChange {
    pub seq: u64,
    pub compacted: bool,
}

/// Who a redeemed enrolment code enrolled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrolled {
    pub provider: String,
    pub engineer_id: String,
}

/// A spare-part movement to record (the body is the movement's JSON).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MovementRecord {
    pub id: String,
    pub order_id: Option<String>,
    pub author: String,
    pub body: String,
}

/// A recorded movement with its position in the engineer's ledger feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMovement {
    pub seq: u64,
    pub body: String,
}

/// A signed certification as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificationRow {
    pub id: String,
    pub body: String,
    pub signature: String,
}

/// The server's own settings in `meta`: one name per key, spelled once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaKey {
    /// The server's Automerge actor id (hex).
    Actor,
    /// Legacy place of the time authority's secret (emptied once moved to the key store).
    TimeAuthorityKey,
    /// Legacy place of the log key's secret (emptied once moved to the key store).
    LogKey,
}

impl MetaKey {
    pub fn as_str(self) -> &'static str {
        match self {
            MetaKey::Actor => "actor",
            MetaKey::TimeAuthorityKey => "time_authority_key",
            MetaKey::LogKey => "log_key",
        }
    }
}

/// Everything the server persists outside blob files.
pub trait Storage: Send + Sync {
    fn meta(&self, key: MetaKey) -> Result<Option<String>>;
    fn set_meta(&self, key: MetaKey, value: &str) -> Result<()>;

    fn create_provider(&self, id: &str, name: &str, token_hash: &str, at_ms: i64) -> Result<()>;
    fn provider_by_token(&self, token_hash: &str) -> Result<Option<String>>;
    /// A provider's display name, if the provider exists.
    fn provider_name(&self, id: &str) -> Result<Option<String>>;

    fn create_code(&self, code_hash: &str, provider: &str, engineer_id: &str, expires_at: i64) -> Result<()>;
    /// Redeems a one-time code and registers the device with its token, atomically.
    /// Consumes the code and enrols the device. `admit` is asked, inside the transaction and
    /// before anything is written, with the code's provider: it returns the attestation
    /// record to keep with the device (JSON), or an error that refuses the enrolment and
    /// leaves the code unused.
    fn enrol(&self, code_hash: &str, now_ms: i64, device_id: &str, public_key: &[u8], token_hash: &str, admit: Admit<'_>) -> Result<Enrolled>;
    fn device_by_token(&self, token_hash: &str) -> Result<Option<DeviceRow>>;
    fn devices(&self, provider: &str) -> Result<Vec<DeviceRow>>;
    fn revoke_device(&self, provider: &str, device_id: &str, at_ms: i64) -> Result<()>;
    /// Records that the device was heard from at `at_ms`.
    fn touch_device(&self, device_id: &str, at_ms: i64) -> Result<()>;

    fn order(&self, provider: &str, id: &str) -> Result<Option<OrderRow>>;
    fn orders(&self, provider: &str, engineer: Option<&str>) -> Result<Vec<OrderRow>>;
    /// The stored document: the snapshot followed by the change chunks after it.
    fn document(&self, provider: &str, id: &str) -> Result<Vec<Vec<u8>>>;
    /// A new order: its snapshot and an `assign` feed row. Returns the seq.
    fn create_order(&self, row: &OrderRow, snapshot: &[u8]) -> Result<u64>;
    /// A change to an order, in one transaction: a `change` feed row, the summary columns,
    /// `unassign`/`assign` rows when the engineer changed, and, once the order has more than
    /// `compaction.after_rows` change rows, compaction: the snapshot is replaced by
    /// `(compaction.snapshot)()` (which holds every change so far) and the change rows it
    /// covers go, leaving a `compacted` marker row at the new seq.
    fn store_change(&self, change: &NewChange<'_>, compaction: Compaction<'_>) -> Result<StoredChange>;
    /// Change rows an order holds outside its snapshot.
    fn change_rows(&self, provider: &str, id: &str) -> Result<u64>;

    /// The feed head ([`FeedReader::head`]).
    fn max_seq(&self) -> Result<u64>;
    /// Starts listening for feed rows committed by other processes and calls `publish` with
    /// the new head (read back from storage, not trusted from the message). `false`: this
    /// backend has no other writers to hear from (the embedded SQLite file has one process).
    fn watch_feed(&self, publish: std::sync::Arc<dyn Fn(u64) + Send + Sync>) -> Result<bool> {
        let _ = publish;
        Ok(false)
    }
    /// A round trip to the database (`/health`).
    fn check(&self) -> Result<()> {
        self.max_seq().map(|_| ())
    }
    /// Connection pool use and query latency, when the backend has a pool (`/metrics`).
    fn pool_stats(&self) -> Option<PoolStats> {
        None
    }
    /// What the backend is, for logs and `/health` (no credentials).
    fn describe(&self) -> String;
    /// Runs `f` with a reader whose every read sees the same committed state (a read
    /// transaction): a sync answer computed inside never mixes before and after a compaction.
    fn snapshot(&self, f: &mut dyn FnMut(&dyn FeedReader) -> Result<()>) -> Result<()>;
    /// Canonical SHA-256s of an order's signed receipts that a journal upload delivered.
    fn receipt_hashes(&self, provider: &str, order_id: &str) -> Result<Vec<String>>;

    /// Appends verified journal entries of a device and their leaves to the provider's log.
    /// Returns the leaf index of each entry.
    fn append_journal(&self, device: &DeviceRow, entries: &[JournalRow], receipts: &[ReceiptRow]) -> Result<Vec<u64>>;
    fn journal_hash(&self, device_id: &str, seq: u64) -> Result<Option<String>>;
    /// Every leaf of a provider's log, in order (the migration tool's check; the service
    /// reads nodes).
    fn log_leaves(&self, provider: &str) -> Result<Vec<[u8; 32]>>;
    /// The number of leaves in a provider's log.
    fn log_size(&self, provider: &str) -> Result<u64>;
    /// Nodes `(level, index)` of a provider's log tree (level 0: the leaves); `None` for a
    /// node not stored (a log from before node storage: computed from its children).
    fn log_nodes(&self, provider: &str, ids: &[(u8, u64)]) -> Result<Vec<Option<[u8; 32]>>>;
    /// The data of leaves `[start, start + count)` that exist: each the 32-byte hash of the
    /// journal entry the leaf logs (what the leaf hash is computed from).
    fn log_entries(&self, provider: &str, start: u64, count: u64) -> Result<Vec<Vec<u8>>>;
    fn receipt_count(&self, provider: &str) -> Result<u64>;
    /// An order's signed receipts as uploaded, by revision, each with the device that signed it.
    fn receipts(&self, provider: &str, order_id: &str) -> Result<Vec<(String, ReceiptRow)>>;
    /// The `photo` journal entries about an order from the provider's devices (by device,
    /// then seq): what the console shows of its photos. A partial index keeps the upload path
    /// free of its cost (only photo rows are indexed).
    fn order_photo_entries(&self, provider: &str, order_id: &str) -> Result<Vec<OrderEntry>>;

    fn record_blob(&self, provider: &str, sha256: &str, size: u64, at_ms: i64) -> Result<bool>;
    fn has_blob(&self, provider: &str, sha256: &str) -> Result<bool>;
    fn blob_count(&self, provider: &str) -> Result<u64>;

    /// Adds part movements (id, order, author, JSON body); known ids are skipped. Returns
    /// how many were new.
    fn add_movements(&self, provider: &str, engineer: &str, rows: &[MovementRecord]) -> Result<usize>;
    /// (seq, body) of an engineer's movements after `after`.
    fn movements_after(&self, provider: &str, engineer: &str, after: u64) -> Result<Vec<StoredMovement>>;
    fn close_order(&self, provider: &str, order_id: &str, at_ms: i64, by: &str) -> Result<()>;
    fn closeout(&self, provider: &str, order_id: &str) -> Result<Option<i64>>;

    fn add_expert(&self, e: &ExpertRow, token_hash: &str) -> Result<()>;
    fn experts(&self, provider: &str) -> Result<Vec<ExpertRow>>;
    fn expert_by_token(&self, token_hash: &str) -> Result<Option<ExpertRow>>;
    fn upsert_help(&self, h: &HelpRow) -> Result<()>;
    fn help(&self, provider: &str, id: &str) -> Result<Option<HelpRow>>;
    fn help_requests(&self, provider: &str, expert: Option<&str>) -> Result<Vec<HelpRow>>;

    fn add_certification(&self, id: &str, provider: &str, engineer: &str, body: &str, signature: &str) -> Result<()>;
    /// An engineer's certifications, by id.
    fn certifications(&self, provider: &str, engineer: &str) -> Result<Vec<CertificationRow>>;
}
