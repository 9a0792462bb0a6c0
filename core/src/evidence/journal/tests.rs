//! The journal: chains, slices, sessions, seals and countersignatures.
use super::*;
use crate::evidence::signer::Signer;
use crate::evidence::signer::SoftwareSigner;
use crate::hash::sha256_hex;
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
    assert!(entries.len() > 64);
    assert!(verify(&entries, &Keys::device(&s.public_key()), "dev", Some(ZERO_HASH)).ok());
    let bad_sig = |k: usize| {
        let mut es = entries.clone();
        es[k].signature[5] ^= 1;
        es
    };
    for k in [0, 37, 74, 75, 149] {
        let r = verify(&bad_sig(k), &Keys::device(&s.public_key()), "dev", Some(ZERO_HASH));
        assert_eq!(r.first_problem, Some(Problem::BadSignature { seq: entries[k].seq }), "{k}");
    }
    // Two problems: the earlier one in entry order wins, whichever kind it is.
    let mut es = bad_sig(100);
    es[20].body[3] ^= 1;
    assert_eq!(verify(&es, &Keys::device(&s.public_key()), "dev", Some(ZERO_HASH)).first_problem, Some(Problem::HashMismatch { seq: entries[20].seq }));
    let mut es = bad_sig(20);
    es[100].body[3] ^= 1;
    assert_eq!(verify(&es, &Keys::device(&s.public_key()), "dev", Some(ZERO_HASH)).first_problem, Some(Problem::BadSignature { seq: entries[20].seq }));
    // Another device's key fails at the first entry.
    let other = SoftwareSigner::generate().unwrap();
    assert_eq!(verify(&entries, &Keys::device(&other.public_key()), "dev", Some(ZERO_HASH)).first_problem, Some(Problem::BadSignature { seq: entries[0].seq }));
}

#[test]
fn a_chain_verifies_and_every_single_byte_flip_is_caught() {
    let s = SoftwareSigner::generate().unwrap();
    let entries = chain(4, &s);
    assert!(verify(&entries, &Keys::device(&s.public_key()), "dev", Some(ZERO_HASH)).ok());
    // Flip every byte of every body and signature: always detected.
    for i in 0..entries.len() {
        for pos in 0..entries[i].body.len() {
            let mut t = entries.clone();
            t[i].body[pos] ^= 0x01;
            assert!(!verify(&t, &Keys::device(&s.public_key()), "dev", Some(ZERO_HASH)).ok(), "body flip at entry {i} byte {pos}");
        }
        for pos in 0..entries[i].signature.len() {
            let mut t = entries.clone();
            t[i].signature[pos] ^= 0x80;
            assert!(!verify(&t, &Keys::device(&s.public_key()), "dev", Some(ZERO_HASH)).ok(), "signature flip at entry {i} byte {pos}");
        }
    }
    // Re-hashing a modified body (a forger's first idea) still fails on the signature or the chain.
    let mut t = entries.clone();
    t[1].body = t[1].body.clone().into_iter().map(|b| if b == b'x' { b'y' } else { b }).collect();
    t[1].hash = sha256_hex(&t[1].body);
    let r = verify(&t, &Keys::device(&s.public_key()), "dev", Some(ZERO_HASH));
    assert!(matches!(r.first_problem, Some(Problem::Malformed { .. }) | Some(Problem::BadSignature { .. })), "{r:?}");
    // A removed entry is a gap; a reordering breaks the chain.
    let mut gap = entries.clone();
    gap.remove(2);
    assert!(matches!(verify(&gap, &Keys::device(&s.public_key()), "dev", Some(ZERO_HASH)).first_problem, Some(Problem::Gap { expected: 3, found: 4 })));
    // Another device's key does not verify.
    let other = SoftwareSigner::generate().unwrap();
    assert!(matches!(verify(&entries, &Keys::device(&other.public_key()), "dev", Some(ZERO_HASH)).first_problem, Some(Problem::BadSignature { seq: 1 })));
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
    assert!(verify(&all, &Keys::device(&s.public_key()), "dev", Some(ZERO_HASH)).ok());
}

proptest! {
    /// Any chain verifies; any prefix-preserving slice verifies from its predecessor's hash.
    #[test]
    fn chains_and_slices_verify(n in 1usize..12, from in 0usize..12) {
        let s = SoftwareSigner::generate().unwrap();
        let entries = chain(n, &s);
        prop_assert!(verify(&entries, &Keys::device(&s.public_key()), "dev", Some(ZERO_HASH)).ok());
        let from = from % n;
        let prev = if from == 0 { ZERO_HASH.to_string() } else { entries[from - 1].hash.clone() };
        prop_assert!(verify(&entries[from..], &Keys::device(&s.public_key()), "dev", Some(&prev)).ok());
    }
}

/// A device journal as the store writes it: a session opened by the hardware key, unsigned
/// entries, seals by the session key, per-order links.
struct Book {
    head: Head,
    hardware: SoftwareSigner,
    session: Option<Session>,
    order_heads: std::collections::HashMap<String, String>,
    entries: Vec<Entry>,
    at: i64,
}

impl Book {
    fn new() -> Self {
        Self {
            head: Head::genesis(),
            hardware: SoftwareSigner::generate().unwrap(),
            session: None,
            order_heads: Default::default(),
            entries: vec![],
            at: 1_000_000,
        }
    }

    fn push(&mut self, draft: Draft, signing: Option<&dyn Signer>) -> u64 {
        self.at += 1000;
        let order_prev = draft.order.as_ref().map(|o| self.order_heads.get(o).cloned().unwrap_or_else(|| ZERO_HASH.to_string()));
        let signing = match (signing, &self.session) {
            (Some(s), _) => Signing::Every(s),
            (None, Some(session)) => Signing::Session(session),
            (None, None) => panic!("no session"),
        };
        let (es, h) = seal_with(&self.head, "dev", self.at, self.at as u64, &draft, order_prev.as_deref(), signing).unwrap();
        for e in &es {
            if let Some(o) = e.body().unwrap().order {
                self.order_heads.insert(o, e.hash.clone());
            }
        }
        self.entries.extend(es);
        self.head = h;
        self.head.seq
    }

    fn open_session(&mut self, unsealed: Option<(u64, u64)>) {
        let (key, draft) = Session::begin(self.at + 1000, unsealed).unwrap();
        let hw = SoftwareSigner::from_secret(&self.hardware.secret()).unwrap();
        let seq = self.push(draft, Some(&hw));
        self.session = Some(Session::new(seq, key, self.at));
    }

    fn note(&mut self, order: &str, i: usize) -> u64 {
        self.push(Draft::new(JournalKind::Note, Some(order), serde_json::json!({ "text": format!("note {i}") })), None)
    }

    fn seal(&mut self, order: Option<&str>) -> u64 {
        self.push(Draft::of(JournalKind::Seal, order, &SealPayload { reason: "sync".into() }).unwrap(), None)
    }

    fn keys(&self) -> Keys {
        Keys::device(&self.hardware.public_key())
    }
}

fn day() -> Book {
    let mut b = Book::new();
    b.open_session(None);
    for i in 0..6 {
        b.note(if i % 2 == 0 { "WO-1" } else { "WO-2" }, i);
    }
    b.seal(Some("WO-1"));
    b.seal(Some("WO-2"));
    b
}

#[test]
fn a_sealed_session_chain_verifies_with_two_signatures_of_eight_entries() {
    let b = day();
    assert_eq!(b.entries.iter().filter(|e| e.is_signed()).count(), 3, "session, two seals");
    let r = verify(&b.entries, &b.keys(), "dev", Some(ZERO_HASH));
    assert!(r.sealed(), "{r:?}");
    // Before the seals, the tail is reported unsealed, not wrong.
    let r = verify(&b.entries[..7], &b.keys(), "dev", Some(ZERO_HASH));
    assert!(r.ok() && !r.sealed());
    assert_eq!(r.unsealed_from, Some(2));
    assert_eq!(r.first_problem_sealed(), Some(Problem::Unsealed { from: 2 }));
}

#[test]
fn an_entry_edited_dropped_reordered_or_inserted_under_a_seal_is_caught() {
    let b = day();
    let keys = b.keys();
    let check = |es: &[Entry]| verify(es, &keys, "dev", Some(ZERO_HASH));
    // Edited, and re-hashed and re-linked all the way up to the seal: the seal's signature fails.
    let mut t = b.entries.clone();
    let mut body = t[2].body().unwrap();
    body.payload = Some(serde_json::json!({ "text": "forged" }));
    body.payload_sha256 = sha256_hex(&serde_json::to_vec(&body.payload).unwrap());
    t[2] = seal::from_body(&body, vec![]).unwrap();
    for i in 3..t.len() {
        let mut next = t[i].body().unwrap();
        next.prev = t[i - 1].hash.clone();
        if next.order_prev.is_some() {
            let prev_same = (0..i).rev().find(|&j| t[j].body().unwrap().order == next.order).map(|j| t[j].hash.clone());
            next.order_prev = Some(prev_same.unwrap_or_else(|| ZERO_HASH.to_string()));
        }
        let sig = t[i].signature.clone();
        t[i] = seal::from_body(&next, sig).unwrap();
    }
    assert!(matches!(check(&t).first_problem, Some(Problem::BadSignature { .. })), "{:?}", check(&t));
    // Edited in place: the link breaks.
    let mut t = b.entries.clone();
    t[3].body = t[3].body.iter().map(|&c| if c == b'3' { b'4' } else { c }).collect();
    assert!(!check(&t).ok());
    // Dropped, reordered, inserted.
    let mut t = b.entries.clone();
    t.remove(4);
    assert!(matches!(check(&t).first_problem, Some(Problem::Gap { .. })));
    let mut t = b.entries.clone();
    t.swap(3, 4);
    assert!(!check(&t).ok());
    let mut other = day();
    other.hardware = SoftwareSigner::from_secret(&b.hardware.secret()).unwrap();
    let mut t = b.entries.clone();
    t.insert(4, other.entries[4].clone());
    assert!(!check(&t).ok());
}

#[test]
fn forged_seals_are_caught_wrong_key_expired_unknown_or_another_devices_session() {
    let b = day();
    let n = b.entries.len();
    // A seal signed by a key nobody certified, claiming the real session.
    let mut t = b.entries.clone();
    let rogue = SoftwareSigner::generate().unwrap();
    t[n - 1].signature = rogue.sign(&t[n - 1].body).unwrap();
    assert_eq!(verify(&t, &b.keys(), "dev", Some(ZERO_HASH)).first_problem, Some(Problem::BadSignature { seq: n as u64 }));
    // The whole session forged: a session_open signed by a software key, not the device's.
    let mut forged = Book::new();
    forged.open_session(None);
    forged.note("WO-1", 0);
    forged.seal(Some("WO-1"));
    assert!(matches!(verify(&forged.entries, &b.keys(), "dev", Some(ZERO_HASH)).first_problem, Some(Problem::BadSignature { seq: 1 })));
    // A slice verified with another device's sessions (or none) does not hold.
    let slice: Vec<Entry> = b.entries.iter().filter(|e| e.body().unwrap().order.as_deref() == Some("WO-1")).cloned().collect();
    let session = &b.entries[..1];
    let keys = b.keys().with_sessions(session, "dev").unwrap();
    assert!(verify_order_slice(&slice, &keys, "dev", "WO-1").sealed());
    assert!(matches!(verify_order_slice(&slice, &b.keys(), "dev", "WO-1").first_problem, Some(Problem::UnknownSession { .. })));
    assert!(b.keys().with_sessions(&forged.entries[..1], "dev").is_err());
    let foreign = forged.keys().with_sessions(&forged.entries[..1], "dev").unwrap();
    let mut mixed = b.keys();
    mixed.sessions = foreign.sessions;
    assert!(!verify_order_slice(&slice, &mixed, "dev", "WO-1").ok());
    // Expired: a seal dated after the session's end.
    let mut late = Book::new();
    late.open_session(None);
    late.note("WO-1", 0);
    late.at += SESSION_TTL_MS + 1;
    late.push(Draft::of(JournalKind::Seal, Some("WO-1"), &SealPayload { reason: "sync".into() }).unwrap(), None);
    let r = verify(&late.entries, &late.keys(), "dev", Some(ZERO_HASH));
    assert!(matches!(r.first_problem, Some(Problem::SessionExpired { .. })), "{r:?}");
    // A session key may not open another session.
    let mut t = b.entries.clone();
    let mut body = t[0].body().unwrap();
    body.key = Some(0);
    t[0] = seal::from_body(&body, t[0].signature.clone()).unwrap();
    assert!(!verify(&t, &b.keys(), "dev", Some(ZERO_HASH)).ok());
}

#[test]
fn a_countersignature_binds_an_entry_to_the_device_key() {
    let mut b = day();
    let consent = b.note("WO-1", 99);
    let hash = b.entries.last().unwrap().hash.clone();
    let sig = b.hardware.sign(&countersign_message("dev", consent, &hash)).unwrap();
    let c = Countersign { seq: consent, hash: hash.clone(), signature: crate::hash::hex(&sig), late: false };
    b.push(Draft::of(JournalKind::Countersign, Some("WO-1"), &c).unwrap(), None);
    b.seal(Some("WO-1"));
    let r = verify(&b.entries, &b.keys(), "dev", Some(ZERO_HASH));
    assert!(r.sealed(), "{r:?}");
    assert_eq!(r.countersigned, vec![consent]);
    // Signed by another key, or naming another hash: refused.
    for bad in [
        Countersign {
            signature: crate::hash::hex(&SoftwareSigner::generate().unwrap().sign(&countersign_message("dev", consent, &hash)).unwrap()),
            ..c.clone()
        },
        Countersign { hash: ZERO_HASH.into(), ..c.clone() },
    ] {
        let mut x = day();
        x.hardware = SoftwareSigner::from_secret(&b.hardware.secret()).unwrap();
        let mut t = b.entries.clone();
        let i = t.len() - 2;
        let mut body = t[i].body().unwrap();
        body.payload = Some(serde_json::to_value(&bad).unwrap());
        body.payload_sha256 = sha256_hex(&serde_json::to_vec(&body.payload).unwrap());
        t[i] = seal::from_body(&body, vec![]).unwrap();
        t.truncate(i + 1);
        let r = verify(&t, &b.keys(), "dev", Some(ZERO_HASH));
        assert!(matches!(r.first_problem, Some(Problem::BadSignature { .. } | Problem::BadCountersign { .. })), "{r:?}");
    }
}
