//! The provider's evidence log in PostgreSQL: leaves (level 0) in `log_leaves`, the complete
//! subtrees above them in `log_nodes` (`onsite_core::evidence::log::tree`).

use onsite_core::evidence::log::tree::{self, NodeId};
use onsite_core::evidence::log::Hash;
use postgres::GenericClient;

use crate::storage::{Error, Result};

/// Reads nodes of one provider's tree through a client (or a transaction).
pub(super) struct Nodes<'a, C: GenericClient> {
    pub client: &'a mut C,
    pub provider: &'a str,
}

fn hash(v: Vec<u8>) -> Result<Hash> {
    v.try_into().map_err(|_| Error::Corrupt("a log hash is not 32 bytes".into()))
}

fn index(i: u64) -> Result<i64> {
    i64::try_from(i).map_err(|_| Error::Corrupt("log index out of range".into()))
}

impl<C: GenericClient> tree::Nodes for Nodes<'_, C> {
    type Error = Error;

    fn node(&mut self, level: u8, idx: u64) -> Result<Option<Hash>> {
        let i = index(idx)?;
        let row = if level == 0 {
            self.client.query_opt("SELECT leaf FROM log_leaves WHERE provider = $1 AND idx = $2", &[&self.provider, &i])?
        } else {
            self.client.query_opt("SELECT hash FROM log_nodes WHERE provider = $1 AND level = $2 AND idx = $3", &[&self.provider, &i32::from(level), &i])?
        };
        row.map(|r| r.try_get::<_, Vec<u8>>(0).map_err(Error::from).and_then(hash)).transpose()
    }
}

/// Writes the nodes above level 0 that an append completed, in one statement.
pub(super) fn write_nodes(tx: &mut impl GenericClient, provider: &str, nodes: &[(NodeId, Hash)]) -> Result<()> {
    let above: Vec<&(NodeId, Hash)> = nodes.iter().filter(|((level, _), _)| *level > 0).collect();
    if above.is_empty() {
        return Ok(());
    }
    let levels: Vec<i32> = above.iter().map(|((l, _), _)| i32::from(*l)).collect();
    let idxs: Vec<i64> = above.iter().map(|((_, i), _)| index(*i)).collect::<Result<_>>()?;
    let hashes: Vec<&[u8]> = above.iter().map(|(_, h)| h.as_slice()).collect();
    tx.execute(
        "INSERT INTO log_nodes (provider, level, idx, hash) SELECT $1, * FROM unnest($2::int[], $3::bigint[], $4::bytea[])",
        &[&provider, &levels, &idxs, &hashes],
    )?;
    Ok(())
}

/// The number of leaves in a provider's log.
pub(super) fn size(c: &mut impl GenericClient, provider: &str) -> Result<u64> {
    let n: i64 = c.query_one("SELECT coalesce(max(idx) + 1, 0) FROM log_leaves WHERE provider = $1", &[&provider])?.try_get(0)?;
    Ok(n as u64)
}

/// Stored nodes by id (None: not stored), in two statements.
pub(super) fn nodes(c: &mut impl GenericClient, provider: &str, ids: &[NodeId]) -> Result<Vec<Option<Hash>>> {
    let mut found = std::collections::HashMap::new();
    let leaves: Vec<i64> = ids.iter().filter(|(l, _)| *l == 0).map(|(_, i)| index(*i)).collect::<Result<_>>()?;
    if !leaves.is_empty() {
        for r in c.query("SELECT idx, leaf FROM log_leaves WHERE provider = $1 AND idx = ANY($2)", &[&provider, &leaves])? {
            found.insert((0u8, r.try_get::<_, i64>(0)? as u64), hash(r.try_get(1)?)?);
        }
    }
    let above: Vec<&NodeId> = ids.iter().filter(|(l, _)| *l > 0).collect();
    if !above.is_empty() {
        let levels: Vec<i32> = above.iter().map(|(l, _)| i32::from(*l)).collect();
        let idxs: Vec<i64> = above.iter().map(|(_, i)| index(*i)).collect::<Result<_>>()?;
        let rows = c.query(
            "SELECT n.level, n.idx, n.hash FROM unnest($2::int[], $3::bigint[]) AS q(level, idx) \
             JOIN log_nodes n ON n.provider = $1 AND n.level = q.level AND n.idx = q.idx",
            &[&provider, &levels, &idxs],
        )?;
        for r in rows {
            let level = u8::try_from(r.try_get::<_, i32>(0)?).map_err(|_| Error::Corrupt("log level out of range".into()))?;
            found.insert((level, r.try_get::<_, i64>(1)? as u64), hash(r.try_get(2)?)?);
        }
    }
    Ok(ids.iter().map(|id| found.get(id).copied()).collect())
}

/// Leaf data (journal entry hashes, bytes) of `[start, start + count)`.
pub(super) fn entries(c: &mut impl GenericClient, provider: &str, start: u64, count: u64) -> Result<Vec<Vec<u8>>> {
    let (start, end) = (start.min(i64::MAX as u64) as i64, start.saturating_add(count).min(i64::MAX as u64) as i64);
    let rows = c.query(
        "SELECT j.hash FROM log_leaves l JOIN journal j ON j.device_id = l.device_id AND j.seq = l.seq \
         WHERE l.provider = $1 AND l.idx >= $2 AND l.idx < $3 ORDER BY l.idx",
        &[&provider, &start, &end],
    )?;
    rows.iter()
        .map(|r| {
            let h: String = r.try_get(0)?;
            onsite_core::hash::unhex(&h).ok_or_else(|| Error::Corrupt("a journal hash is not hex".into()))
        })
        .collect()
}
