//! The orders a sync pass pushes, read in request-sized batches: each edited order's
//! changes since the heads the server last acknowledged, and the heads they lead to.

use automerge::ChangeHash;

use crate::device::Device;
use crate::store::sync_store::PendingDoc;
use crate::sync::protocol::DocPush;
use crate::Result;

/// Orders' changes per sync request (bytes, before compression).
const PUSH_BATCH_BYTES: usize = 8 * 1024 * 1024;

/// One request's orders: what goes up, and each order with the heads it leads to.
pub(super) type Batch = (Vec<DocPush>, Vec<(PendingDoc, Vec<ChangeHash>)>);

/// The changes of the next orders of `queue`, up to a request's worth.
///
/// An order can be pending with nothing to send: edited after its `gen` was read but before
/// its changes were, its edit went with the last push while the flag stayed set. It is
/// settled here, not pushed: an empty push is no change, and servers before this one refused
/// it as invalid, which took the order out of sync for good.
pub(super) fn read(d: &Device, queue: &mut impl Iterator<Item = PendingDoc>) -> Result<Batch> {
    let (mut push, mut pushed, mut size) = (Vec::new(), Vec::new(), 0);
    while size < PUSH_BATCH_BYTES {
        let Some(p) = queue.next() else { break };
        let (changes, heads) = d.store.changes_since(&p.id, &p.synced_heads)?;
        if changes.is_empty() {
            // The server acknowledged every change (`synced_heads` covers the document);
            // the flag clears unless an edit came after this read.
            d.store.mark_pushed(&p.id, p.gen, &p.synced_heads)?;
            continue;
        }
        size += changes.len();
        push.push(DocPush { id: p.id.clone(), changes });
        pushed.push((p, heads));
    }
    Ok((push, pushed))
}
