//! The provider's evidence log in SQLite: leaves (level 0) in `log_leaves`, the complete
//! subtrees above them in `log_nodes` (`onsite_core::evidence::log::tree`).

use onsite_core::evidence::log::tree::{self, NodeId};
use onsite_core::evidence::log::Hash;
use rusqlite::{params, Connection, OptionalExtension};

use crate::storage::{Error, Result};

/// Reads nodes of one provider's tree through a connection (or a transaction).
pub(super) struct Nodes<'a> {
    pub conn: &'a Connection,
    pub provider: &'a str,
}

fn hash(v: Vec<u8>) -> Result<Hash> {
    v.try_into().map_err(|_| Error::Corrupt("a log hash is not 32 bytes".into()))
}

impl tree::Nodes for Nodes<'_> {
    type Error = Error;

    fn node(&mut self, level: u8, index: u64) -> Result<Option<Hash>> {
        let idx = i64::try_from(index).map_err(|_| Error::Corrupt("log index out of range".into()))?;
        let found: Option<Vec<u8>> = if level == 0 {
            self.conn
                .prepare_cached("SELECT leaf FROM log_leaves WHERE provider = ?1 AND idx = ?2")?
                .query_row(params![self.provider, idx], |r| r.get(0))
                .optional()?
        } else {
            self.conn
                .prepare_cached("SELECT hash FROM log_nodes WHERE provider = ?1 AND level = ?2 AND idx = ?3")?
                .query_row(params![self.provider, level, idx], |r| r.get(0))
                .optional()?
        };
        found.map(hash).transpose()
    }
}

/// Writes the nodes above level 0 that an append completed (leaves are written with their
/// journal rows).
pub(super) fn write_nodes(tx: &Connection, provider: &str, nodes: &[(NodeId, Hash)]) -> Result<()> {
    let mut st = tx.prepare_cached("INSERT INTO log_nodes (provider, level, idx, hash) VALUES (?1, ?2, ?3, ?4)")?;
    for ((level, idx), h) in nodes.iter().filter(|((level, _), _)| *level > 0) {
        st.execute(params![provider, level, *idx as i64, h.as_slice()])?;
    }
    Ok(())
}

/// The number of leaves in a provider's log.
pub(super) fn size(c: &Connection, provider: &str) -> Result<u64> {
    let n: i64 = c.query_row("SELECT coalesce(max(idx) + 1, 0) FROM log_leaves WHERE provider = ?1", [provider], |r| r.get(0))?;
    Ok(n as u64)
}

/// Stored nodes by id (None: not stored).
pub(super) fn nodes(c: &Connection, provider: &str, ids: &[NodeId]) -> Result<Vec<Option<Hash>>> {
    let mut n = Nodes { conn: c, provider };
    ids.iter().map(|(level, idx)| tree::Nodes::node(&mut n, *level, *idx)).collect()
}

/// Leaf data (journal entry hashes, bytes) of `[start, start + count)`.
pub(super) fn entries(c: &Connection, provider: &str, start: u64, count: u64) -> Result<Vec<Vec<u8>>> {
    let (start, end) = (start.min(i64::MAX as u64) as i64, start.saturating_add(count).min(i64::MAX as u64) as i64);
    let mut st = c.prepare_cached(
        "SELECT j.hash FROM log_leaves l JOIN journal j ON j.device_id = l.device_id AND j.seq = l.seq \
         WHERE l.provider = ?1 AND l.idx >= ?2 AND l.idx < ?3 ORDER BY l.idx",
    )?;
    let rows = st.query_map(params![provider, start, end], |r| r.get::<_, String>(0))?;
    let mut out = Vec::new();
    for r in rows {
        out.push(onsite_core::hash::unhex(&r?).ok_or_else(|| Error::Corrupt("a journal hash is not hex".into()))?);
    }
    Ok(out)
}
