//! The orders a sync pass pushes, read in request-sized batches: each edited order's
//! changes the server lacks (`store::outgoing`), and the heads they lead to.

use automerge::ChangeHash;

use crate::device::Device;
use crate::store::outgoing::PushMark;
use crate::store::sync_store::PendingDoc;
use crate::sync::protocol::DocPush;
use crate::Result;

/// Orders' changes per sync request (bytes, before compression).
const PUSH_BATCH_BYTES: usize = 8 * 1024 * 1024;

/// One request's orders: what goes up, and each order with the heads it leads to.
pub(super) type Batch = (Vec<DocPush>, Vec<(PendingDoc, Vec<ChangeHash>, PushMark)>);

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
        let out = d.store.outgoing(&p.id)?;
        if out.changes.is_empty() {
            // The server acknowledged every change (`synced_heads` covers the document);
            // the flag clears unless an edit came after this read.
            d.store.mark_pushed(&p.id, p.gen, &out.heads, Some(out.through))?;
            continue;
        }
        size += out.changes.len();
        push.push(DocPush { id: p.id.clone(), changes: out.changes });
        pushed.push((p, out.heads, out.through));
    }
    Ok((push, pushed))
}
