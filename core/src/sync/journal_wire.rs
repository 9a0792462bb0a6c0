//! The compact journal upload (v2): per entry, only what the server cannot recompute. The
//! device id, the chain link (`prev`), the per-order link (`order_prev`, sent as the seq it
//! points to) and the payload hash (for inline payloads) are filled in by the receiver from
//! its own copy, and every entry's canonical body and hash are rebuilt; a seal's signature
//! then holds only if every byte the device hashed is rebuilt exactly (docs/sync-protocol.md).
//! Times travel as deltas from the previous entry of the upload.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::evidence::journal::{self, Body, Entry, TicketAnchor, ZERO_HASH};
use crate::order::GpsFix;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Error {
    #[error("journal entry {seq}: {reason}")]
    Entry { seq: u64, reason: String },
}

fn err(seq: u64, reason: impl Into<String>) -> Error {
    Error::Entry { seq, reason: reason.into() }
}

/// One entry on the wire (CBOR map with one-letter keys).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompactEntry {
    /// seq
    pub s: u64,
    /// at_ms, minus the previous entry's in this upload (absolute for the first)
    pub a: i64,
    /// mono_ms, minus the previous entry's (absolute for the first)
    pub m: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub t: Option<TicketAnchor>,
    /// kind
    pub k: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub o: Option<String>,
    /// The seq `order_prev` points to (0: the order's first entry); present iff `o` is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op: Option<u64>,
    /// The inline payload's JSON bytes.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "super::protocol::opt_bytes")]
    pub p: Option<Vec<u8>>,
    /// The payload hash, only when the payload is not inline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub h: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub f: Option<GpsFix>,
    /// body `key`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<u64>,
    /// The signature, for the few signed entries.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "super::protocol::opt_bytes")]
    pub g: Option<Vec<u8>>,
}

/// Compacts consecutive v2 entries. `order_prev_seq(order, before)` names the seq of the
/// order's entry before `before` (for links that point before this batch).
pub fn compact(entries: &[Entry], mut order_prev_seq: impl FnMut(&str, u64) -> Option<(u64, String)>) -> Result<Vec<CompactEntry>, Error> {
    let mut out = Vec::with_capacity(entries.len());
    let mut seqs: HashMap<&str, u64> = HashMap::new();
    let (mut at, mut mono) = (0i64, 0i64);
    for e in entries {
        let b = e.body().map_err(|x| err(e.seq, x.to_string()))?;
        if b.v < 2 {
            return Err(err(e.seq, "a v1 entry travels whole"));
        }
        let op = match (&b.order, &b.order_prev) {
            (Some(o), Some(hash)) if hash == ZERO_HASH => Some((o, 0)),
            (Some(o), Some(hash)) => {
                let seq = match seqs.get(hash.as_str()) {
                    Some(s) => *s,
                    None => match order_prev_seq(o, e.seq) {
                        Some((s, h)) if &h == hash => s,
                        _ => return Err(err(e.seq, "its order link names no earlier entry of the order")),
                    },
                };
                Some((o, seq))
            }
            (None, None) => None,
            _ => return Err(err(e.seq, "order and order link disagree")),
        };
        let payload = match &b.payload {
            Some(p) => Some(serde_json::to_vec(p).map_err(|x| err(e.seq, x.to_string()))?),
            None => None,
        };
        let mono_ms = i64::try_from(b.mono_ms).map_err(|_| err(e.seq, "monotonic time out of range"))?;
        out.push(CompactEntry {
            s: e.seq,
            a: b.at_ms.wrapping_sub(at),
            m: mono_ms.wrapping_sub(mono),
            t: b.ticket,
            k: b.kind.clone(),
            o: b.order.clone(),
            op: op.map(|(_, s)| s),
            h: payload.is_none().then(|| b.payload_sha256.clone()),
            p: payload,
            f: b.fix,
            y: b.key,
            g: e.is_signed().then(|| e.signature.clone()),
        });
        seqs.insert(e.hash.as_str(), e.seq);
        (at, mono) = (b.at_ms, mono_ms);
    }
    Ok(out)
}

/// Rebuilds entries from a compact upload for device `device`, chained from `prev` (the
/// hash of the entry before the first). `hash_of(seq)` gives the hash of an earlier entry
/// the receiver already holds (per-order links that point before this upload).
pub fn expand(compact: &[CompactEntry], device: &str, prev: &str, hash_of: impl FnMut(u64) -> Option<String>) -> Result<Vec<Entry>, Error> {
    Ok(expand_built(compact, device, prev, hash_of)?.into_iter().map(|(e, _)| e).collect())
}

/// [`expand`], keeping the body each entry was built from, for verification
/// (`journal::verify_keeping_bodies` then reads it instead of parsing the bytes back).
pub fn expand_built(
    compact: &[CompactEntry],
    device: &str,
    prev: &str,
    mut hash_of: impl FnMut(u64) -> Option<String>,
) -> Result<Vec<(Entry, journal::seal::Built)>, Error> {
    let mut out: Vec<(Entry, journal::seal::Built)> = Vec::with_capacity(compact.len());
    let mut hashes: HashMap<u64, usize> = HashMap::new();
    let mut prev = prev.to_string();
    let (mut at, mut mono) = (0i64, 0i64);
    for c in compact {
        if let Some((last, _)) = out.last() {
            if c.s != last.seq + 1 {
                return Err(err(c.s, format!("expected entry {} next", last.seq + 1)));
            }
        }
        at = at.wrapping_add(c.a);
        mono = mono.wrapping_add(c.m);
        let mono_ms = u64::try_from(mono).map_err(|_| err(c.s, "negative monotonic time"))?;
        let order_prev = match (&c.o, c.op) {
            (Some(_), Some(0)) => Some(ZERO_HASH.to_string()),
            (Some(_), Some(seq)) if seq < c.s => match hashes.get(&seq) {
                Some(i) => Some(out[*i].0.hash.clone()),
                None => Some(hash_of(seq).ok_or_else(|| err(c.s, format!("its order link names entry {seq}, which the server does not hold")))?),
            },
            (None, None) => None,
            _ => return Err(err(c.s, "order and order link disagree")),
        };
        let (payload, payload_sha256) = match (&c.p, &c.h) {
            (Some(bytes), None) => {
                let v: serde_json::Value = serde_json::from_slice(bytes).map_err(|x| err(c.s, format!("payload: {x}")))?;
                (Some(v), crate::hash::sha256_hex(bytes))
            }
            (None, Some(h)) if crate::hash::is_sha256_hex(h) => (None, h.clone()),
            _ => return Err(err(c.s, "needs exactly one of an inline payload or its hash")),
        };
        let body = Body {
            v: 2,
            device: device.to_string(),
            seq: c.s,
            prev: prev.clone(),
            at_ms: at,
            mono_ms,
            ticket: c.t,
            kind: c.k.clone(),
            order: c.o.clone(),
            order_prev,
            payload_sha256,
            payload,
            fix: c.f,
            key: c.y,
        };
        let (e, built) = journal::seal::build(body, c.g.clone().unwrap_or_default()).map_err(|x: journal::Error| err(c.s, x.to_string()))?;
        prev = e.hash.clone();
        hashes.insert(e.seq, out.len());
        out.push((e, built));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::journal::{seal_with, Draft, Head, JournalKind, Keys, SealPayload, Session, Signing};
    use crate::evidence::signer::{Signer, SoftwareSigner};

    /// A journal like the store writes: a session, notes on two orders (one payload too
    /// large to inline), a ticket, seals.
    fn journal() -> (SoftwareSigner, Vec<Entry>) {
        let hw = SoftwareSigner::generate().unwrap();
        let mut head = Head::genesis();
        let mut out: Vec<Entry> = Vec::new();
        let mut order_heads: HashMap<String, String> = HashMap::new();
        let mut push = |out: &mut Vec<Entry>, d: Draft, signing: Signing<'_>, head: &mut Head, at: i64| {
            let op = d.order.as_ref().map(|o| order_heads.get(o).cloned().unwrap_or_else(|| ZERO_HASH.into()));
            let (es, h) = seal_with(head, "dev", at, (at - 1_000_000) as u64, &d, op.as_deref(), signing).unwrap();
            for e in &es {
                if let Some(o) = e.body().unwrap().order {
                    order_heads.insert(o, e.hash.clone());
                }
            }
            out.extend(es);
            *head = h;
        };
        let (key, open) = Session::begin(2_000_000, None).unwrap();
        push(&mut out, open, Signing::Every(&hw), &mut head, 2_000_000);
        let session = Session::new(1, key, 2_000_000);
        for i in 0..12 {
            let order = if i % 3 == 0 { "WO-1" } else { "WO-2" };
            let text = if i == 5 { "x".repeat(5000) } else { format!("note {i}") };
            push(
                &mut out,
                Draft::new(JournalKind::Note, Some(order), serde_json::json!({ "text": text })),
                Signing::Session(&session),
                &mut head,
                2_000_000 + i * 700,
            );
        }
        push(&mut out, Draft::new(JournalKind::TimeTicket, None, serde_json::json!({ "t": 1 })), Signing::Session(&session), &mut head, 2_010_000);
        for o in ["WO-1", "WO-2"] {
            push(
                &mut out,
                Draft::of(JournalKind::Seal, Some(o), &SealPayload { reason: "sync".into() }).unwrap(),
                Signing::Session(&session),
                &mut head,
                2_011_000,
            );
        }
        (hw, out)
    }

    #[test]
    fn compact_entries_expand_to_the_same_bytes_and_verify() {
        let (hw, entries) = journal();
        let wire = compact(&entries, |_, _| None).unwrap();
        let back = expand(&wire, "dev", ZERO_HASH, |_| None).unwrap();
        assert_eq!(back, entries);
        assert!(journal::verify(&back, &Keys::device(&hw.public_key()), "dev", Some(ZERO_HASH)).sealed());
        // A later batch: links into the first part come from the receiver's copy.
        let held: HashMap<u64, String> = entries[..6].iter().map(|e| (e.seq, e.hash.clone())).collect();
        let by_order = |o: &str, before: u64| {
            entries[..6].iter().rev().find(|e| e.seq < before && e.body().unwrap().order.as_deref() == Some(o)).map(|e| (e.seq, e.hash.clone()))
        };
        let wire = compact(&entries[6..], by_order).unwrap();
        let back = expand(&wire, "dev", &entries[5].hash, |s| held.get(&s).cloned()).unwrap();
        assert_eq!(back, entries[6..]);
        // ... and a receiver without them refuses, naming the entry.
        assert!(matches!(expand(&wire, "dev", &entries[5].hash, |_| None), Err(Error::Entry { .. })));
        let encoded = crate::sync::protocol::encode(&wire).unwrap();
        let whole = crate::sync::protocol::encode(&entries.iter().map(crate::sync::protocol::WireEntry::from_entry).collect::<Vec<_>>()).unwrap();
        assert!(encoded.len() * 3 < whole.len(), "{} vs {}", encoded.len(), whole.len());
    }

    #[test]
    fn an_edited_dropped_reordered_or_inserted_entry_fails_the_seal() {
        let (hw, entries) = journal();
        let keys = Keys::device(&hw.public_key());
        let wire = compact(&entries, |_, _| None).unwrap();
        // As `verify` parses the bytes, and as the server verifies them with the bodies it
        // built them from: the same verdict.
        let verdict = |w: &[CompactEntry]| match expand_built(w, "dev", ZERO_HASH, |_| None) {
            Ok(built) => {
                let es: Vec<Entry> = built.iter().map(|(e, _)| e.clone()).collect();
                let parsed = journal::verify(&es, &keys, "dev", Some(ZERO_HASH)).sealed();
                let bodies = built.into_iter().map(|(_, b)| Some(b)).collect();
                assert_eq!(journal::verify_keeping_bodies(&es, bodies, &keys, "dev", Some(ZERO_HASH)).0.sealed(), parsed);
                parsed
            }
            Err(_) => false,
        };
        assert!(verdict(&wire));
        let mut edited = wire.clone();
        edited[4].p = Some(br#"{"text":"forged"}"#.to_vec());
        assert!(!verdict(&edited));
        let mut retimed = wire.clone();
        retimed[3].a += 1;
        assert!(!verdict(&retimed));
        let mut dropped = wire.clone();
        dropped.remove(4);
        for c in dropped.iter_mut().skip(4) {
            c.s -= 1;
        }
        assert!(!verdict(&dropped));
        let mut reordered = wire.clone();
        reordered.swap(3, 4);
        (reordered[3].s, reordered[4].s) = (reordered[4].s, reordered[3].s);
        assert!(!verdict(&reordered));
        let mut inserted = wire.clone();
        let mut extra = wire[4].clone();
        extra.p = Some(br#"{"text":"late"}"#.to_vec());
        inserted.insert(5, extra);
        for (i, c) in inserted.iter_mut().enumerate() {
            c.s = i as u64 + 1;
        }
        assert!(!verdict(&inserted));
        // A forged signature on the seal, or a payload given twice: refused.
        let mut forged = wire.clone();
        let n = forged.len() - 1;
        forged[n].g = Some(SoftwareSigner::generate().unwrap().sign(b"x").unwrap());
        assert!(!verdict(&forged));
        let mut both = wire.clone();
        both[2].h = Some(crate::hash::sha256_hex(b"x"));
        assert!(expand(&both, "dev", ZERO_HASH, |_| None).is_err());
    }

    /// The body an expanded entry keeps is what parsing its bytes gives, or the entry is
    /// refused as the parse would refuse it: a fix JSON cannot write (CBOR can carry NaN and
    /// infinity), an inline `null` payload.
    #[test]
    fn an_expanded_entry_keeps_the_body_its_bytes_parse_to() {
        let (hw, entries) = journal();
        let wire = compact(&entries, |_, _| None).unwrap();
        for (e, b) in expand_built(&wire, "dev", ZERO_HASH, |_| None).unwrap() {
            assert_eq!(&e.body().unwrap(), b.body());
        }
        let fix = |v: f64| GpsFix { lat: 39.9, lon: v, accuracy_m: 5.0, source: crate::order::LocationSource::Gps, mock: false };
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let mut w = wire.clone();
            w[3].f = Some(fix(bad));
            // The parse refuses the bytes such a body serializes to, so expanding refuses it.
            assert!(matches!(expand_built(&w, "dev", ZERO_HASH, |_| None), Err(Error::Entry { seq: 4, .. })), "{bad}");
        }
        // A body handed over for another entry (here: each for the next one) is not used.
        let built = expand_built(&wire, "dev", ZERO_HASH, |_| None).unwrap();
        let es: Vec<Entry> = built.iter().map(|(e, _)| e.clone()).collect();
        let mut shifted: Vec<Option<journal::seal::Built>> = built.into_iter().map(|(_, b)| Some(b)).collect();
        shifted.rotate_left(1);
        let keys = Keys::device(&hw.public_key());
        let (report, bodies) = journal::verify_keeping_bodies(&es, shifted, &keys, "dev", Some(ZERO_HASH));
        assert!(report.sealed() && journal::verify(&es, &keys, "dev", Some(ZERO_HASH)).sealed());
        assert_eq!(bodies, es.iter().map(|e| e.body().unwrap()).collect::<Vec<_>>());
        let mut w = wire.clone();
        w[3].f = Some(fix(116.4));
        w[4].p = Some(b"null".to_vec());
        for (e, b) in expand_built(&w, "dev", ZERO_HASH, |_| None).unwrap() {
            assert_eq!(&e.body().unwrap(), b.body());
        }
    }
}
