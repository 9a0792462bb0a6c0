//! Witnessing (c2sp.org/tlog-witness, c2sp.org/tlog-cosignature): a witness cosigns a
//! checkpoint only after checking it extends the last one it cosigned for that log, so a log
//! that shows two histories cannot get both cosigned (ADR 0020).
//!
//! A cosignature is a note signature with key id SHA-256(name || "\n" || 0x04 || public
//! key)[:4] over `cosignature/v1\ntime <seconds>\n` followed by the checkpoint's text, and
//! carries the timestamp: base64(key id || timestamp (u64, big-endian) || Ed25519 signature).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};

use super::note::{self, CheckpointBody, Note, Verifier};
use super::{tree, Hash};

const ALG_COSIGNATURE_V1: u8 = 0x04;
/// The most consistency proof lines a request may carry (C2SP: 63).
const MAX_PROOF: usize = 63;

fn message(text: &str, timestamp: u64) -> String {
    format!("cosignature/v1\ntime {timestamp}\n{text}")
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("the witness key is malformed")]
    BadKey,
    #[error("the request is malformed: {0}")]
    Malformed(&'static str),
    #[error("{got} of the {need} witness cosignatures the policy needs")]
    Quorum { got: usize, need: usize },
}

/// A witness's Ed25519 cosigning key.
pub struct Cosigner {
    name: String,
    key: Ed25519KeyPair,
    id: [u8; 4],
}

impl Cosigner {
    pub fn from_seed(name: &str, seed: &[u8]) -> Result<Self, Error> {
        if !note::valid_name(name) {
            return Err(Error::BadKey);
        }
        let key = Ed25519KeyPair::from_seed_unchecked(seed).map_err(|_| Error::BadKey)?;
        Ok(Self { name: name.to_string(), id: note::key_id(name, ALG_COSIGNATURE_V1, key.public_key().as_ref()), key })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `<name>+<hex id>+<base64(0x04 || public key)>`.
    pub fn verifier_key(&self) -> String {
        note::verifier_key(&self.name, ALG_COSIGNATURE_V1, self.key.public_key().as_ref())
    }

    /// The cosignature line over a checkpoint's text at `timestamp` (seconds).
    pub fn cosign(&self, text: &str, timestamp: u64) -> String {
        let mut sig = self.id.to_vec();
        sig.extend_from_slice(&timestamp.to_be_bytes());
        sig.extend_from_slice(self.key.sign(message(text, timestamp).as_bytes()).as_ref());
        format!("\u{2014} {} {}\n", self.name, B64.encode(sig))
    }
}

/// A witness's public key, as a policy names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Witness {
    pub name: String,
    id: [u8; 4],
    public_key: Vec<u8>,
}

impl Witness {
    pub fn parse(vkey: &str) -> Result<Self, Error> {
        let (name, id, public_key) = note::parse_verifier_key(vkey, ALG_COSIGNATURE_V1).map_err(|_| Error::BadKey)?;
        Ok(Self { name, id, public_key })
    }

    /// The timestamp of this witness's valid cosignature on `note`, if it has one.
    pub fn cosigned(&self, note: &Note) -> Option<u64> {
        note.signatures.iter().find_map(|(name, sig)| {
            if name != &self.name || sig.len() != 76 || sig[..4] != self.id {
                return None;
            }
            let timestamp = u64::from_be_bytes(sig[4..12].try_into().ok()?);
            let ok = UnparsedPublicKey::new(&ED25519, &self.public_key).verify(message(&note.text, timestamp).as_bytes(), &sig[12..]).is_ok();
            ok.then_some(timestamp)
        })
    }
}

/// Which witnesses must have cosigned a checkpoint for it to be trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub witnesses: Vec<Witness>,
    pub quorum: usize,
}

impl Policy {
    /// The names of the policy's witnesses that cosigned `note`, if they reach the quorum.
    pub fn check(&self, note: &Note) -> Result<Vec<String>, Error> {
        let names: Vec<String> = self.witnesses.iter().filter(|w| w.cosigned(note).is_some()).map(|w| w.name.clone()).collect();
        if names.len() < self.quorum {
            return Err(Error::Quorum { got: names.len(), need: self.quorum });
        }
        Ok(names)
    }
}

/// An add-checkpoint request: the size the client believes the witness holds, a
/// consistency proof from it, and the signed checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddCheckpoint {
    pub old: u64,
    pub proof: Vec<Hash>,
    pub checkpoint: String,
}

impl AddCheckpoint {
    pub fn to_body(&self) -> String {
        let mut out = format!("old {}\n", self.old);
        for h in &self.proof {
            out.push_str(&B64.encode(h));
            out.push('\n');
        }
        out.push('\n');
        out.push_str(&self.checkpoint);
        out
    }

    pub fn parse(body: &str) -> Result<Self, Error> {
        let (head, checkpoint) = body.split_once("\n\n").ok_or(Error::Malformed("no blank line before the checkpoint"))?;
        let mut lines = head.split('\n');
        let old = lines
            .next()
            .and_then(|l| l.strip_prefix("old "))
            .filter(|n| *n == "0" || !n.starts_with('0'))
            .and_then(|n| n.parse().ok())
            .ok_or(Error::Malformed("the old size line"))?;
        let proof =
            lines.map(|l| B64.decode(l).ok().and_then(|h| <Hash>::try_from(h).ok()).ok_or(Error::Malformed("a proof line"))).collect::<Result<Vec<_>, _>>()?;
        if proof.len() > MAX_PROOF {
            return Err(Error::Malformed("more than 63 proof lines"));
        }
        Ok(Self { old, proof, checkpoint: checkpoint.to_string() })
    }
}

/// Why a witness refuses a checkpoint (each is a status of the protocol).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("400: {0}")]
    BadRequest(String),
    #[error("403: no signature from the log's key")]
    Forbidden,
    #[error("404: unknown log `{0}`")]
    UnknownLog(String),
    /// The witness holds another size (or another root at this size): the body is its size.
    #[error("409: the witness holds size {0}")]
    Conflict(u64),
    #[error("422: the consistency proof does not verify")]
    BadProof,
}

/// A witness's decision on `req`, given the log keys it trusts (by origin) and the latest
/// checkpoint it cosigned for that origin. `Ok`: the checkpoint to record (and cosign).
pub fn decide(
    req: &AddCheckpoint,
    log_key: impl Fn(&str) -> Option<Verifier>,
    latest: impl FnOnce(&str) -> Option<(u64, Hash)>,
) -> Result<CheckpointBody, Refusal> {
    let note = Note::parse(&req.checkpoint).map_err(|e| Refusal::BadRequest(e.to_string()))?;
    let body = CheckpointBody::parse(&note.text).map_err(|e| Refusal::BadRequest(e.to_string()))?;
    let key = log_key(&body.origin).ok_or_else(|| Refusal::UnknownLog(body.origin.clone()))?;
    if !note.signed_by(&key) {
        return Err(Refusal::Forbidden);
    }
    if req.old > body.size {
        return Err(Refusal::BadRequest(format!("old size {} is past the checkpoint's {}", req.old, body.size)));
    }
    let (held, held_root) = latest(&body.origin).unwrap_or((0, [0; 32]));
    if req.old != held {
        return Err(Refusal::Conflict(held));
    }
    if held == 0 {
        return if req.proof.is_empty() { Ok(body) } else { Err(Refusal::BadRequest("a proof from size 0".into())) };
    }
    if held == body.size {
        return match (body.root == held_root, req.proof.is_empty()) {
            (false, _) => Err(Refusal::Conflict(held)),
            (true, false) => Err(Refusal::BadProof),
            (true, true) => Ok(body),
        };
    }
    tree::verify_consistency(held, body.size, &held_root, &body.root, &req.proof).map_err(|_| Refusal::BadProof)?;
    Ok(body)
}

#[cfg(test)]
mod tests;
