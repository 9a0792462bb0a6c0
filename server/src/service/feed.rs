//! The sync request's checks and the feed answer: what `Service::sync` validates before it
//! applies anything, and the answer it computes inside one storage snapshot.

use onsite_core::order;
use onsite_core::sync::protocol::{self, DocPull, SyncRequest};

use super::{Error, Result};
use crate::storage::{self, DeviceRow};

/// Refuses a request before any of it is applied: every part must be acceptable first.
pub(crate) fn validate_request(req: &SyncRequest) -> Result<()> {
    if req.cursor > i64::MAX as u64 {
        return Err(Error::BadRequest(format!("cursor {} is beyond any feed position", req.cursor)));
    }
    if req.ticket_nonce.as_ref().is_some_and(|n| n.len() > 64 || n.is_empty()) {
        return Err(Error::BadRequest("ticket_nonce is 1-64 characters".into()));
    }
    if req.push.len() > protocol::MAX_PUSH_ORDERS || req.full.len() > protocol::MAX_PUSH_ORDERS {
        return Err(Error::BadRequest(format!("at most {} orders per request", protocol::MAX_PUSH_ORDERS)));
    }
    for id in req.push.iter().map(|p| &p.id).chain(&req.full) {
        order::import::validate_order_id(id).map_err(|_| Error::BadRequest(format!("`{}` is not an order id", id.chars().take(80).collect::<String>())))?;
    }
    Ok(())
}

/// The feed answer over one snapshot (see `Service::answer`).
/// What a sync answer carries from the feed.
pub(crate) struct FeedAnswer {
    /// The cursor to hand back: no change at or below it is left out of `docs`.
    pub cursor: u64,
    pub docs: Vec<DocPull>,
    /// Orders taken away from the engineer.
    pub removed: Vec<String>,
    /// More rows remain after `cursor` (the answer was cut at its size budget).
    pub more: bool,
}

pub(crate) fn answer(r: &dyn storage::FeedReader, device: &DeviceRow, req: &SyncRequest) -> storage::Result<FeedAnswer> {
    let upto = r.head()?;
    let rows = r.feed(&device.provider, &device.engineer_id, req.cursor, upto)?;
    // Orders in order of their first feed row after the cursor; asked-for whole ones first.
    let mut order_ids: Vec<(String, u64, bool)> = Vec::new();
    let mut want_full: Vec<&String> = Vec::new();
    for id in &req.full {
        if !want_full.contains(&id) {
            want_full.push(id);
            order_ids.push((id.clone(), req.cursor + 1, false));
        }
    }
    for f in &rows {
        let unassigned_from_me = f.kind == "unassign" && f.engineer_id.as_deref() == Some(device.engineer_id.as_str());
        match order_ids.iter_mut().find(|(id, _, _)| id == &f.order_id) {
            Some(e) => e.2 |= unassigned_from_me,
            None => order_ids.push((f.order_id.clone(), f.seq, unassigned_from_me)),
        }
    }
    let mut docs = Vec::new();
    let mut removed = Vec::new();
    let mut bytes = 0usize;
    let mut cursor = upto;
    let mut more = false;
    for (id, first_seq, unassigned) in order_ids {
        let Some(row) = r.order(&device.provider, &id)? else { continue };
        if row.engineer_id != device.engineer_id {
            if unassigned {
                removed.push(id);
            }
            continue;
        }
        if bytes >= protocol::RESPONSE_SOFT_LIMIT {
            more = true;
            cursor = first_seq.saturating_sub(1).max(req.cursor);
            break;
        }
        let whole = want_full.contains(&&id) || row.assigned_seq > req.cursor || row.compacted_seq > req.cursor;
        let chunks = if whole { r.document(&device.provider, &id)? } else { r.chunks_after(&device.provider, &id, req.cursor, upto, &device.id)? };
        let data: Vec<u8> = chunks.concat();
        if data.is_empty() {
            continue;
        }
        bytes += data.len();
        docs.push(DocPull { id, full: whole, bytes: data });
    }
    Ok(FeedAnswer { cursor, docs, removed, more })
}
