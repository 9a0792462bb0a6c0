//! The session key (docs/adr/0017-session-keys-and-seals.md): made in memory when the store
//! first writes after opening, certified by the device's hardware key in a `session_open`
//! entry, never stored, valid for [`SESSION_TTL_MS`]. It signs `seal` entries (covering the
//! chain before them) and time tickets; the hardware key signs only sessions, consents'
//! countersignatures and receipts.

use serde::{Deserialize, Serialize};

use super::{Draft, Error, JournalKind};
use crate::evidence::signer::{Signer, SoftwareSigner};
use crate::hash::hex;

/// A session key signs nothing dated later than this after its `session_open` entry.
pub const SESSION_TTL_MS: i64 = 24 * 3_600_000;

/// The payload of a `session_open` entry (signed by the device key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionOpen {
    /// SEC1 uncompressed P-256 public key of the session, hex.
    pub session_key: String,
    pub expires_at_ms: i64,
    /// Entries the previous session wrote but did not seal (the app was killed): this entry
    /// covers them, and says so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unsealed_from: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unsealed_to: Option<u64>,
}

/// The payload of a `seal` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealPayload {
    /// Why now: `photo`, `consent`, `receipt`, `sync`, `export`, `reopen`.
    pub reason: String,
}

/// The payload of a `countersign` entry: the device key's signature over another entry
/// ([`countersign_message`]), taken off the edit path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Countersign {
    pub seq: u64,
    pub hash: String,
    /// ES256 r||s, hex.
    pub signature: String,
    /// Taken when the store reopened, not right after the entry (the app was killed).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub late: bool,
}

/// What the device key signs to countersign entry `seq` with body hash `hash`.
pub fn countersign_message(device: &str, seq: u64, hash: &str) -> Vec<u8> {
    format!("onsite-countersign/v1\n{device}\n{seq}\n{hash}\n").into_bytes()
}

/// An open session: the seq of its `session_open` entry, the key, the expiry.
pub struct Session {
    pub seq: u64,
    pub expires_at_ms: i64,
    signer: SoftwareSigner,
}

impl Session {
    /// A fresh key and the draft of the `session_open` entry that certifies it.
    pub fn begin(at_ms: i64, unsealed: Option<(u64, u64)>) -> Result<(SoftwareSigner, Draft), Error> {
        let signer = SoftwareSigner::generate()?;
        let open = SessionOpen {
            session_key: hex(&signer.public_key()),
            expires_at_ms: at_ms.saturating_add(SESSION_TTL_MS),
            unsealed_from: unsealed.map(|u| u.0),
            unsealed_to: unsealed.map(|u| u.1),
        };
        Ok((signer, Draft::of(JournalKind::SessionOpen, None, &open)?))
    }

    /// The session once its `session_open` entry is written at `seq`.
    pub fn new(seq: u64, signer: SoftwareSigner, opened_at_ms: i64) -> Self {
        Self { seq, expires_at_ms: opened_at_ms.saturating_add(SESSION_TTL_MS), signer }
    }

    pub fn signer(&self) -> &SoftwareSigner {
        &self.signer
    }

    /// Whether the session may still sign an entry dated `at_ms`.
    pub fn valid_at(&self, at_ms: i64) -> bool {
        at_ms <= self.expires_at_ms
    }
}
