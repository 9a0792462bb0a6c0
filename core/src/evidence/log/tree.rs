//! The log's Merkle tree kept incrementally: every complete subtree's hash is stored once, as
//! node `(level, index)` (the `2^level` leaves from `index * 2^level`; level 0 is the leaf
//! hashes). An append stores the nodes the new leaves complete, reading only their left
//! siblings; the root, inclusion and consistency proofs of any size read O(log n) nodes. The
//! same nodes at levels 0, 8, 16, ... are the hashes C2SP tlog-tiles serve.
//!
//! Storage stays outside: the functions here take a [`Nodes`] reader (a database transaction,
//! or memory in tests), and return what to write. A node a reader lacks (a log that predates
//! node storage) is computed from its children, so older logs keep working.

use super::{node_hash, Hash};
use crate::hash::Sha256;

/// Node `(level, index)` of the tree.
pub type NodeId = (u8, u64);

/// Reads stored nodes. `Ok(None)`: not stored (computed from its children instead; a missing
/// leaf is an error of the caller's).
pub trait Nodes {
    type Error;
    fn node(&mut self, level: u8, index: u64) -> Result<Option<Hash>, Self::Error>;
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error<E> {
    #[error("leaf {0} is missing from the log")]
    MissingLeaf(u64),
    #[error("{what}: {m} and {n} do not fit a tree of {size} leaves")]
    Range { what: &'static str, m: u64, n: u64, size: u64 },
    #[error(transparent)]
    Store(E),
}

fn get<N: Nodes>(nodes: &mut N, level: u8, index: u64) -> Result<Hash, Error<N::Error>> {
    if let Some(h) = nodes.node(level, index).map_err(Error::Store)? {
        return Ok(h);
    }
    if level == 0 {
        return Err(Error::MissingLeaf(index));
    }
    let left = get(nodes, level - 1, 2 * index)?;
    let right = get(nodes, level - 1, 2 * index + 1)?;
    Ok(node_hash(&left, &right))
}

/// The largest power of two strictly below `n` (n >= 2).
fn split(n: u64) -> u64 {
    1 << (63 - (n - 1).leading_zeros())
}

/// MTH of the leaves `[start, end)`, from the stored complete subtrees it is made of.
fn range_hash<N: Nodes>(nodes: &mut N, start: u64, end: u64) -> Result<Hash, Error<N::Error>> {
    let n = end - start;
    if n == 0 {
        return Ok(Sha256::digest([]));
    }
    if n.is_power_of_two() && start.is_multiple_of(n) {
        return get(nodes, n.trailing_zeros() as u8, start / n);
    }
    let k = split(n);
    let left = range_hash(nodes, start, start + k)?;
    let right = range_hash(nodes, start + k, end)?;
    Ok(node_hash(&left, &right))
}

/// The complete subtrees the first `size` leaves split into, largest first (the tree's
/// right edge): every other complete subtree lies inside one of them.
fn frontier(size: u64) -> impl Iterator<Item = NodeId> {
    let mut start = 0u64;
    (0..64u8).rev().filter(move |l| size >> l & 1 == 1).map(move |l| {
        let id = (l, start >> l);
        start += 1 << l;
        id
    })
}

/// A node, computed when it is not stored; every node computed on the way is pushed to
/// `out` so it is stored too.
fn repair<N: Nodes>(nodes: &mut N, level: u8, index: u64, out: &mut Vec<(NodeId, Hash)>) -> Result<Hash, Error<N::Error>> {
    if let Some(h) = nodes.node(level, index).map_err(Error::Store)? {
        return Ok(h);
    }
    if level == 0 {
        return Err(Error::MissingLeaf(index));
    }
    let left = repair(nodes, level - 1, 2 * index, out)?;
    let right = repair(nodes, level - 1, 2 * index + 1, out)?;
    let h = node_hash(&left, &right);
    out.push(((level, index), h));
    Ok(h)
}

/// The nodes that appending `leaves` (leaf hashes) to a tree of `size` leaves adds, leaves
/// included, in the order to write them. A tree from before node storage is completed by
/// its first append: its largest subtree missing means none was stored, and every complete
/// subtree of the old tree is computed once and returned with the new nodes.
pub fn append<N: Nodes>(nodes: &mut N, size: u64, leaves: &[Hash]) -> Result<Vec<(NodeId, Hash)>, Error<N::Error>> {
    let mut out: Vec<(NodeId, Hash)> = Vec::with_capacity(leaves.len() * 2);
    if let Some((level, index)) = frontier(size).next().filter(|(level, _)| *level > 0) {
        if nodes.node(level, index).map_err(Error::Store)?.is_none() {
            for (level, index) in frontier(size) {
                repair(nodes, level, index, &mut out)?;
            }
        }
    }
    for (i, leaf) in (size..).zip(leaves) {
        out.push(((0, i), *leaf));
        // Leaf i completes the subtree of level l above it while bit l-1 of i is set.
        let (mut level, mut index, mut hash) = (0u8, i, *leaf);
        while index & 1 == 1 {
            let sibling = match out.iter().rev().find(|(id, _)| *id == (level, index - 1)) {
                Some((_, h)) => *h,
                None => repair(nodes, level, index - 1, &mut out)?,
            };
            hash = node_hash(&sibling, &hash);
            level += 1;
            index >>= 1;
            out.push(((level, index), hash));
        }
    }
    Ok(out)
}

/// Node `(level, index)`: the hash of the `2^level` leaves from `index * 2^level`.
pub fn subtree<N: Nodes>(nodes: &mut N, level: u8, index: u64) -> Result<Hash, Error<N::Error>> {
    get(nodes, level, index)
}

/// The root of the tree's first `size` leaves.
pub fn root<N: Nodes>(nodes: &mut N, size: u64) -> Result<Hash, Error<N::Error>> {
    range_hash(nodes, 0, size)
}

/// PATH(m, D[n]) of RFC 9162 2.1.3.1: the audit path of leaf `index` in the tree of `size`.
pub fn inclusion_proof<N: Nodes>(nodes: &mut N, index: u64, size: u64) -> Result<Vec<Hash>, Error<N::Error>> {
    if index >= size {
        return Err(Error::Range { what: "inclusion", m: index, n: size, size });
    }
    let mut out = Vec::new();
    path(nodes, index, 0, size, &mut out)?;
    Ok(out)
}

fn path<N: Nodes>(nodes: &mut N, m: u64, start: u64, end: u64, out: &mut Vec<Hash>) -> Result<(), Error<N::Error>> {
    let n = end - start;
    if n <= 1 {
        return Ok(());
    }
    let k = split(n);
    if m < k {
        path(nodes, m, start, start + k, out)?;
        out.push(range_hash(nodes, start + k, end)?);
    } else {
        path(nodes, m - k, start + k, end, out)?;
        out.push(range_hash(nodes, start, start + k)?);
    }
    Ok(())
}

/// PROOF(m, D[n]) of RFC 9162 2.1.4.1: that the tree of `m` leaves is a prefix of the tree
/// of `n` (0 < m <= n; empty when m == n).
pub fn consistency_proof<N: Nodes>(nodes: &mut N, m: u64, n: u64) -> Result<Vec<Hash>, Error<N::Error>> {
    if m == 0 || m > n {
        return Err(Error::Range { what: "consistency", m, n, size: n });
    }
    let mut out = Vec::new();
    subproof(nodes, m, 0, n, true, &mut out)?;
    Ok(out)
}

fn subproof<N: Nodes>(nodes: &mut N, m: u64, start: u64, end: u64, whole: bool, out: &mut Vec<Hash>) -> Result<(), Error<N::Error>> {
    let n = end - start;
    if m == n {
        if !whole {
            out.push(range_hash(nodes, start, end)?);
        }
        return Ok(());
    }
    let k = split(n);
    if m <= k {
        subproof(nodes, m, start, start + k, whole, out)?;
        out.push(range_hash(nodes, start + k, end)?);
    } else {
        subproof(nodes, m - k, start + k, end, false, out)?;
        out.push(range_hash(nodes, start, start + k)?);
    }
    Ok(())
}

/// Verifies PROOF(m, D[n]) against both roots (RFC 9162 2.1.4.2).
pub fn verify_consistency(m: u64, n: u64, old_root: &Hash, new_root: &Hash, proof: &[Hash]) -> Result<(), super::Error> {
    if m == 0 || m > n {
        return Err(super::Error::OutOfRange { index: m, size: n });
    }
    if m == n {
        return if proof.is_empty() && old_root == new_root { Ok(()) } else { Err(super::Error::BadProof) };
    }
    let mut proof = proof.to_vec();
    if m.is_power_of_two() {
        proof.insert(0, *old_root);
    }
    let (mut fnode, mut snode) = (m - 1, n - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let Some((first, rest)) = proof.split_first() else { return Err(super::Error::BadProof) };
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if snode == 0 {
            return Err(super::Error::BadProof);
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode == 0 && &fr == old_root && &sr == new_root {
        Ok(())
    } else {
        Err(super::Error::BadProof)
    }
}

/// Nodes in memory (tests, benchmarks, tools).
#[derive(Default)]
pub struct MemoryNodes(pub std::collections::HashMap<NodeId, Hash>);

impl Nodes for MemoryNodes {
    type Error = std::convert::Infallible;
    fn node(&mut self, level: u8, index: u64) -> Result<Option<Hash>, Self::Error> {
        Ok(self.0.get(&(level, index)).copied())
    }
}

impl MemoryNodes {
    /// Appends leaf hashes to a tree of `size`, storing what [`append`] returns; the new size.
    pub fn push(&mut self, size: u64, leaves: &[Hash]) -> Result<u64, Error<std::convert::Infallible>> {
        let new = append(self, size, leaves)?;
        self.0.extend(new);
        Ok(size + leaves.len() as u64)
    }
}

#[cfg(test)]
mod tests;
