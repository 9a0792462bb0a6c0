//! The operation log: append-only, hash-chained entries. Each entry's body is stored as the
//! exact canonical bytes that were hashed (and, when signed, signed), so verification never
//! depends on re-serializing anything.
//!
//! Body (canonical JSON, fields in this order): `v`, `device`, `seq`, `prev` (hex SHA-256 of
//! the previous body, 64 zeros for the first), `at_ms` (wall), `mono_ms` (monotonic),
//! `ticket` (anchor to the last server time ticket: its entry's seq and the monotonic ms since
//! it arrived), `kind`, `order`, `order_prev`, `payload_sha256`, `payload` (the JSON payload
//! when small, else null; its hash is always bound), `fix`, and in v2 `key` (which key signed
//! the entry: absent for the device key, else the seq of the `session_open` entry whose
//! session key did).
//!
//! v1 entries are each signed by the device key. v2 entries are signed rarely (ADR 0017): the
//! device's hardware key signs a `session_open` entry that certifies an in-memory session
//! key; most entries are not signed at all, and a `seal` entry signed by the session key
//! covers everything before it through the hash links (`prev` for the device's chain,
//! `order_prev` for one order's). Consents are countersigned by the hardware key. Rooms:
//! `seal` builds entries, `verify` checks them, `session` holds the session key.

pub mod seal;
pub mod session;
#[cfg(test)]
mod tests;
pub mod verify;

pub use seal::{seal, seal_with, Signing};
pub use session::{countersign_message, Countersign, SealPayload, Session, SessionOpen, SESSION_TTL_MS};
pub use verify::{verify, verify_keeping_bodies, verify_order_slice, verify_standalone, Keys, Problem, Report, SessionKey};

use serde::{Deserialize, Serialize};

use super::signer;
use crate::order::GpsFix;

pub const ZERO_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// Payloads larger than this are bound by hash only.
pub const INLINE_PAYLOAD_MAX: usize = 2048;
/// A wall-clock move this much larger or smaller than the monotonic clock's is journaled.
pub const CLOCK_JUMP_MS: i64 = 120_000;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Error {
    #[error(transparent)]
    Signer(#[from] signer::Error),
    #[error("journal entry {seq} is malformed: {reason}")]
    Malformed { seq: u64, reason: String },
    #[error("the payload of a `{kind}` entry cannot be written: {reason}")]
    Payload { kind: &'static str, reason: String },
    #[error("no session key is open to seal the journal")]
    NoSession,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketAnchor {
    /// Journal seq of the `time_ticket` entry.
    pub seq: u64,
    /// Monotonic ms elapsed since that ticket was received.
    pub elapsed_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Body {
    pub v: u32,
    pub device: String,
    pub seq: u64,
    pub prev: String,
    pub at_ms: i64,
    pub mono_ms: u64,
    pub ticket: Option<TicketAnchor>,
    pub kind: String,
    pub order: Option<String>,
    /// Hash of this device's previous entry about the same order (`ZERO_HASH` for the
    /// first): a per-order chain, so one order's slice verifies without the others' entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_prev: Option<String>,
    pub payload_sha256: String,
    pub payload: Option<serde_json::Value>,
    pub fix: Option<GpsFix>,
    /// v2: the `session_open` entry whose session key signed this entry (absent: the device
    /// key, or not signed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<u64>,
}

/// What a journal entry records. The body keeps the spelling (`as_str`), so a verifier
/// reads entries of kinds it does not know; everything that writes one names it here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JournalKind {
    Import,
    Transition,
    Note,
    ChecklistStart,
    Answer,
    Consent,
    PhotoStep,
    PartMovement,
    Photo,
    ReceiptSigned,
    HelpRequest,
    TimeTicket,
    Merge,
    SyncReset,
    MonotonicReset,
    ClockJump,
    SessionOpen,
    Seal,
    Countersign,
}

impl JournalKind {
    pub const ALL: [JournalKind; 19] = [
        JournalKind::Import,
        JournalKind::Transition,
        JournalKind::Note,
        JournalKind::ChecklistStart,
        JournalKind::Answer,
        JournalKind::Consent,
        JournalKind::PhotoStep,
        JournalKind::PartMovement,
        JournalKind::Photo,
        JournalKind::ReceiptSigned,
        JournalKind::HelpRequest,
        JournalKind::TimeTicket,
        JournalKind::Merge,
        JournalKind::SyncReset,
        JournalKind::MonotonicReset,
        JournalKind::ClockJump,
        JournalKind::SessionOpen,
        JournalKind::Seal,
        JournalKind::Countersign,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JournalKind::Import => "import",
            JournalKind::Transition => "transition",
            JournalKind::Note => "note",
            JournalKind::ChecklistStart => "checklist_start",
            JournalKind::Answer => "answer",
            JournalKind::Consent => "consent",
            JournalKind::PhotoStep => "photo_step",
            JournalKind::PartMovement => "part_movement",
            JournalKind::Photo => "photo",
            JournalKind::ReceiptSigned => "receipt_signed",
            JournalKind::HelpRequest => "help_request",
            JournalKind::TimeTicket => "time_ticket",
            JournalKind::Merge => "merge",
            JournalKind::SyncReset => "sync_reset",
            JournalKind::MonotonicReset => "monotonic_reset",
            JournalKind::ClockJump => "clock_jump",
            JournalKind::SessionOpen => "session_open",
            JournalKind::Seal => "seal",
            JournalKind::Countersign => "countersign",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for JournalKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Body {
    /// Whether this entry is of `kind`.
    pub fn is(&self, kind: JournalKind) -> bool {
        self.kind == kind.as_str()
    }
}

/// What a change asks to be journaled; the journal fills in seq, chain, times and signature.
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    pub kind: JournalKind,
    pub order: Option<String>,
    pub payload: serde_json::Value,
    pub fix: Option<GpsFix>,
}

impl Draft {
    pub fn new(kind: JournalKind, order: Option<&str>, payload: serde_json::Value) -> Self {
        Self { kind, order: order.map(str::to_string), payload, fix: None }
    }

    /// A draft whose payload is `value` as JSON. A value that cannot be serialized is an
    /// error: it is never signed as `null`.
    pub fn of<T: Serialize + ?Sized>(kind: JournalKind, order: Option<&str>, value: &T) -> Result<Self, Error> {
        let payload = serde_json::to_value(value).map_err(|e| Error::Payload { kind: kind.as_str(), reason: e.to_string() })?;
        Ok(Self::new(kind, order, payload))
    }

    pub fn with_fix(mut self, fix: Option<GpsFix>) -> Self {
        self.fix = fix;
        self
    }
}

/// A stored entry: canonical body bytes, their hash, the signature (empty: not signed; the
/// next seal covers it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub seq: u64,
    #[serde(with = "crate::hash::hex_serde")]
    pub body: Vec<u8>,
    pub hash: String,
    #[serde(with = "crate::hash::hex_serde")]
    pub signature: Vec<u8>,
}

impl Entry {
    /// Whether this entry carries a signature (every v1 entry; v2 session, seal and ticket
    /// entries).
    pub fn is_signed(&self) -> bool {
        !self.signature.is_empty()
    }

    pub fn body(&self) -> Result<Body, Error> {
        serde_json::from_slice(&self.body).map_err(|e| Error::Malformed { seq: self.seq, reason: e.to_string() })
    }
}

/// The chain head a new entry links to.
#[derive(Debug, Clone, PartialEq)]
pub struct Head {
    pub seq: u64,
    pub hash: String,
    pub at_ms: i64,
    pub mono_ms: u64,
    /// The latest time ticket: its entry seq and the monotonic reading when it arrived.
    pub ticket: Option<(u64, u64)>,
    /// The seq of the entry written for the last draft (a seal may follow it).
    pub written: u64,
}

impl Head {
    pub fn genesis() -> Self {
        Head { seq: 0, hash: ZERO_HASH.to_string(), at_ms: 0, mono_ms: 0, ticket: None, written: 0 }
    }
}
