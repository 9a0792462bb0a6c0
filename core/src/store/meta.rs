//! The device's settings in the `meta` table: every key named once, in [`MetaKey`].

use rusqlite::{params, OptionalExtension};

use super::{Error, Store};

/// A key of the `meta` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaKey {
    /// This device's id (also its Automerge actor), created on first open.
    DeviceId,
    /// The software signing key's secret (hex), when no platform signer is given.
    DeviceKey,
    /// The public key the journal was started with: another key is refused.
    DevicePublicKey,
    /// The time authority whose tickets this device accepts (SEC1 hex).
    TimeAuthority,
    SyncServer,
    SyncToken,
    SyncProvider,
    SyncEngineer,
    /// The server feed position this device applied up to.
    SyncCursor,
    /// The last journal seq the server acknowledged.
    SyncJournalAcked,
    SyncLastSuccess,
    SyncLastError,
    /// The provider's log key (SEC1 hex) checkpoints are verified against.
    SyncLogKey,
    SyncLastTicket,
    SyncPartsCursor,
    /// Whether sync fetches blobs the server offers (reference photos).
    SyncFetchBlobs,
    /// The spare-part borrow policy (JSON).
    PartsBorrowPolicy,
    /// Set once every blob file is encrypted (the plain-store migration's last step).
    BlobsEncrypted,
    /// The enrolment's key attestation (`attest::Record`, JSON), exported in bundles.
    KeyAttestation,
    /// The journal seq up to which every order's chain ends in a seal (`seal_pending`).
    SealedThrough,
    /// The latest log checkpoint this device saw and proved consistent (JSON).
    LogCheckpoint,
    /// A checkpoint that is not an extension of the one this device had seen, kept as
    /// evidence of a forked log (JSON: seen, offered, proof).
    LogFork,
}

impl MetaKey {
    pub fn as_str(self) -> &'static str {
        match self {
            MetaKey::DeviceId => "device_id",
            MetaKey::DeviceKey => "device_key",
            MetaKey::DevicePublicKey => "device_public_key",
            MetaKey::TimeAuthority => "time_authority",
            MetaKey::SyncServer => "sync.server",
            MetaKey::SyncToken => "sync.token",
            MetaKey::SyncProvider => "sync.provider",
            MetaKey::SyncEngineer => "sync.engineer",
            MetaKey::SyncCursor => "sync.cursor",
            MetaKey::SyncJournalAcked => "sync.journal_acked",
            MetaKey::SyncLastSuccess => "sync.last_success",
            MetaKey::SyncLastError => "sync.last_error",
            MetaKey::SyncLogKey => "sync.log_key",
            MetaKey::SyncLastTicket => "sync.last_ticket_at",
            MetaKey::SyncPartsCursor => "sync.parts_cursor",
            MetaKey::SyncFetchBlobs => "sync.fetch_blobs",
            MetaKey::PartsBorrowPolicy => "parts.borrow_policy",
            MetaKey::BlobsEncrypted => "blobs.encrypted",
            MetaKey::KeyAttestation => "key_attestation",
            MetaKey::SealedThrough => "journal.sealed_through",
            MetaKey::LogCheckpoint => "log.checkpoint",
            MetaKey::LogFork => "log.fork",
        }
    }
}

impl Store {
    pub fn meta(&self, key: MetaKey) -> Result<Option<String>, Error> {
        let w = self.writer();
        Ok(w.conn.query_row("SELECT value FROM meta WHERE key = ?1", [key.as_str()], |r| r.get(0)).optional()?)
    }

    pub fn set_meta(&self, key: MetaKey, value: &str) -> Result<(), Error> {
        let w = self.writer();
        w.conn.execute("INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value", params![key.as_str(), value])?;
        Ok(())
    }

    pub fn delete_meta(&self, key: MetaKey) -> Result<(), Error> {
        self.writer().conn.execute("DELETE FROM meta WHERE key = ?1", [key.as_str()])?;
        Ok(())
    }

    /// A JSON setting: `None` when absent; a stored value that does not parse is an error
    /// (never read as the default).
    pub fn meta_json<T: serde::de::DeserializeOwned>(&self, key: MetaKey) -> Result<Option<T>, Error> {
        match self.meta(key)? {
            None => Ok(None),
            Some(v) => serde_json::from_str(&v).map(Some).map_err(|_| Error::Meta { key: key.as_str(), value: v }),
        }
    }

    /// A counter kept in `meta`: 0 when absent; a value that is not a number is an error
    /// (never read as 0, which would silently restart a cursor).
    pub fn meta_u64(&self, key: MetaKey) -> Result<u64, Error> {
        match self.meta(key)? {
            None => Ok(0),
            Some(v) => v.parse().map_err(|_| Error::Meta { key: key.as_str(), value: v }),
        }
    }
}
