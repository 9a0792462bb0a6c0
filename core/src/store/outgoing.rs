//! What a push of an order carries: the changes the server lacks and the heads they lead to.
//!
//! The server acknowledged `synced_heads`; the store also remembers how far it has the
//! stored chunks (`sync_docs.pushed_seq`: the snapshot and every chunk up to it). While that
//! mark holds, the changes to send are exactly the chunks after it, sent as stored, with no
//! document loaded or re-encoded. The mark is forgotten whenever the snapshot is rewritten
//! (the chunks are renumbered), and `epoch` counts those rewrites, so a push read before one
//! cannot mark the chunks numbered after it. Without a mark the changes come from the
//! document (`save_after` the synced heads), as before. ADR 0016, seventh part.

use std::collections::HashSet;

use automerge::ChangeHash;
use rusqlite::{params, Connection, OptionalExtension};

use super::sync_store::{heads_from_bytes, heads_to_bytes};
use super::{Error, Store};

/// How far one read of an order's chunks went: the snapshot's epoch and the last chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PushMark {
    epoch: i64,
    seq: i64,
}

/// One order's push.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// Change chunks, concatenated (empty: the server has everything).
    pub changes: Vec<u8>,
    /// The document's heads once the server has `changes`.
    pub heads: Vec<ChangeHash>,
    /// What the server has of the stored chunks once it has `changes`.
    pub through: PushMark,
}

/// Forgets how far the server has the chunks of `id` (in the transaction that rewrites its
/// snapshot or forgets what the server has).
pub(crate) fn forget_push_mark(conn: &Connection, id: &str) -> rusqlite::Result<()> {
    conn.prepare_cached("UPDATE sync_docs SET pushed_seq = NULL, epoch = epoch + 1 WHERE order_id = ?1")?.execute([id])?;
    Ok(())
}

/// How far the server has the chunks of `id`, if known.
pub(crate) fn push_mark(conn: &Connection, id: &str) -> rusqlite::Result<Option<i64>> {
    Ok(conn.prepare_cached("SELECT pushed_seq FROM sync_docs WHERE order_id = ?1")?.query_row([id], |r| r.get(0)).optional()?.flatten())
}

/// Records that the server has the snapshot of `id` and its chunks up to `seq` (in the
/// transaction that stored them).
pub(crate) fn set_push_mark(conn: &Connection, id: &str, seq: i64) -> rusqlite::Result<()> {
    conn.prepare_cached("UPDATE sync_docs SET pushed_seq = ?2 WHERE order_id = ?1")?.execute(params![id, seq])?;
    Ok(())
}

impl Store {
    /// The changes of `id` not reachable from `synced` (all of them when `synced` is empty),
    /// and the document's heads, computed from the document.
    pub fn changes_since(&self, id: &str, synced: &[ChangeHash]) -> Result<(Vec<u8>, Vec<ChangeHash>), Error> {
        let (changes, heads, _) = self.document_changes(&self.reader(), id, synced)?;
        Ok((changes, heads))
    }

    /// [`Self::changes_since`] on `conn`, with the last chunk the document was loaded with.
    fn document_changes(&self, conn: &Connection, id: &str, synced: &[ChangeHash]) -> Result<(Vec<u8>, Vec<ChangeHash>, i64), Error> {
        let (mut doc, layout) = self.load_doc(conn, id)?;
        let changes = if synced.is_empty() { doc.save() } else { doc.save_after(synced) };
        Ok((changes, doc.get_heads(), layout.last_seq))
    }

    /// What the next push of `id` carries: the stored chunks after the mark when there is
    /// one, else the document's changes since the heads the server acknowledged.
    pub fn outgoing(&self, id: &str) -> Result<Outgoing, Error> {
        let conn = self.reader();
        // One read transaction: the mark, the heads and the chunks are of the same moment.
        let tx = conn.unchecked_transaction()?;
        let (synced, pushed, epoch): (Vec<u8>, Option<i64>, i64) = tx
            .prepare_cached("SELECT synced_heads, pushed_seq, epoch FROM sync_docs WHERE order_id = ?1")?
            .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?
            .unwrap_or((Vec::new(), None, 0));
        let synced = heads_from_bytes(&synced);
        if let (Some(from), false) = (pushed, synced.is_empty()) {
            if let Some(out) = chunks_after(&tx, id, PushMark { epoch, seq: from }, &synced)? {
                return Ok(out);
            }
        }
        let (changes, heads, seq) = self.document_changes(&tx, id, &synced)?;
        Ok(Outgoing { changes, heads, through: PushMark { epoch, seq } })
    }

    /// Records that the server has `heads` of `id`, and the chunks up to `through` unless
    /// the snapshot was rewritten since they were read; clears the dirty flag unless an edit
    /// happened since `gen` was read.
    pub fn mark_pushed(&self, id: &str, gen: i64, heads: &[ChangeHash], through: Option<PushMark>) -> Result<(), Error> {
        let w = self.writer();
        let (epoch, seq) = through.map_or((None, None), |t| (Some(t.epoch), Some(t.seq)));
        w.conn
            .prepare_cached(
                "UPDATE sync_docs SET synced_heads = ?2, dirty = CASE WHEN gen = ?3 THEN 0 ELSE dirty END, \
                 pushed_seq = CASE WHEN epoch IS ?4 THEN max(coalesce(pushed_seq, ?5), ?5) ELSE pushed_seq END \
                 WHERE order_id = ?1",
            )?
            .execute(params![id, heads_to_bytes(heads), gen, epoch, seq])?;
        Ok(())
    }
}

/// The chunks of `id` after the mark `from`, as one push; `None` when a chunk is not plain
/// changes (the document computes the push then).
fn chunks_after(conn: &Connection, id: &str, from: PushMark, synced: &[ChangeHash]) -> Result<Option<Outgoing>, Error> {
    let mut st = conn.prepare_cached("SELECT seq, bytes FROM order_changes WHERE order_id = ?1 AND seq > ?2 ORDER BY seq")?;
    let mut rows = st.query(params![id, from.seq])?;
    let (mut chunks, mut through) = (Vec::new(), from);
    while let Some(row) = rows.next()? {
        through.seq = row.get(0)?;
        chunks.push(row.get::<_, Vec<u8>>(1)?);
    }
    if chunks.is_empty() {
        return Ok(Some(Outgoing { changes: Vec::new(), heads: synced.to_vec(), through }));
    }
    let slices: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
    let Ok(links) = crate::order::document::change_links(&slices) else { return Ok(None) };
    // The server then has what it had and these: its heads are those no new change depends on.
    let deps: HashSet<ChangeHash> = links.iter().flat_map(|(_, deps)| deps.iter().copied()).collect();
    let mut heads: Vec<ChangeHash> = synced.iter().copied().chain(links.iter().map(|(hash, _)| *hash)).filter(|h| !deps.contains(h)).collect();
    heads.sort();
    heads.dedup();
    Ok(Some(Outgoing { changes: chunks.concat(), heads, through }))
}
