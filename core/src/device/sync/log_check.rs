//! Every checkpoint the server hands this device must extend the last one it saw (ADR 0020):
//! the device keeps that checkpoint, and asks for an RFC 9162 consistency proof from it to
//! each newer one. A checkpoint that is not signed by the pinned log key, is smaller, has
//! another root at the same size, or whose proof does not verify stops the sync
//! ([`SyncError::LogFork`]) and is kept, with the one seen before, as evidence.

use crate::evidence::log::{tree, Checkpoint, Hash};
use crate::store::{MetaKey, Store};

use super::SyncError;

#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct ForkEvidence {
    pub seen: Checkpoint,
    pub offered: Checkpoint,
    /// The consistency proof the server gave (hex), if it gave one.
    pub proof: Vec<String>,
    pub reason: String,
}

fn fork(store: &Store, seen: &Checkpoint, offered: &Checkpoint, proof: &[Hash], reason: String) -> crate::Result<()> {
    let evidence =
        ForkEvidence { seen: seen.clone(), offered: offered.clone(), proof: proof.iter().map(|h| crate::hash::hex(h)).collect(), reason: reason.clone() };
    let json = serde_json::to_string(&evidence).map_err(|e| SyncError::Protocol(e.to_string()))?;
    // The first fork is the evidence; a later one does not overwrite it.
    if store.meta(MetaKey::LogFork)?.is_none() {
        store.set_meta(MetaKey::LogFork, &json)?;
    }
    Err(SyncError::LogFork(reason).into())
}

/// A log this device caught forking is not synced with again (until the device is enrolled
/// with another log): every sync stops at once with the reason kept in the evidence.
pub(crate) fn refuse_a_forked_log(store: &Store) -> crate::Result<()> {
    let Some(json) = store.meta(MetaKey::LogFork)? else { return Ok(()) };
    let evidence: ForkEvidence = serde_json::from_str(&json).map_err(|e| SyncError::Protocol(format!("the fork evidence: {e}")))?;
    let pinned = store.meta(MetaKey::SyncLogKey)?;
    if pinned.as_deref() == Some(evidence.seen.log_key.as_str()) {
        return Err(SyncError::LogFork(format!("{} (caught before; this device no longer syncs with that log)", evidence.reason)).into());
    }
    Ok(())
}

/// The size of the last checkpoint seen, if any.
pub(crate) fn seen_size(store: &Store) -> crate::Result<Option<u64>> {
    match store.meta(MetaKey::LogCheckpoint)? {
        Some(json) => {
            let seen: Checkpoint = serde_json::from_str(&json).map_err(|e| SyncError::Protocol(format!("the stored checkpoint: {e}")))?;
            Ok(Some(seen.size))
        }
        None => Ok(None),
    }
}

/// Checks `offered` against the last checkpoint seen, fetching a consistency proof with
/// `prove(from, to)`; on success it becomes the last checkpoint seen.
pub(crate) fn accept(
    store: &Store,
    log_key: Option<&[u8]>,
    offered: &Checkpoint,
    prove: impl FnOnce(u64, u64) -> crate::Result<Vec<Hash>>,
) -> crate::Result<()> {
    let new_root = offered.verify(log_key).map_err(|e| SyncError::LogFork(format!("a checkpoint of size {}: {e}", offered.size)))?;
    let seen: Option<Checkpoint> = match store.meta(MetaKey::LogCheckpoint)? {
        Some(json) => Some(serde_json::from_str(&json).map_err(|e| SyncError::Protocol(format!("the stored checkpoint: {e}")))?),
        None => None,
    };
    if let Some(seen) = &seen {
        let old_root = seen.verify(None).map_err(|e| SyncError::Protocol(format!("the stored checkpoint: {e}")))?;
        if seen.origin != offered.origin {
            return fork(store, seen, offered, &[], format!("the log `{}` became `{}`", seen.origin, offered.origin));
        }
        if offered.size < seen.size {
            return fork(store, seen, offered, &[], format!("the log shrank from {} to {} entries", seen.size, offered.size));
        }
        if offered.size == seen.size {
            if old_root != new_root {
                return fork(store, seen, offered, &[], format!("two different logs of {} entries", seen.size));
            }
        } else if seen.size > 0 {
            let proof = prove(seen.size, offered.size)?;
            if tree::verify_consistency(seen.size, offered.size, &old_root, &new_root, &proof).is_err() {
                let reason = format!(
                    "the {} entries seen before are not a prefix of the {} offered (the server's consistency proof does not hold)",
                    seen.size, offered.size
                );
                return fork(store, seen, offered, &proof, reason);
            }
        }
    }
    let json = serde_json::to_string(offered).map_err(|e| SyncError::Protocol(e.to_string()))?;
    store.set_meta(MetaKey::LogCheckpoint, &json)?;
    Ok(())
}
