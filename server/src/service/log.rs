//! The provider's evidence log as the service serves it: checkpoints, inclusion and
//! consistency proofs, all computed from the stored tree nodes (O(log n) reads; ADR 0020).

use std::collections::HashMap;

use onsite_core::evidence::log::tree::{self, NodeId};
use onsite_core::evidence::log::{Checkpoint, Hash};

use super::{internal, Error, Result, Service};
use crate::storage::{self, Storage};

/// What is computed from a tree: the nodes these read are fetched in one storage call.
#[derive(Debug, Clone, Copy)]
pub(super) enum Query {
    Root(u64),
    Inclusion { index: u64, size: u64 },
    Consistency { from: u64, to: u64 },
}

/// A provider's tree read through storage, each node fetched once.
pub(super) struct StoredTree<'a> {
    storage: &'a dyn Storage,
    provider: &'a str,
    known: HashMap<NodeId, Hash>,
}

impl tree::Nodes for StoredTree<'_> {
    type Error = storage::Error;

    fn node(&mut self, level: u8, index: u64) -> storage::Result<Option<Hash>> {
        if let Some(h) = self.known.get(&(level, index)) {
            return Ok(Some(*h));
        }
        let found = self.storage.log_nodes(self.provider, &[(level, index)])?.pop().flatten();
        if let Some(h) = found {
            self.known.insert((level, index), h);
        }
        Ok(found)
    }
}

/// Records which nodes a computation reads (answering zeros).
#[derive(Default)]
struct Plan(Vec<NodeId>);

impl tree::Nodes for Plan {
    type Error = std::convert::Infallible;

    fn node(&mut self, level: u8, index: u64) -> std::result::Result<Option<Hash>, Self::Error> {
        self.0.push((level, index));
        Ok(Some([0; 32]))
    }
}

fn tree_error(e: tree::Error<storage::Error>) -> Error {
    match e {
        tree::Error::Range { .. } => Error::BadRequest(e.to_string()),
        other => storage::log_error(other).into(),
    }
}

impl<'a> StoredTree<'a> {
    /// A tree whose nodes for `queries` are fetched now, in one storage call.
    pub(super) fn prefetched(storage: &'a dyn Storage, provider: &'a str, queries: &[Query]) -> Result<Self> {
        let mut plan = Plan::default();
        for q in queries {
            // The plan answers every node, so only a range error can come back: the real
            // computation reports it.
            let _ = match *q {
                Query::Root(size) => tree::root(&mut plan, size).map(|_| ()),
                Query::Inclusion { index, size } => tree::inclusion_proof(&mut plan, index, size).map(|_| ()),
                Query::Consistency { from, to } => tree::consistency_proof(&mut plan, from, to).map(|_| ()),
            };
        }
        plan.0.sort_unstable();
        plan.0.dedup();
        let hashes = storage.log_nodes(provider, &plan.0)?;
        let known = plan.0.into_iter().zip(hashes).filter_map(|(id, h)| h.map(|h| (id, h))).collect();
        Ok(Self { storage, provider, known })
    }

    pub(super) fn root(&mut self, size: u64) -> Result<Hash> {
        tree::root(self, size).map_err(tree_error)
    }

    pub(super) fn inclusion(&mut self, index: u64, size: u64) -> Result<Vec<Hash>> {
        tree::inclusion_proof(self, index, size).map_err(tree_error)
    }

    pub(super) fn consistency(&mut self, from: u64, to: u64) -> Result<Vec<Hash>> {
        tree::consistency_proof(self, from, to).map_err(tree_error)
    }
}

/// A consistency proof between two sizes of a provider's log (RFC 9162 2.1.4).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ConsistencyProof {
    pub from: u64,
    pub to: u64,
    /// Hex hashes.
    pub path: Vec<String>,
}

impl Service {
    pub(super) fn log_origin(provider: &str) -> String {
        format!("onsite/{provider}")
    }

    /// The latest checkpoint of a provider's log.
    pub fn checkpoint(&self, provider: &str) -> Result<Checkpoint> {
        let size = self.storage.log_size(provider)?;
        let root = StoredTree::prefetched(&*self.storage, provider, &[Query::Root(size)])?.root(size)?;
        Checkpoint::sign(&Self::log_origin(provider), size, &root, self.now_ms(), &self.log_key).map_err(internal)
    }

    /// Proves that the log's first `from` leaves are a prefix of its first `to` (`to`:
    /// the current size when `None`).
    pub fn consistency(&self, provider: &str, from: u64, to: Option<u64>) -> Result<ConsistencyProof> {
        let size = self.storage.log_size(provider)?;
        let to = to.unwrap_or(size);
        if to > size || from == 0 || from > to {
            return Err(Error::BadRequest(format!("no consistency proof from {from} to {to} in a log of {size} leaves")));
        }
        let q = Query::Consistency { from, to };
        let path = StoredTree::prefetched(&*self.storage, provider, &[q])?.consistency(from, to)?;
        Ok(ConsistencyProof { from, to, path: path.iter().map(|h| onsite_core::hash::hex(h)).collect() })
    }
}
