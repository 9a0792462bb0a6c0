//! Checking entries: the chain (hashes, links, seqs), and the signatures with the key each
//! names: the device key for v1 entries and `session_open`, a certified session key for
//! seals and tickets, the device key again inside countersignatures. An unsigned v2 entry
//! holds once a later signed entry of the same chain covers it; entries after the last
//! signed one are reported as `unsealed_from`.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::session::{countersign_message, Countersign, SessionOpen};
use super::{Body, Entry, JournalKind, ZERO_HASH};
use crate::evidence::signer;
use crate::hash::{sha256_hex, unhex};

/// A session key as its `session_open` entry certifies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionKey {
    pub key: Vec<u8>,
    pub expires_at_ms: i64,
}

/// The keys entries may be signed with: the device key, and the sessions it certified
/// (keyed by the seq of their `session_open` entry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    pub device: Vec<u8>,
    pub sessions: BTreeMap<u64, SessionKey>,
}

impl Keys {
    pub fn device(public_key: &[u8]) -> Self {
        Self { device: public_key.to_vec(), sessions: BTreeMap::new() }
    }

    /// Adds the sessions `entries` (standalone `session_open` entries, as a bundle or an
    /// upload carries them) certify; each must verify with the device key.
    pub fn with_sessions(mut self, entries: &[Entry], device: &str) -> Result<Self, Problem> {
        let report = verify_standalone(entries, &Keys::device(&self.device), device);
        if let Some(p) = report.first_problem {
            return Err(p);
        }
        for e in entries {
            let body = e.body().map_err(|err| Problem::Malformed { seq: e.seq, reason: err.to_string() })?;
            if !body.is(JournalKind::SessionOpen) {
                return Err(Problem::Malformed { seq: e.seq, reason: "not a session_open entry".into() });
            }
            self.learn(&body)?;
        }
        Ok(self)
    }

    fn learn(&mut self, body: &Body) -> Result<(), Problem> {
        let malformed = |reason: String| Problem::Malformed { seq: body.seq, reason };
        let payload = body.payload.clone().ok_or_else(|| malformed("session_open without its payload".into()))?;
        let open: SessionOpen = serde_json::from_value(payload).map_err(|e| malformed(e.to_string()))?;
        let key = unhex(&open.session_key).filter(|k| signer::is_valid_key(k)).ok_or_else(|| malformed("bad session key".into()))?;
        self.sessions.insert(body.seq, SessionKey { key, expires_at_ms: open.expires_at_ms });
        Ok(())
    }
}

/// One problem found by [`verify`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
pub enum Problem {
    Gap {
        expected: u64,
        found: u64,
    },
    BrokenLink {
        seq: u64,
    },
    HashMismatch {
        seq: u64,
    },
    BadSignature {
        seq: u64,
    },
    Malformed {
        seq: u64,
        reason: String,
    },
    WrongDevice {
        seq: u64,
    },
    /// Signed by a session this verifier was not shown (or one opened after the entry).
    UnknownSession {
        seq: u64,
    },
    /// Signed by a session after it expired.
    SessionExpired {
        seq: u64,
    },
    /// A countersignature that does not hold, or names an entry with another hash.
    BadCountersign {
        seq: u64,
    },
    /// Entries from here on are covered by no signature.
    Unsealed {
        from: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub entries: usize,
    /// The first problem, if any (later ones are not trusted anyway).
    pub first_problem: Option<Problem>,
    /// The first v2 entry after the last signed one: not yet sealed (normal on a device
    /// between seals; refused by the server and in bundles).
    pub unsealed_from: Option<u64>,
    /// Entries the device key countersigned (consents).
    pub countersigned: Vec<u64>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.first_problem.is_none()
    }

    /// No problem, and every entry covered by a signature.
    pub fn sealed(&self) -> bool {
        self.ok() && self.unsealed_from.is_none()
    }

    /// The first problem, counting an unsealed tail as one.
    pub fn first_problem_sealed(&self) -> Option<Problem> {
        self.first_problem.clone().or(self.unsealed_from.map(|from| Problem::Unsealed { from }))
    }
}

/// A signature to check: entry index, key, message, signature.
struct Job<'a> {
    index: usize,
    key: Vec<u8>,
    message: std::borrow::Cow<'a, [u8]>,
    signature: std::borrow::Cow<'a, [u8]>,
}

fn holds(job: &Job<'_>) -> bool {
    signer::verify(&job.key, &job.message, &job.signature).unwrap_or(false)
}

/// Jobs below this many are checked on the calling thread.
const PARALLEL_FROM: usize = 64;

/// The entry index of the first job whose signature does not hold, across the machine's
/// cores; the same answer as a walk in order.
fn first_bad_signature(jobs: &[Job<'_>]) -> Option<usize> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(8);
    if jobs.len() < PARALLEL_FROM || threads < 2 {
        return jobs.iter().find(|j| !holds(j)).map(|j| j.index);
    }
    let chunk = jobs.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = jobs.chunks(chunk).map(|part| scope.spawn(move || part.iter().find(|j| !holds(j)).map(|j| j.index))).collect();
        // A thread that could not report counts as a failure at its first job (never a pass).
        handles.into_iter().zip(jobs.chunks(chunk)).filter_map(|(h, part)| h.join().unwrap_or(Some(part[0].index))).min()
    })
}

/// Everything but the signature: hash, body, seq, device, link, payload hash.
fn check_structure(e: &Entry, device: &str, linked: impl FnOnce(&Body) -> bool) -> Result<Body, Problem> {
    check_built(e, None, device, linked)
}

/// [`check_structure`] of an entry whose body is known from building it (`seal::build`): the
/// bytes are that body's serialization, so they are hashed but not parsed back. A body built
/// for another entry (another hash) is ignored and the bytes parsed.
fn check_built(e: &Entry, built: Option<super::seal::Built>, device: &str, linked: impl FnOnce(&Body) -> bool) -> Result<Body, Problem> {
    if sha256_hex(&e.body) != e.hash {
        return Err(Problem::HashMismatch { seq: e.seq });
    }
    let body = match built.and_then(|b| b.body_of(&e.hash)) {
        Some(body) => body,
        None => e.body().map_err(|err| Problem::Malformed { seq: e.seq, reason: err.to_string() })?,
    };
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

/// A walk over entries in order: structure first, signature jobs collected, sessions learnt
/// from the chain itself.
struct Walk<'a> {
    keys: Keys,
    device: &'a str,
    jobs: Vec<Job<'a>>,
    hashes: HashMap<u64, &'a str>,
    countersigned: Vec<u64>,
    last_signed: Option<usize>,
    walked: usize,
}

impl<'a> Walk<'a> {
    fn new(keys: &Keys, device: &'a str) -> Self {
        Self { keys: keys.clone(), device, jobs: Vec::new(), hashes: HashMap::new(), countersigned: Vec::new(), last_signed: None, walked: 0 }
    }

    /// Checks entry `i` after its structure held: which key signs it, and countersignatures.
    fn entry(&mut self, i: usize, e: &'a Entry, body: &Body, standalone: bool) -> Result<(), Problem> {
        self.hashes.insert(e.seq, e.hash.as_str());
        if e.is_signed() {
            let key = match body.key {
                None => self.keys.device.clone(),
                Some(_) if body.v < 2 || body.is(JournalKind::SessionOpen) => {
                    return Err(Problem::Malformed { seq: e.seq, reason: "this entry must be signed by the device key".into() })
                }
                Some(s) => {
                    let session = self.keys.sessions.get(&s).filter(|_| s < e.seq).ok_or(Problem::UnknownSession { seq: e.seq })?;
                    if body.at_ms > session.expires_at_ms {
                        return Err(Problem::SessionExpired { seq: e.seq });
                    }
                    session.key.clone()
                }
            };
            self.jobs.push(Job { index: i, key, message: e.body.as_slice().into(), signature: e.signature.as_slice().into() });
            self.last_signed = Some(i);
            if body.is(JournalKind::SessionOpen) && body.key.is_none() {
                self.keys.learn(body)?;
            }
        } else if body.v < 2 || standalone {
            return Err(Problem::BadSignature { seq: e.seq });
        }
        if body.is(JournalKind::Countersign) {
            self.countersign(i, e, body)?;
        }
        self.walked = i + 1;
        Ok(())
    }

    fn countersign(&mut self, i: usize, e: &Entry, body: &Body) -> Result<(), Problem> {
        let bad = Problem::BadCountersign { seq: e.seq };
        let c: Countersign = body.payload.clone().and_then(|p| serde_json::from_value(p).ok()).ok_or(bad.clone())?;
        let signature = unhex(&c.signature).ok_or(bad.clone())?;
        if c.seq >= e.seq || self.hashes.get(&c.seq).is_some_and(|h| *h != c.hash) {
            return Err(bad);
        }
        let message = countersign_message(self.device, c.seq, &c.hash);
        self.jobs.push(Job { index: i, key: self.keys.device.clone(), message: message.into(), signature: signature.into() });
        self.countersigned.push(c.seq);
        Ok(())
    }

    fn finish(self, entries: &[Entry], structural: Option<(usize, Problem)>) -> Report {
        let checked = structural.as_ref().map_or(entries.len(), |(i, _)| *i);
        let jobs: Vec<Job<'_>> = self.jobs.into_iter().filter(|j| j.index < checked).collect();
        let first_problem = match first_bad_signature(&jobs) {
            Some(i) => Some(Problem::BadSignature { seq: entries[i].seq }),
            None => structural.map(|(_, p)| p),
        };
        // Every entry walked after the last signed one is unsigned (a v1 one was refused).
        let tail = self.last_signed.map_or(0, |l| l + 1);
        let unsealed_from = (tail < self.walked).then(|| entries[tail].seq);
        Report { entries: entries.len(), first_problem, unsealed_from, countersigned: self.countersigned }
    }
}

/// Walks `entries` (consecutive, starting at `start_prev` — the hash before the first, or
/// `ZERO_HASH` for a whole journal) and reports the first broken link, bad signature or gap,
/// and where the unsealed tail starts.
///
/// The chain (seqs, hashes, bodies, links, keys) is walked in order; the signatures of the
/// entries before the first structural problem are then checked across cores. The first
/// problem in entry order is reported, exactly as a single walk would.
pub fn verify(entries: &[Entry], keys: &Keys, device: &str, start_prev: Option<&str>) -> Report {
    verify_keeping_bodies(entries, Vec::new(), keys, device, start_prev).0
}

/// [`verify`], handing back the bodies it parsed: one per entry up to the first structural
/// problem (every entry when the report has none), so a caller that stores the entries does
/// not parse them again. `built[i]`, where present, is the body entry `i` was built from
/// (`seal::build`, as a compact upload is expanded): it is used instead of parsing the bytes.
pub fn verify_keeping_bodies(
    entries: &[Entry],
    built: Vec<Option<super::seal::Built>>,
    keys: &Keys,
    device: &str,
    start_prev: Option<&str>,
) -> (Report, Vec<Body>) {
    let mut built = built.into_iter();
    let mut prev: Option<&str> = start_prev;
    let first = entries.first().map(|e| e.seq).unwrap_or(1);
    let mut walk = Walk::new(keys, device);
    let mut structural: Option<(usize, Problem)> = None;
    let mut bodies = Vec::with_capacity(entries.len());
    for (i, (expected_seq, e)) in (first..).zip(entries).enumerate() {
        let step = if e.seq != expected_seq {
            Err(Problem::Gap { expected: expected_seq, found: e.seq })
        } else {
            check_built(e, built.next().flatten(), device, |b| prev.is_none_or(|p| b.prev == p)).and_then(|body| walk.entry(i, e, &body, false).map(|()| body))
        };
        match step {
            Ok(body) => bodies.push(body),
            Err(p) => {
                structural = Some((i, p));
                break;
            }
        }
        prev = Some(e.hash.as_str());
    }
    (walk.finish(entries, structural), bodies)
}

/// Verifies one order's slice of a device journal through its per-order chain: every entry
/// is about `order`, hashes and signatures hold, seqs increase, and each entry links to the
/// one before it (`order_prev`, the first to `ZERO_HASH`). Entries of other orders are not
/// needed, so a bundle discloses nothing about other customers; the sessions that signed
/// the slice's seals come in `keys`.
pub fn verify_order_slice(entries: &[Entry], keys: &Keys, device: &str, order: &str) -> Report {
    let mut prev = ZERO_HASH;
    let mut last_seq = 0u64;
    let mut walk = Walk::new(keys, device);
    let mut structural = None;
    for (i, e) in entries.iter().enumerate() {
        let step = if e.seq <= last_seq {
            Err(Problem::Gap { expected: last_seq + 1, found: e.seq })
        } else {
            check_structure(e, device, |b| b.order_prev.as_deref() == Some(prev)).and_then(|body| {
                if body.order.as_deref() != Some(order) {
                    return Err(Problem::Malformed { seq: e.seq, reason: "the entry is about another order".into() });
                }
                walk.entry(i, e, &body, false)
            })
        };
        if let Err(p) = step {
            structural = Some((i, p));
            break;
        }
        prev = e.hash.as_str();
        last_seq = e.seq;
    }
    walk.finish(entries, structural)
}

/// Verifies entries that stand alone (time tickets and sessions a bundle carries): hash,
/// body and signature each, no chain; every one must be signed.
pub fn verify_standalone(entries: &[Entry], keys: &Keys, device: &str) -> Report {
    let mut walk = Walk::new(keys, device);
    let structural =
        entries.iter().enumerate().find_map(|(i, e)| check_structure(e, device, |_| true).and_then(|b| walk.entry(i, e, &b, true)).err().map(|p| (i, p)));
    walk.finish(entries, structural)
}
