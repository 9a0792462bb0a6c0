//! The append-only evidence log: RFC 9162 (Certificate Transparency v2) Merkle tree hashing,
//! inclusion proofs and signed checkpoints. The server appends every verified journal entry
//! of a provider's devices as a leaf; a device keeps the checkpoint and the inclusion proof of
//! its receipt entries, so a later dispute can show the entry was logged by then and that the
//! log never rewrote it.
//!
//! Leaf hash `SHA-256(0x00 || leaf)`, node hash `SHA-256(0x01 || left || right)`, the tree of
//! `n` leaves split at the largest power of two below `n` (RFC 9162 section 2.1.1).

use crate::hash::Sha256;
use serde::{Deserialize, Serialize};

use crate::evidence::signer::{self, Signer};

pub mod note;
pub mod tree;
pub mod witness;

pub type Hash = [u8; 32];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("leaf {index} is outside a tree of {size} leaves")]
    OutOfRange { index: u64, size: u64 },
    #[error("the inclusion proof does not lead to the checkpoint's root")]
    BadProof,
    #[error("the checkpoint is malformed: {0}")]
    Malformed(String),
    #[error("the checkpoint's signature does not verify")]
    BadSignature,
}

pub fn leaf_hash(leaf: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(leaf);
    h.finalize()
}

pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize()
}

/// The largest power of two strictly below `n` (n >= 2).
fn split(n: usize) -> usize {
    let mut k = 1;
    while k << 1 < n {
        k <<= 1;
    }
    k
}

/// MTH(D[n]) over leaf hashes. The empty tree's root is SHA-256 of nothing.
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => Sha256::digest([]),
        1 => leaves[0],
        n => {
            let k = split(n);
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// PATH(m, D[n]): the audit path of leaf `index` (RFC 9162 2.1.3.1).
pub fn inclusion_proof(index: u64, leaves: &[Hash]) -> Result<Vec<Hash>, Error> {
    let n = leaves.len();
    let m = index as usize;
    if m >= n {
        return Err(Error::OutOfRange { index, size: n as u64 });
    }
    let mut out = Vec::new();
    path(m, leaves, &mut out);
    Ok(out)
}

fn path(m: usize, leaves: &[Hash], out: &mut Vec<Hash>) {
    let n = leaves.len();
    if n <= 1 {
        return;
    }
    let k = split(n);
    if m < k {
        path(m, &leaves[..k], out);
        out.push(root(&leaves[k..]));
    } else {
        path(m - k, &leaves[k..], out);
        out.push(root(&leaves[..k]));
    }
}

/// Verifies an inclusion proof (RFC 9162 2.1.3.2).
pub fn verify_inclusion(index: u64, size: u64, leaf: &Hash, proof: &[Hash], expected_root: &Hash) -> Result<(), Error> {
    if index >= size {
        return Err(Error::OutOfRange { index, size });
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if snode == 0 {
            return Err(Error::BadProof);
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode == 0 && &r == expected_root {
        Ok(())
    } else {
        Err(Error::BadProof)
    }
}

/// A signed statement "the log `origin` has `size` leaves with root `root`", in the
/// checkpoint text format of transparency logs (origin, size, base64 root, one per line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    /// Hex SHA-256 root.
    pub root: String,
    /// Server time of signing, UTC ms.
    pub at_ms: i64,
    /// SEC1 public key of the log, hex.
    pub log_key: String,
    /// ES256 r||s over [`Checkpoint::note`], hex.
    pub signature: String,
}

impl Checkpoint {
    /// The exact signed text.
    pub fn note(origin: &str, size: u64, root: &str, at_ms: i64) -> String {
        format!("{origin}\n{size}\n{root}\n{at_ms}\n")
    }

    pub fn sign(origin: &str, size: u64, root: &Hash, at_ms: i64, key: &dyn Signer) -> Result<Self, signer::Error> {
        let root = crate::hash::hex(root);
        let sig = signer::normalize(&key.sign(Self::note(origin, size, &root, at_ms).as_bytes())?)?;
        Ok(Self { origin: origin.into(), size, root, at_ms, log_key: crate::hash::hex(&key.public_key()), signature: crate::hash::hex(&sig) })
    }

    /// Checks the signature (against `log_key`, when pinned, else the embedded key).
    pub fn verify(&self, log_key: Option<&[u8]>) -> Result<Hash, Error> {
        let embedded = crate::hash::unhex(&self.log_key).ok_or_else(|| Error::Malformed("log_key".into()))?;
        if let Some(pinned) = log_key {
            if pinned != embedded.as_slice() {
                return Err(Error::BadSignature);
            }
        }
        let sig = crate::hash::unhex(&self.signature).ok_or_else(|| Error::Malformed("signature".into()))?;
        let note = Self::note(&self.origin, self.size, &self.root, self.at_ms);
        if !signer::verify(&embedded, note.as_bytes(), &sig).unwrap_or(false) {
            return Err(Error::BadSignature);
        }
        let root = crate::hash::unhex(&self.root).ok_or_else(|| Error::Malformed("root".into()))?;
        root.try_into().map_err(|_| Error::Malformed("root".into()))
    }
}

/// What a device keeps for one logged journal entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InclusionProof {
    /// The device journal seq of the entry.
    pub seq: u64,
    /// Its leaf index in the provider's log.
    pub index: u64,
    /// Hex hashes, leaf to root.
    pub path: Vec<String>,
    pub checkpoint: Checkpoint,
    /// The same tree head as a C2SP checkpoint note with the witnesses' cosignatures, when
    /// the log has witnesses (docs/adr/0020). Proofs from before carry none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl InclusionProof {
    /// Verifies that the journal entry whose hash is `entry_hash` (hex) is leaf `index` under
    /// the signed checkpoint. The leaf is the entry hash's 32 bytes.
    pub fn verify(&self, entry_hash: &str, log_key: Option<&[u8]>) -> Result<(), Error> {
        let root = self.checkpoint.verify(log_key)?;
        let leaf = crate::hash::unhex(entry_hash).ok_or_else(|| Error::Malformed("entry hash".into()))?;
        let path: Vec<Hash> = self
            .path
            .iter()
            .map(|h| crate::hash::unhex(h).and_then(|b| b.try_into().ok()).ok_or_else(|| Error::Malformed("path".into())))
            .collect::<Result<_, _>>()?;
        verify_inclusion(self.index, self.checkpoint.size, &leaf_hash(&leaf), &path, &root)
    }

    /// The witnesses of `policy` that cosigned this proof's tree head: the note must state
    /// exactly the checkpoint's origin, size and root (which the log key signed), and the
    /// cosignatures must reach the policy's quorum. Without a policy, the names of the
    /// cosignatures present are returned unchecked.
    pub fn witnesses(&self, policy: Option<&witness::Policy>) -> Result<Vec<String>, WitnessProblem> {
        let Some(text) = &self.note else {
            return match policy {
                Some(p) if p.quorum > 0 => Err(WitnessProblem::NotCosigned),
                _ => Ok(Vec::new()),
            };
        };
        let note = note::Note::parse(text).map_err(|e| WitnessProblem::Note(e.to_string()))?;
        let body = note::CheckpointBody::parse(&note.text).map_err(|e| WitnessProblem::Note(e.to_string()))?;
        let root = crate::hash::unhex(&self.checkpoint.root).ok_or(WitnessProblem::Note("the checkpoint's root is not hex".into()))?;
        if body.origin != self.checkpoint.origin || body.size != self.checkpoint.size || body.root.as_slice() != root.as_slice() {
            return Err(WitnessProblem::OtherTreeHead);
        }
        match policy {
            Some(p) => p.check(&note).map_err(|e| WitnessProblem::Quorum(e.to_string())),
            None => Ok(note.signatures.iter().skip(1).map(|(name, _)| name.clone()).collect()),
        }
    }
}

/// Why a proof's witnessing does not satisfy a policy.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WitnessProblem {
    #[error("no witness cosigned this tree head")]
    NotCosigned,
    #[error("the cosigned checkpoint is unreadable: {0}")]
    Note(String),
    #[error("the cosigned checkpoint states another tree head than the signed one")]
    OtherTreeHead,
    #[error("{0}")]
    Quorum(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::SoftwareSigner;
    use proptest::prelude::*;

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(format!("entry {i}").as_bytes())).collect()
    }

    /// RFC 6962/9162 test vector: the root of the empty tree and of one leaf.
    #[test]
    fn known_roots() {
        assert_eq!(crate::hash::hex(&root(&[])), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        // The leaf hash of the empty string (from the CT test data).
        assert_eq!(crate::hash::hex(&leaf_hash(b"")), "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d");
        // Three leaves: ((0,1),2).
        let l = leaves(3);
        assert_eq!(root(&l), node_hash(&node_hash(&l[0], &l[1]), &l[2]));
    }

    #[test]
    fn every_leaf_of_every_small_tree_proves() {
        for n in 1..=40 {
            let l = leaves(n);
            let r = root(&l);
            for i in 0..n {
                let p = inclusion_proof(i as u64, &l).unwrap();
                verify_inclusion(i as u64, n as u64, &l[i], &p, &r).unwrap();
                // The proof of leaf i does not prove any other leaf.
                let other = leaf_hash(b"forged");
                assert_eq!(verify_inclusion(i as u64, n as u64, &other, &p, &r), Err(Error::BadProof));
                if n > 1 {
                    let j = (i + 1) % n;
                    assert!(verify_inclusion(j as u64, n as u64, &l[i], &p, &r).is_err(), "n={n} i={i}");
                }
            }
        }
    }

    #[test]
    fn checkpoints_are_signed() {
        let key = SoftwareSigner::generate().unwrap();
        let l = leaves(5);
        let cp = Checkpoint::sign("onsite/p1", 5, &root(&l), 1_795_000_000_000, &key).unwrap();
        assert_eq!(cp.verify(Some(&key.public_key())).unwrap(), root(&l));
        let mut forged = cp.clone();
        forged.size = 6;
        assert_eq!(forged.verify(None), Err(Error::BadSignature));
        let stranger = SoftwareSigner::generate().unwrap();
        assert_eq!(cp.verify(Some(&stranger.public_key())), Err(Error::BadSignature));
        let proof = InclusionProof {
            seq: 3,
            index: 2,
            path: inclusion_proof(2, &l).unwrap().iter().map(|h| crate::hash::hex(h)).collect(),
            checkpoint: cp,
            note: None,
        };
        // Leaves here are hashes of strings; a real leaf is the entry hash itself.
        assert!(proof.verify(&crate::hash::hex(&[7u8; 32]), None).is_err());
    }

    proptest! {
        #[test]
        fn proofs_verify_and_bind_size(n in 1usize..300, pick in any::<u64>()) {
            let l = leaves(n);
            let i = (pick % n as u64) as usize;
            let p = inclusion_proof(i as u64, &l).unwrap();
            prop_assert!(verify_inclusion(i as u64, n as u64, &l[i], &p, &root(&l)).is_ok());
            // A flipped proof hash never verifies.
            if !p.is_empty() {
                let mut bad = p.clone();
                bad[pick as usize % p.len()][0] ^= 1;
                prop_assert!(verify_inclusion(i as u64, n as u64, &l[i], &bad, &root(&l)).is_err());
            }
        }
    }
}
