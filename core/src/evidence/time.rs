//! Trusted time. A server signs "it is T now" for a device (a time ticket); the device journals
//! the ticket with the round trip it took, and every later entry carries the monotonic time
//! elapsed since. Verification turns that into an interval of real time per entry, whatever
//! the phone's wall clock said.

use crate::hash::{hex, unhex};
use serde::{Deserialize, Serialize};

use super::journal::{Body, Entry};
use super::signer::{self, Signer, SoftwareSigner};

/// Monotonic clocks drift; allow 100 ppm either way.
pub const DRIFT_PPM: u64 = 100;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketBody {
    pub v: u32,
    pub server_time_ms: i64,
    pub device: String,
    pub nonce: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeTicket {
    pub body: TicketBody,
    /// SEC1 public key of the issuing authority, hex.
    pub authority: String,
    /// ES256 over the canonical JSON of `body`, hex (64 bytes).
    pub signature: String,
}

/// Issues tickets (the sync server holds one).
pub struct TimeAuthority {
    key: Box<dyn Signer>,
}

impl TimeAuthority {
    pub fn new(key: Box<dyn Signer>) -> Self {
        Self { key }
    }

    pub fn generate() -> Result<Self, signer::Error> {
        Ok(Self::new(Box::new(SoftwareSigner::generate()?)))
    }

    pub fn public_key(&self) -> Vec<u8> {
        self.key.public_key()
    }

    pub fn issue(&self, device: &str, nonce: &str, server_time_ms: i64) -> Result<TimeTicket, signer::Error> {
        let body = TicketBody { v: 1, server_time_ms, device: device.to_string(), nonce: nonce.to_string() };
        let bytes = serde_json::to_vec(&body).map_err(|e| signer::Error::Signing(e.to_string()))?;
        let sig = signer::normalize(&self.key.sign(&bytes)?)?;
        Ok(TimeTicket { body, authority: hex(&self.key.public_key()), signature: hex(&sig) })
    }
}

impl TimeTicket {
    /// True when the ticket is signed by `authority` (SEC1 bytes) for `device`.
    pub fn verify(&self, authority: &[u8], device: &str) -> bool {
        let Ok(bytes) = serde_json::to_vec(&self.body) else { return false };
        let Some(sig) = unhex(&self.signature) else { return false };
        self.body.device == device && unhex(&self.authority).as_deref() == Some(authority) && signer::verify(authority, &bytes, &sig).unwrap_or(false)
    }
}

/// Payload of a `time_ticket` journal entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TicketReceipt {
    pub ticket: TimeTicket,
    /// Monotonic ms between sending the request and receiving the ticket.
    pub round_trip_ms: u64,
}

/// The interval of real time (UTC ms) an entry happened in, when it is anchored to a valid
/// ticket from `authority`.
pub fn trusted_interval(entry: &Body, entries: &[Entry], authority: &[u8]) -> Option<(i64, i64)> {
    let anchor = entry.ticket?;
    let ticket_entry = entries.iter().find(|e| e.seq == anchor.seq)?.body().ok()?;
    if !ticket_entry.is(crate::evidence::journal::JournalKind::TimeTicket) {
        return None;
    }
    let receipt: TicketReceipt = serde_json::from_value(ticket_entry.payload?).ok()?;
    if !receipt.ticket.verify(authority, &entry.device) {
        return None;
    }
    let elapsed = anchor.elapsed_ms as i64;
    let drift = (anchor.elapsed_ms * DRIFT_PPM / 1_000_000) as i64 + 1;
    let t = receipt.ticket.body.server_time_ms;
    Some((t + elapsed - drift, t + receipt.round_trip_ms as i64 + elapsed + drift))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::journal::{seal, Draft, Head};

    #[test]
    fn tickets_give_intervals_independent_of_the_wall_clock() {
        let authority = TimeAuthority::generate().unwrap();
        let device = SoftwareSigner::generate().unwrap();
        let ticket = authority.issue("dev", "n1", 1_795_000_000_000).unwrap();
        assert!(ticket.verify(&authority.public_key(), "dev"));
        assert!(!ticket.verify(&authority.public_key(), "other-dev"));
        let mut forged = ticket.clone();
        forged.body.server_time_ms += 1;
        assert!(!forged.verify(&authority.public_key(), "dev"));

        let receipt = TicketReceipt { ticket, round_trip_ms: 120 };
        let d = Draft::new(crate::evidence::journal::JournalKind::TimeTicket, None, serde_json::to_value(&receipt).unwrap());
        // The phone's wall clock is a year off; it does not matter.
        let (mut entries, head) = seal(&Head::genesis(), "dev", 1_700_000_000_000, 50_000, &d, &device).unwrap();
        let (more, _) = seal(
            &head,
            "dev",
            1_700_000_060_000,
            110_000,
            &Draft::new(crate::evidence::journal::JournalKind::Transition, Some("WO-1"), serde_json::json!({})),
            &device,
        )
        .unwrap();
        entries.extend(more);
        let arrive = entries[1].body().unwrap();
        let (lo, hi) = trusted_interval(&arrive, &entries, &authority.public_key()).unwrap();
        assert!(lo <= 1_795_000_060_000 && 1_795_000_060_000 <= hi, "{lo}..{hi}");
        assert!(hi - lo < 200, "tight interval: {}", hi - lo);
        let stranger = TimeAuthority::generate().unwrap();
        assert_eq!(trusted_interval(&arrive, &entries, &stranger.public_key()), None);
    }
}
