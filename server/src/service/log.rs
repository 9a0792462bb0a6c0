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
        Self::fetching(storage, provider, plan.0)
    }

    /// A tree whose nodes `ids` are fetched now, in one storage call.
    pub(super) fn fetching(storage: &'a dyn Storage, provider: &'a str, mut ids: Vec<NodeId>) -> Result<Self> {
        ids.sort_unstable();
        ids.dedup();
        let hashes = if ids.is_empty() { Vec::new() } else { storage.log_nodes(provider, &ids)? };
        let known = ids.into_iter().zip(hashes).filter_map(|(id, h)| h.map(|h| (id, h))).collect();
        Ok(Self { storage, provider, known })
    }

    pub(super) fn subtree(&mut self, level: u8, index: u64) -> Result<Hash> {
        tree::subtree(self, level, index).map_err(tree_error)
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

/// Hashes per tile (C2SP tlog-tiles: tiles of height 8).
pub const TILE_WIDTH: u64 = 256;

/// A tile named by its path: level (`None` for an entry bundle), index, width (1..=256).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TileRef {
    pub level: Option<u8>,
    pub index: u64,
    pub width: u64,
}

/// Parses `<L>/<N>[.p/<W>]` or `entries/<N>[.p/<W>]`, with N written in groups of three
/// digits, every group but the last prefixed by `x` (c2sp.org/tlog-tiles).
pub fn parse_tile_path(path: &str) -> Option<TileRef> {
    let (head, rest) = path.split_once('/')?;
    let level = match head {
        "entries" => None,
        l if l == "0" || (!l.starts_with('0') && l.len() <= 2) => Some(l.parse::<u8>().ok().filter(|l| *l < 8)?),
        _ => return None,
    };
    let (n, width) = match rest.split_once(".p/") {
        Some((n, w)) if !w.starts_with('0') && w.len() <= 3 => (n, w.parse::<u64>().ok().filter(|w| (1..TILE_WIDTH).contains(w))?),
        Some(_) => return None,
        None => (rest, TILE_WIDTH),
    };
    let groups: Vec<&str> = n.split('/').collect();
    let (last, prefixed) = groups.split_last()?;
    let mut index: u64 = 0;
    for g in prefixed.iter().map(|g| g.strip_prefix('x')).chain(std::iter::once(Some(*last))) {
        let g = g.filter(|g| g.len() == 3 && g.bytes().all(|b| b.is_ascii_digit()))?;
        index = index.checked_mul(1000)?.checked_add(g.parse::<u64>().ok()?)?;
    }
    // The shortest form only: no leading all-zero groups.
    if prefixed.first().is_some_and(|g| *g == "x000") {
        return None;
    }
    Some(TileRef { level, index, width })
}

impl Service {
    fn note_signer(&self, provider: &str) -> Result<onsite_core::evidence::log::note::NoteSigner> {
        onsite_core::evidence::log::note::NoteSigner::from_seed(&Self::log_origin(provider), &self.note_seed).map_err(internal)
    }

    /// The verifier key of a provider's checkpoints (c2sp.org/signed-note).
    pub fn log_verifier_key(&self, provider: &str) -> Result<String> {
        Ok(self.note_signer(provider)?.verifier_key())
    }

    /// The latest checkpoint as a C2SP signed note.
    pub fn checkpoint_note(&self, provider: &str) -> Result<String> {
        self.signed_head(provider).map(|(_, _, note)| note)
    }

    /// The log's current size, its tree (the root's nodes fetched) and its signed note.
    fn signed_head<'a>(&'a self, provider: &'a str) -> Result<(u64, StoredTree<'a>, String)> {
        let size = self.storage.log_size(provider)?;
        let mut tree = StoredTree::prefetched(&*self.storage, provider, &[Query::Root(size)])?;
        let body = onsite_core::evidence::log::note::CheckpointBody { origin: Self::log_origin(provider), size, root: tree.root(size)? };
        Ok((size, tree, self.note_signer(provider)?.sign(&body.text())))
    }

    /// A tile's bytes: 32-byte hashes of tree level `8 * L`, or an entry bundle (each leaf's
    /// data, a journal entry hash, with a big-endian u16 length). `NotFound` past the log.
    pub fn tile(&self, provider: &str, t: TileRef) -> Result<Vec<u8>> {
        let size = self.storage.log_size(provider)?;
        let level = t.level.map_or(0, |l| 8 * l);
        let first = t.index.checked_mul(TILE_WIDTH).ok_or_else(|| Error::NotFound("no such tile".into()))?;
        // The tile's last hash covers leaves up to `end << level`: all must be in the log.
        let end = first + t.width;
        if (u128::from(end) << level) > u128::from(size) {
            return Err(Error::NotFound(format!("no such tile in a log of {size} leaves")));
        }
        if t.level.is_none() {
            let entries = self.storage.log_entries(provider, first, t.width)?;
            let mut out = Vec::with_capacity(entries.len() * 34);
            for e in entries {
                out.extend_from_slice(&(e.len() as u16).to_be_bytes());
                out.extend_from_slice(&e);
            }
            return Ok(out);
        }
        let mut tree = StoredTree::fetching(&*self.storage, provider, (first..end).map(|i| (level, i)).collect())?;
        let mut out = Vec::with_capacity(t.width as usize * 32);
        for i in first..end {
            // Stored by every append; computed from its children in a log not yet completed.
            out.extend_from_slice(&tree.subtree(level, i)?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tile_paths_parse_only_in_their_one_written_form() {
        let t = |level, index, width| Some(TileRef { level, index, width });
        assert_eq!(parse_tile_path("0/000"), t(Some(0), 0, 256));
        assert_eq!(parse_tile_path("1/x001/x234/067"), t(Some(1), 1_234_067, 256));
        assert_eq!(parse_tile_path("2/005.p/7"), t(Some(2), 5, 7));
        assert_eq!(parse_tile_path("entries/x001/000.p/255"), t(None, 1000, 255));
        for bad in [
            "",
            "0",
            "0/",
            "0/0",
            "0/0000",
            "0/x000/001",
            "0/001/002",
            "0/x1/002",
            "00/000",
            "8/000",
            "0/000.p/0",
            "0/000.p/256",
            "0/000.p/07",
            "0/000.p/",
            "data/000",
            "0/-01",
            "0/x18446744073709551/615",
        ] {
            assert_eq!(parse_tile_path(bad), None, "{bad}");
        }
    }
}

/// A witness the log submits its checkpoints to (`--witness URL=VKEY`).
#[derive(Debug, Clone)]
pub struct WitnessEndpoint {
    pub url: String,
    pub key: onsite_core::evidence::log::witness::Witness,
}

impl WitnessEndpoint {
    /// `URL=VKEY`, the witness's address and cosignature verifier key.
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        let (url, vkey) = s.split_once('=').ok_or("expected URL=VKEY")?;
        let key = onsite_core::evidence::log::witness::Witness::parse(vkey).map_err(|e| e.to_string())?;
        Ok(Self { url: url.trim_end_matches('/').to_string(), key })
    }
}

/// What the log knows of its witnesses: the size each last cosigned per provider, and the
/// latest cosigned checkpoint note per provider.
#[derive(Default)]
pub(super) struct Witnessing {
    pub endpoints: std::sync::RwLock<Vec<WitnessEndpoint>>,
    sizes: std::sync::Mutex<HashMap<(String, String), u64>>,
    cosigned: std::sync::Mutex<HashMap<String, (u64, String)>>,
}

impl Service {
    /// Adds a witness the log submits each new checkpoint to.
    pub fn add_witness(&self, w: WitnessEndpoint) {
        self.witnessing.endpoints.write().unwrap_or_else(|p| p.into_inner()).push(w);
    }

    /// Submits the provider's current checkpoint to every witness (c2sp.org/tlog-witness) and
    /// keeps it with the cosignatures that came back. A witness that is down or refuses is
    /// logged and skipped: the checkpoint is served with the cosignatures it got.
    pub(super) fn witness(&self, provider: &str) -> Result<Option<(u64, String)>> {
        let endpoints = self.witnessing.endpoints.read().unwrap_or_else(|p| p.into_inner()).clone();
        if endpoints.is_empty() {
            return Ok(None);
        }
        let (size, mut tree, note) = self.signed_head(provider)?;
        let mut cosigned = note.clone();
        for ep in &endpoints {
            let sizes_key = (provider.to_string(), ep.key.name.clone());
            let mut old = self.witnessing.sizes.lock().unwrap_or_else(|p| p.into_inner()).get(&sizes_key).copied().unwrap_or(0);
            for _attempt in 0..2 {
                let proof = if old == 0 || old >= size { Vec::new() } else { tree.consistency(old, size)? };
                let req = onsite_core::evidence::log::witness::AddCheckpoint { old, proof, checkpoint: note.clone() };
                match submit(&ep.url, &req.to_body()) {
                    Ok((200, line)) => {
                        let with = format!("{note}{line}");
                        match onsite_core::evidence::log::note::Note::parse(&with) {
                            Ok(n) if ep.key.cosigned(&n).is_some() => {
                                cosigned.push_str(&line);
                                self.witnessing.sizes.lock().unwrap_or_else(|p| p.into_inner()).insert(sizes_key.clone(), size);
                            }
                            _ => tracing::warn!(witness = %ep.key.name, "the witness's answer is not its cosignature"),
                        }
                        break;
                    }
                    // The witness holds another size: prove from that one.
                    Ok((409, text)) => match text.trim().parse::<u64>() {
                        Ok(held) if held != old && held <= size => old = held,
                        _ => {
                            tracing::warn!(witness = %ep.key.name, held = %text.trim(), size, "the witness refuses this checkpoint");
                            break;
                        }
                    },
                    Ok((status, text)) => {
                        tracing::warn!(witness = %ep.key.name, status, reason = %text.trim(), "the witness refused the checkpoint");
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(witness = %ep.key.name, error = %e, "the witness is unreachable");
                        break;
                    }
                }
            }
        }
        self.witnessing.cosigned.lock().unwrap_or_else(|p| p.into_inner()).insert(provider.to_string(), (size, cosigned.clone()));
        Ok(Some((size, cosigned)))
    }

    /// The latest checkpoint note with the witnesses' cosignatures (submitting it now when
    /// the log grew since), or signed by the log alone when no witness is configured.
    pub fn cosigned_checkpoint(&self, provider: &str) -> Result<String> {
        let size = self.storage.log_size(provider)?;
        if let Some((s, note)) = self.witnessing.cosigned.lock().unwrap_or_else(|p| p.into_inner()).get(provider) {
            if *s == size {
                return Ok(note.clone());
            }
        }
        match self.witness(provider)? {
            Some((_, note)) => Ok(note),
            None => self.checkpoint_note(provider),
        }
    }
}

fn submit(url: &str, body: &str) -> std::result::Result<(u16, String), String> {
    use onsite_core::sync::transport::{HttpTransport, Method, Request, Transport};
    let t = HttpTransport::new(url).map_err(|e| e.to_string())?;
    let r = t
        .send(&Request::new(Method::Post, "/add-checkpoint").header("content-type", "text/plain").body(body.as_bytes().to_vec()))
        .map_err(|e| e.to_string())?;
    Ok((r.status, String::from_utf8_lossy(&r.body).into_owned()))
}
