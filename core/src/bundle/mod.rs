//! The arbitration bundle (三层盾, layer 3): one zip file with everything a dispute manager
//! needs to check an order's record offline, and the verifier that checks it.
//!
//! Layout (all paths ASCII, no directories of their own):
//! ```text
//! manifest.json               canonical JSON (RFC 8785): format, version, order, device key,
//!                             every other member's path, role, size and SHA-256
//! manifest.sig                hex ES256 signature of manifest.json by the device key
//! receipt/rN.json             receipt revision N, canonical JSON exactly as signed
//! receipt/rN.signed.json      the signing message and the device signature
//! signature/rN.oss1           the customer's signature strokes (canonical encoding)
//! signature/rN.svg            their deterministic SVG rendering
//! photos/<sha256>.jpg         original photos (or thumbs/<sha256>.jpg with --thumbnails-only)
//! journal/order.json          this device's journal entries about the order (per-order chain)
//! journal/tickets.json        the time-ticket entries those entries are anchored to
//! journal/sessions.json       (v2) the `session_open` entries, signed by the device key, whose
//!                             session keys signed the seals and tickets above
//! ```
//! Version 2 (ADR 0017) adds `journal/sessions.json`: most v2 entries are unsigned and covered
//! by a seal. Version 1 bundles (every entry signed by the device key) still verify.
//! See docs/adr/0008-receipts-and-bundles.md.

pub mod archive;
mod report;
pub mod verify;

use serde::{Deserialize, Serialize};

pub use report::distance_m;
pub use verify::{verify_bytes, verify_file, Check, Report, Summary};

pub const FORMAT: &str = "onsite.bundle";
pub const VERSION: u32 = 2;
/// Every version this verifier reads.
pub const VERSIONS: [u32; 2] = [1, 2];
pub const MANIFEST: &str = "manifest.json";
pub const MANIFEST_SIG: &str = "manifest.sig";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the bundle archive is unusable: {0}")]
    Archive(String),
    #[error("bundle member `{name}` refused: {reason}")]
    Member { name: String, reason: String },
    #[error("cannot write the bundle: {0}")]
    Io(#[from] std::io::Error),
    #[error("cannot build the bundle: {0}")]
    Build(String),
}

/// A member of the bundle as the manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberRef {
    pub path: String,
    pub role: String,
    pub size: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceKey {
    pub id: String,
    /// SEC1 uncompressed P-256 public key, hex.
    pub public_key: String,
    /// The time authority whose tickets the device accepted, hex (if any).
    pub time_authority: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    pub order: String,
    pub created_at: String,
    pub created_by: String,
    pub device: DeviceKey,
    pub thumbnails_only: bool,
    pub members: Vec<MemberRef>,
}

/// `receipt/rN.signed.json`: what the device signed for revision N.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedPart {
    pub message: crate::receipt::SigningMessage,
    pub signature: String,
    pub journal_seq: u64,
    pub signed_at_ms: i64,
}

pub mod roles {
    pub const RECEIPT: &str = "receipt";
    pub const RECEIPT_SIGNATURE: &str = "receipt_signature";
    pub const STROKES: &str = "signature_strokes";
    pub const SVG: &str = "signature_svg";
    pub const PHOTO: &str = "photo";
    pub const THUMBNAIL: &str = "thumbnail";
    pub const JOURNAL: &str = "journal";
    pub const TICKETS: &str = "time_tickets";
    /// v2: the sessions that signed the journal's seals and tickets.
    pub const SESSIONS: &str = "journal_sessions";
    /// Inclusion proofs of journal entries in the server's evidence log (RFC 9162).
    pub const LOG_PROOFS: &str = "log_proofs";
    /// The platform's attestation of the device key, from its enrolment (`attest::Record`).
    pub const KEY_ATTESTATION: &str = "key_attestation";
}

#[cfg(test)]
mod tests;
