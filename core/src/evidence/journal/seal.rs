//! Building entries: the chain fields, the clock entries a jump or a reboot calls for, and
//! which entries get a signature and from which key.

use super::session::Session;
use super::{Body, Draft, Entry, Error, Head, JournalKind, TicketAnchor, CLOCK_JUMP_MS, INLINE_PAYLOAD_MAX};
use crate::evidence::signer::{self, Signer};
use crate::hash::sha256_hex;

/// Who signs the entries [`seal_with`] builds.
#[derive(Clone, Copy)]
pub enum Signing<'a> {
    /// Every entry, by this key (the device key: `session_open` entries, and tools and tests
    /// that want self-standing entries).
    Every(&'a dyn Signer),
    /// The session: `seal` and `time_ticket` entries are signed by the session key (a ticket
    /// stands alone in a bundle); every other entry is covered by the next seal.
    Session(&'a Session),
}

impl Signing<'_> {
    /// The key for an entry of `kind`, with the `key` field it names (`None`: the device).
    fn key_for(&self, kind: JournalKind) -> Option<(&dyn Signer, Option<u64>)> {
        match *self {
            Signing::Every(s) => Some((s, None)),
            Signing::Session(session) => {
                matches!(kind, JournalKind::Seal | JournalKind::TimeTicket).then_some((session.signer() as &dyn Signer, Some(session.seq)))
            }
        }
    }
}

/// Builds and signs the entries for `draft` (a `clock_jump` or `monotonic_reset` entry first
/// when the clocks disagree with the head), every one signed by `signer`. Returns them with
/// the new head.
pub fn seal(head: &Head, device: &str, at_ms: i64, mono_ms: u64, draft: &Draft, signer: &dyn Signer) -> Result<(Vec<Entry>, Head), Error> {
    seal_with(head, device, at_ms, mono_ms, draft, None, Signing::Every(signer))
}

/// Builds the entries for `draft`, linked to `head` and to the order's previous entry
/// (`order_prev`), signed as `signing` says.
pub fn seal_with(
    head: &Head,
    device: &str,
    at_ms: i64,
    mono_ms: u64,
    draft: &Draft,
    order_prev: Option<&str>,
    signing: Signing<'_>,
) -> Result<(Vec<Entry>, Head), Error> {
    let mut out = Vec::new();
    let mut head = head.clone();
    let at = Stamp { device, at_ms, mono_ms };
    if head.seq > 0 {
        if mono_ms < head.mono_ms {
            let p = serde_json::json!({ "previous_mono_ms": head.mono_ms, "mono_ms": mono_ms, "at_ms": at_ms });
            let e = seal_one(&head, &at, &Draft::new(JournalKind::MonotonicReset, None, p), None, signing, None)?;
            head = next_head(&e, at_ms, mono_ms, None);
            out.push(e);
        } else {
            let wall = at_ms - head.at_ms;
            let mono = (mono_ms - head.mono_ms) as i64;
            if (wall - mono).abs() > CLOCK_JUMP_MS {
                let p = serde_json::json!({ "wall_delta_ms": wall, "mono_delta_ms": mono });
                let anchor = anchor(&head, mono_ms);
                let e = seal_one(&head, &at, &Draft::new(JournalKind::ClockJump, None, p), None, signing, anchor)?;
                head = next_head(&e, at_ms, mono_ms, head.ticket);
                out.push(e);
            }
        }
    }
    let anchor = anchor(&head, mono_ms);
    let e = seal_one(&head, &at, draft, order_prev, signing, anchor)?;
    let ticket = if draft.kind == JournalKind::TimeTicket { Some((e.seq, mono_ms)) } else { head.ticket };
    head = next_head(&e, at_ms, mono_ms, ticket);
    out.push(e);
    Ok((out, head))
}

struct Stamp<'a> {
    device: &'a str,
    at_ms: i64,
    mono_ms: u64,
}

fn anchor(head: &Head, mono_ms: u64) -> Option<TicketAnchor> {
    head.ticket.and_then(|(seq, received)| (mono_ms >= received).then_some(TicketAnchor { seq, elapsed_ms: mono_ms - received }))
}

fn next_head(e: &Entry, at_ms: i64, mono_ms: u64, ticket: Option<(u64, u64)>) -> Head {
    Head { seq: e.seq, hash: e.hash.clone(), at_ms, mono_ms, ticket, written: e.seq }
}

fn seal_one(head: &Head, at: &Stamp<'_>, draft: &Draft, order_prev: Option<&str>, signing: Signing<'_>, ticket: Option<TicketAnchor>) -> Result<Entry, Error> {
    let payload_bytes = serde_json::to_vec(&draft.payload).map_err(|e| Error::Malformed { seq: head.seq + 1, reason: e.to_string() })?;
    let key = signing.key_for(draft.kind);
    let body = Body {
        v: 2,
        device: at.device.to_string(),
        seq: head.seq + 1,
        prev: head.hash.clone(),
        at_ms: at.at_ms,
        mono_ms: at.mono_ms,
        ticket,
        kind: draft.kind.as_str().to_string(),
        order: draft.order.clone(),
        order_prev: order_prev.map(str::to_string),
        payload_sha256: sha256_hex(&payload_bytes),
        payload: (payload_bytes.len() <= INLINE_PAYLOAD_MAX).then(|| draft.payload.clone()),
        fix: draft.fix,
        key: key.and_then(|(_, k)| k),
    };
    let bytes = serde_json::to_vec(&body).map_err(|e| Error::Malformed { seq: body.seq, reason: e.to_string() })?;
    let signature = match key {
        Some((s, _)) => signer::normalize(&s.sign(&bytes)?)?,
        None => Vec::new(),
    };
    Ok(Entry { seq: body.seq, hash: sha256_hex(&bytes), body: bytes, signature })
}

/// Rebuilds an entry from its body (as a compact upload carries it, chain fields filled in
/// by the receiver) and its signature: the canonical bytes, their hash.
pub fn from_body(body: &Body, signature: Vec<u8>) -> Result<Entry, Error> {
    let bytes = serde_json::to_vec(body).map_err(|e| Error::Malformed { seq: body.seq, reason: e.to_string() })?;
    Ok(Entry { seq: body.seq, hash: sha256_hex(&bytes), body: bytes, signature })
}

/// The body an entry was built from by [`build`]: its bytes are this body's serialization, so
/// verification reads it instead of parsing the bytes back (`verify::verify_keeping_bodies`).
/// Only [`build`] makes one, and it names its entry by hash: verification uses it only for
/// the entry with that hash (any other is parsed).
#[derive(Debug, Clone)]
pub struct Built {
    body: Body,
    hash: String,
}

impl Built {
    pub fn body(&self) -> &Body {
        &self.body
    }

    /// The body, if this was built as the entry whose hash is `hash`.
    pub(super) fn body_of(self, hash: &str) -> Option<Body> {
        (self.hash == hash).then_some(self.body)
    }
}

/// [`from_body`], keeping the body for verification: the body kept is what parsing the
/// entry's bytes gives back. JSON holds no NaN or infinity (serde_json writes `null`, which
/// then does not parse as a number), so a fix holding one is refused here as the parse
/// would refuse it; an inline `null` payload parses back as none.
pub fn build(mut body: Body, signature: Vec<u8>) -> Result<(Entry, Built), Error> {
    if body.fix.as_ref().is_some_and(|f| ![f.lat, f.lon, f.accuracy_m].iter().all(|x| x.is_finite())) {
        return Err(Error::Malformed { seq: body.seq, reason: "the fix holds a number JSON cannot write".into() });
    }
    let entry = from_body(&body, signature)?;
    if body.payload == Some(serde_json::Value::Null) {
        body.payload = None;
    }
    let hash = entry.hash.clone();
    Ok((entry, Built { body, hash }))
}
