//! The device's evidence journal: its key, entries, verification and time tickets.

use super::Device;
use crate::evidence::journal::{Draft, JournalKind, Keys};
use crate::evidence::EvidenceError;
use crate::store::MetaKey;
use crate::Result;

impl Device {
    /// This device's public key (SEC1, uncompressed).
    pub fn public_key(&self) -> Vec<u8> {
        self.signer.public_key()
    }

    /// The provider's log key pinned at enrolment (SEC1), if enrolled.
    pub fn log_key(&self) -> Result<Option<Vec<u8>>> {
        match self.store.meta(MetaKey::SyncLogKey)? {
            None => Ok(None),
            Some(h) => Ok(Some(crate::hash::unhex(&h).ok_or(crate::store::Error::Meta { key: MetaKey::SyncLogKey.as_str(), value: h })?)),
        }
    }

    /// The latest checkpoint of the provider's log this device saw and proved consistent
    /// with every earlier one (JSON `Checkpoint`), if any.
    pub fn log_checkpoint(&self) -> Result<Option<String>> {
        Ok(self.store.meta(MetaKey::LogCheckpoint)?)
    }

    /// Evidence of a forked log, if the server ever showed one (JSON: the checkpoint seen,
    /// the one offered, the proof given, why they do not fit). Kept for good.
    pub fn log_fork(&self) -> Result<Option<String>> {
        Ok(self.store.meta(MetaKey::LogFork)?)
    }

    /// Journal entries, all or one order's.
    pub fn journal(&self, order_id: Option<&str>) -> Result<Vec<crate::evidence::Entry>> {
        Ok(self.store.journal_entries(order_id)?)
    }

    /// Verifies the whole journal: chain, signatures, no gaps (the tail written since the
    /// last seal is reported as `unsealed_from`).
    pub fn verify_journal(&self) -> Result<crate::evidence::journal::Report> {
        let entries = self.store.journal_entries(None)?;
        Ok(crate::evidence::journal::verify(&entries, &Keys::device(&self.public_key()), self.device_id(), Some(crate::evidence::journal::ZERO_HASH)))
    }

    /// The `session_open` entries whose keys signed any of `entries` (a bundle or a record
    /// carries them with an order's slice).
    pub(crate) fn sessions_of(&self, entries: &[crate::evidence::Entry]) -> Result<Vec<crate::evidence::Entry>> {
        let seqs: std::collections::BTreeSet<u64> = entries.iter().filter_map(|e| e.body().ok().and_then(|b| b.key)).collect();
        let mut out = Vec::new();
        for seq in seqs {
            out.extend(self.store.journal_entry(seq)?);
        }
        Ok(out)
    }

    /// Seals whatever waits for a seal (ADR 0017); returns how many seals were written.
    pub fn seal_journal(&self, reason: &str) -> Result<usize> {
        self.countersigner.flush();
        Ok(self.store.seal_pending(self.stamp(), reason)?)
    }

    /// Accepts a server-signed time ticket and journals it; later entries are anchored to it.
    pub fn accept_time_ticket(&self, ticket: crate::evidence::time::TimeTicket, round_trip_ms: u64) -> Result<u64> {
        let authority = self.store.meta(MetaKey::TimeAuthority)?.and_then(|h| crate::hash::unhex(&h)).ok_or(EvidenceError::NoAuthority)?;
        if !ticket.verify(&authority, self.device_id()) {
            return Err(EvidenceError::Ticket("not signed by this device's time authority for this device".into()).into());
        }
        let receipt = crate::evidence::time::TicketReceipt { ticket, round_trip_ms };
        let draft = Draft::of(JournalKind::TimeTicket, None, &receipt).map_err(crate::store::Error::from)?;
        Ok(self.store.append_journal(self.stamp(), &draft)?)
    }
}
