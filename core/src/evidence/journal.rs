//! The operation log: append-only, hash-chained, signed entries. Each entry's body is stored
//! as the exact canonical bytes that were hashed and signed, so verification never depends
//! on re-serializing anything.
//!
//! Body (canonical JSON, fields in this order): `v`, `device`, `seq`, `prev` (hex SHA-256 of
//! the previous body, 64 zeros for the first), `at_ms` (wall), `mono_ms` (monotonic),
//! `ticket` (anchor to the last server time ticket: its entry's seq and the monotonic ms since
//! it arrived), `kind`, `order`, `payload_sha256`, `payload` (the JSON payload when small,
//! else null; its hash is always bound), `fix`. Signature: ES256 over the body bytes.

use serde::{Deserialize, Serialize};

use super::signer::{self, Signer};
use crate::hash::sha256_hex;
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
}

impl JournalKind {
    pub const ALL: [JournalKind; 16] = [
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

/// A stored entry: canonical body bytes, their hash, the signature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub seq: u64,
    #[serde(with = "hex_bytes")]
    pub body: Vec<u8>,
    pub hash: String,
    #[serde(with = "hex_bytes")]
    pub signature: Vec<u8>,
}

impl Entry {
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
}

impl Head {
    pub fn genesis() -> Self {
        Head { seq: 0, hash: ZERO_HASH.to_string(), at_ms: 0, mono_ms: 0, ticket: None }
    }
}

/// Builds and signs the entries for `draft` (a `clock_jump` or `monotonic_reset` entry first
/// when the clocks disagree with the head). Returns them with the new head.
pub fn seal(head: &Head, device: &str, at_ms: i64, mono_ms: u64, draft: &Draft, signer: &dyn Signer) -> Result<(Vec<Entry>, Head), Error> {
    seal_linked(head, device, at_ms, mono_ms, draft, None, signer)
}

/// [`seal`], linking the entry to the previous entry of the same order (`order_prev`).
pub fn seal_linked(
    head: &Head,
    device: &str,
    at_ms: i64,
    mono_ms: u64,
    draft: &Draft,
    order_prev: Option<&str>,
    signer: &dyn Signer,
) -> Result<(Vec<Entry>, Head), Error> {
    let mut out = Vec::new();
    let mut head = head.clone();
    if head.seq > 0 {
        if mono_ms < head.mono_ms {
            let p = serde_json::json!({ "previous_mono_ms": head.mono_ms, "mono_ms": mono_ms, "at_ms": at_ms });
            let e = seal_one(&head, device, at_ms, mono_ms, &Draft::new(JournalKind::MonotonicReset, None, p), None, signer, None)?;
            head = next_head(&head, &e, at_ms, mono_ms, None);
            out.push(e);
        } else {
            let wall = at_ms - head.at_ms;
            let mono = (mono_ms - head.mono_ms) as i64;
            if (wall - mono).abs() > CLOCK_JUMP_MS {
                let p = serde_json::json!({ "wall_delta_ms": wall, "mono_delta_ms": mono });
                let anchor = anchor(&head, mono_ms);
                let e = seal_one(&head, device, at_ms, mono_ms, &Draft::new(JournalKind::ClockJump, None, p), None, signer, anchor)?;
                head = next_head(&head, &e, at_ms, mono_ms, head.ticket);
                out.push(e);
            }
        }
    }
    let anchor = anchor(&head, mono_ms);
    let e = seal_one(&head, device, at_ms, mono_ms, draft, order_prev, signer, anchor)?;
    let ticket = if draft.kind == JournalKind::TimeTicket { Some((e.seq, mono_ms)) } else { head.ticket };
    head = next_head(&head, &e, at_ms, mono_ms, ticket);
    out.push(e);
    Ok((out, head))
}

fn anchor(head: &Head, mono_ms: u64) -> Option<TicketAnchor> {
    head.ticket.and_then(|(seq, received)| (mono_ms >= received).then_some(TicketAnchor { seq, elapsed_ms: mono_ms - received }))
}

fn next_head(_old: &Head, e: &Entry, at_ms: i64, mono_ms: u64, ticket: Option<(u64, u64)>) -> Head {
    Head { seq: e.seq, hash: e.hash.clone(), at_ms, mono_ms, ticket }
}

#[allow(clippy::too_many_arguments)] // one entry's every input, each named at the two callers
fn seal_one(
    head: &Head,
    device: &str,
    at_ms: i64,
    mono_ms: u64,
    draft: &Draft,
    order_prev: Option<&str>,
    signer: &dyn Signer,
    ticket: Option<TicketAnchor>,
) -> Result<Entry, Error> {
    let payload_bytes = serde_json::to_vec(&draft.payload).map_err(|e| Error::Malformed { seq: head.seq + 1, reason: e.to_string() })?;
    let body = Body {
        v: 1,
        device: device.to_string(),
        seq: head.seq + 1,
        prev: head.hash.clone(),
        at_ms,
        mono_ms,
        ticket,
        kind: draft.kind.as_str().to_string(),
        order: draft.order.clone(),
        order_prev: order_prev.map(str::to_string),
        payload_sha256: sha256_hex(&payload_bytes),
        payload: (payload_bytes.len() <= INLINE_PAYLOAD_MAX).then(|| draft.payload.clone()),
        fix: draft.fix,
    };
    let bytes = serde_json::to_vec(&body).map_err(|e| Error::Malformed { seq: body.seq, reason: e.to_string() })?;
    let signature = signer::normalize(&signer.sign(&bytes)?)?;
    Ok(Entry { seq: body.seq, hash: sha256_hex(&bytes), body: bytes, signature })
}

/// One problem found by [`verify`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
pub enum Problem {
    Gap { expected: u64, found: u64 },
    BrokenLink { seq: u64 },
    HashMismatch { seq: u64 },
    BadSignature { seq: u64 },
    Malformed { seq: u64, reason: String },
    WrongDevice { seq: u64 },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub entries: usize,
    /// The first problem, if any (later ones are not trusted anyway).
    pub first_problem: Option<Problem>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.first_problem.is_none()
    }
}

/// Checks one entry on its own: body hash, form, seq, device, the link `linked` asks for,
/// inline payload against its hash, and the signature. Returns the parsed body.
fn check_entry(e: &Entry, public_key: &[u8], device: &str, linked: impl FnOnce(&Body) -> bool) -> Result<Body, Problem> {
    let body = check_structure(e, device, linked)?;
    if !signature_holds(e, public_key) {
        return Err(Problem::BadSignature { seq: e.seq });
    }
    Ok(body)
}

fn signature_holds(e: &Entry, public_key: &[u8]) -> bool {
    signer::verify(public_key, &e.body, &e.signature).unwrap_or(false)
}

/// Entries below this many are checked on the calling thread.
const PARALLEL_FROM: usize = 64;

/// The index of the first entry whose signature does not hold. Signatures are independent of
/// one another, so a long upload is checked across the machine's cores; the answer is the
/// same as a walk in order.
fn first_bad_signature(entries: &[Entry], public_key: &[u8]) -> Option<usize> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(8);
    if entries.len() < PARALLEL_FROM || threads < 2 {
        return entries.iter().position(|e| !signature_holds(e, public_key));
    }
    let chunk = entries.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = entries
            .chunks(chunk)
            .enumerate()
            .map(|(n, part)| scope.spawn(move || part.iter().position(|e| !signature_holds(e, public_key)).map(|i| n * chunk + i)))
            .collect();
        // A thread that could not report counts as a failure at its first entry (never a pass).
        handles.into_iter().enumerate().filter_map(|(n, h)| h.join().unwrap_or(Some(n * chunk))).min()
    })
}

/// Everything but the signature: hash, body, seq, device, link, payload hash.
fn check_structure(e: &Entry, device: &str, linked: impl FnOnce(&Body) -> bool) -> Result<Body, Problem> {
    if sha256_hex(&e.body) != e.hash {
        return Err(Problem::HashMismatch { seq: e.seq });
    }
    let body = e.body().map_err(|err| Problem::Malformed { seq: e.seq, reason: err.to_string() })?;
    if body.seq != e.seq {
        return Err(Problem::Malformed { seq: e.seq, reason: format!("body says seq {}", body.seq) });
    }
    if body.device != device {
        return Err(Problem::WrongDevice { seq: e.seq });
    }
    if !linked(&body) {
        return Err(Problem::BrokenLink { seq: e.seq });
    }
    if let Some(payload) = &body.payload {
        match serde_json::to_vec(payload) {
            Ok(bytes) if sha256_hex(&bytes) == body.payload_sha256 => {}
            _ => return Err(Problem::Malformed { seq: e.seq, reason: "payload does not match its hash".into() }),
        }
    }
    Ok(body)
}

fn report(entries: &[Entry], first_problem: Option<Problem>) -> Report {
    Report { entries: entries.len(), first_problem }
}

/// Walks `entries` (consecutive, starting at `start_prev` — the hash before the first, or
/// `ZERO_HASH` for a whole journal) and reports the first broken link, bad signature or gap.
///
/// The chain (seqs, hashes, bodies, links) is walked in order; the signatures of the entries
/// before the first structural problem are then checked across cores. The first problem in
/// entry order is reported, exactly as a single walk would.
pub fn verify(entries: &[Entry], public_key: &[u8], device: &str, start_prev: Option<&str>) -> Report {
    let mut prev: Option<String> = start_prev.map(str::to_string);
    let first = entries.first().map(|e| e.seq).unwrap_or(1);
    let mut structural: Option<(usize, Problem)> = None;
    for (i, (expected_seq, e)) in (first..).zip(entries).enumerate() {
        if e.seq != expected_seq {
            structural = Some((i, Problem::Gap { expected: expected_seq, found: e.seq }));
            break;
        }
        if let Err(p) = check_structure(e, device, |b| prev.as_ref().is_none_or(|p| &b.prev == p)) {
            structural = Some((i, p));
            break;
        }
        prev = Some(e.hash.clone());
    }
    let checked = structural.as_ref().map_or(entries.len(), |(i, _)| *i);
    if let Some(i) = first_bad_signature(&entries[..checked], public_key) {
        return report(entries, Some(Problem::BadSignature { seq: entries[i].seq }));
    }
    report(entries, structural.map(|(_, p)| p))
}

/// Verifies one order's slice of a device journal through its per-order chain: every entry
/// is about `order`, hashes and signatures hold, seqs increase, and each entry links to the
/// one before it (`order_prev`, the first to `ZERO_HASH`). Entries of other orders are not
/// needed, so a bundle discloses nothing about other customers.
pub fn verify_order_slice(entries: &[Entry], public_key: &[u8], device: &str, order: &str) -> Report {
    let mut prev = ZERO_HASH.to_string();
    let mut last_seq = 0u64;
    for e in entries {
        if e.seq <= last_seq {
            return report(entries, Some(Problem::Gap { expected: last_seq + 1, found: e.seq }));
        }
        let body = match check_entry(e, public_key, device, |b| b.order_prev.as_deref() == Some(prev.as_str())) {
            Ok(b) => b,
            Err(p) => return report(entries, Some(p)),
        };
        if body.order.as_deref() != Some(order) {
            return report(entries, Some(Problem::Malformed { seq: e.seq, reason: "the entry is about another order".into() }));
        }
        prev = e.hash.clone();
        last_seq = e.seq;
    }
    report(entries, None)
}

/// Verifies entries that stand alone (time tickets a bundle carries): hash, body and
/// signature each, no chain.
pub fn verify_standalone(entries: &[Entry], public_key: &[u8], device: &str) -> Report {
    let first = entries.iter().find_map(|e| check_entry(e, public_key, device, |_| true).err());
    report(entries, first)
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&b.iter().map(|x| format!("{x:02x}")).collect::<String>())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        if s.len() % 2 != 0 {
            return Err(serde::de::Error::custom("odd hex length"));
        }
        (0..s.len())
            .step_by(2)
            .map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()).ok_or_else(|| serde::de::Error::custom("bad hex")))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::signer::SoftwareSigner;
    use proptest::prelude::*;

    fn chain(n: usize, signer: &SoftwareSigner) -> Vec<Entry> {
        let mut head = Head::genesis();
        let mut out = Vec::new();
        for i in 0..n {
            let d = Draft::new(JournalKind::Note, Some("WO-1"), serde_json::json!({ "i": i, "text": "x" }));
            let (es, h) = seal(&head, "dev", 1_000 + i as i64 * 1000, 10 + i as u64 * 1000, &d, signer).unwrap();
            out.extend(es);
            head = h;
        }
        out
    }

    #[test]
    fn a_long_upload_checked_across_cores_reports_the_first_problem_in_order() {
        let s = SoftwareSigner::generate().unwrap();
        let entries = chain(150, &s);
        assert!(entries.len() > PARALLEL_FROM);
        assert!(verify(&entries, &s.public_key(), "dev", Some(ZERO_HASH)).ok());
        let bad_sig = |k: usize| {
            let mut es = entries.clone();
            es[k].signature[5] ^= 1;
            es
        };
        for k in [0, 37, 74, 75, 149] {
            let r = verify(&bad_sig(k), &s.public_key(), "dev", Some(ZERO_HASH));
            assert_eq!(r.first_problem, Some(Problem::BadSignature { seq: entries[k].seq }), "{k}");
        }
        // Two problems: the earlier one in entry order wins, whichever kind it is.
        let mut es = bad_sig(100);
        es[20].body[3] ^= 1;
        assert_eq!(verify(&es, &s.public_key(), "dev", Some(ZERO_HASH)).first_problem, Some(Problem::HashMismatch { seq: entries[20].seq }));
        let mut es = bad_sig(20);
        es[100].body[3] ^= 1;
        assert_eq!(verify(&es, &s.public_key(), "dev", Some(ZERO_HASH)).first_problem, Some(Problem::BadSignature { seq: entries[20].seq }));
        // Another device's key fails at the first entry.
        let other = SoftwareSigner::generate().unwrap();
        assert_eq!(verify(&entries, &other.public_key(), "dev", Some(ZERO_HASH)).first_problem, Some(Problem::BadSignature { seq: entries[0].seq }));
    }

    #[test]
    fn a_chain_verifies_and_every_single_byte_flip_is_caught() {
        let s = SoftwareSigner::generate().unwrap();
        let entries = chain(4, &s);
        assert!(verify(&entries, &s.public_key(), "dev", Some(ZERO_HASH)).ok());
        // Flip every byte of every body and signature: always detected.
        for i in 0..entries.len() {
            for pos in 0..entries[i].body.len() {
                let mut t = entries.clone();
                t[i].body[pos] ^= 0x01;
                assert!(!verify(&t, &s.public_key(), "dev", Some(ZERO_HASH)).ok(), "body flip at entry {i} byte {pos}");
            }
            for pos in 0..entries[i].signature.len() {
                let mut t = entries.clone();
                t[i].signature[pos] ^= 0x80;
                assert!(!verify(&t, &s.public_key(), "dev", Some(ZERO_HASH)).ok(), "signature flip at entry {i} byte {pos}");
            }
        }
        // Re-hashing a modified body (a forger's first idea) still fails on the signature or the chain.
        let mut t = entries.clone();
        t[1].body = t[1].body.clone().into_iter().map(|b| if b == b'x' { b'y' } else { b }).collect();
        t[1].hash = sha256_hex(&t[1].body);
        let r = verify(&t, &s.public_key(), "dev", Some(ZERO_HASH));
        assert!(matches!(r.first_problem, Some(Problem::Malformed { .. }) | Some(Problem::BadSignature { .. })), "{r:?}");
        // A removed entry is a gap; a reordering breaks the chain.
        let mut gap = entries.clone();
        gap.remove(2);
        assert!(matches!(verify(&gap, &s.public_key(), "dev", Some(ZERO_HASH)).first_problem, Some(Problem::Gap { expected: 3, found: 4 })));
        // Another device's key does not verify.
        let other = SoftwareSigner::generate().unwrap();
        assert!(matches!(verify(&entries, &other.public_key(), "dev", Some(ZERO_HASH)).first_problem, Some(Problem::BadSignature { seq: 1 })));
    }

    #[test]
    fn clock_jumps_and_monotonic_resets_are_journaled() {
        let s = SoftwareSigner::generate().unwrap();
        let (e1, h) = seal(&Head::genesis(), "dev", 1_000_000, 5_000, &Draft::new(JournalKind::Note, None, serde_json::json!(1)), &s).unwrap();
        assert_eq!(e1.len(), 1);
        // The wall clock moves an hour while the monotonic clock moves a second.
        let (e2, h) = seal(&h, "dev", 1_000_000 + 3_600_000, 6_000, &Draft::new(JournalKind::Note, None, serde_json::json!(2)), &s).unwrap();
        assert_eq!(e2.len(), 2);
        assert_eq!(e2[0].body().unwrap().kind, "clock_jump");
        // A reboot: the monotonic clock starts again.
        let (e3, _) = seal(&h, "dev", 1_000_000 + 3_700_000, 100, &Draft::new(JournalKind::Note, None, serde_json::json!(3)), &s).unwrap();
        assert_eq!(e3[0].body().unwrap().kind, "monotonic_reset");
        let all: Vec<Entry> = e1.into_iter().chain(e2).chain(e3).collect();
        assert!(verify(&all, &s.public_key(), "dev", Some(ZERO_HASH)).ok());
    }

    proptest! {
        /// Any chain verifies; any prefix-preserving slice verifies from its predecessor's hash.
        #[test]
        fn chains_and_slices_verify(n in 1usize..12, from in 0usize..12) {
            let s = SoftwareSigner::generate().unwrap();
            let entries = chain(n, &s);
            prop_assert!(verify(&entries, &s.public_key(), "dev", Some(ZERO_HASH)).ok());
            let from = from % n;
            let prev = if from == 0 { ZERO_HASH.to_string() } else { entries[from - 1].hash.clone() };
            prop_assert!(verify(&entries[from..], &s.public_key(), "dev", Some(&prev)).ok());
        }
    }
}
