//! Journal uploads: rebuild compact entries from the server's copy, verify the chain, the
//! seals and sessions (every entry covered by a signature) and receipts, append to the provider's
//! Merkle log, return a signed checkpoint with inclusion proofs.

use onsite_core::evidence::journal::{self, Entry, ZERO_HASH};
use onsite_core::evidence::log::{self, Checkpoint, InclusionProof};
use onsite_core::hash::{hex, sha256_hex, unhex};
use onsite_core::sync::journal_wire;
use onsite_core::sync::protocol::{self, Consistency, JournalAck, JournalUpload};

use super::log::{Query, StoredTree};
use super::{internal, Error, Result, Service};
use crate::storage::{self, DeviceRow, JournalRow, ReceiptRow};

impl Service {
    pub fn journal(&self, device: &DeviceRow, upload: JournalUpload) -> Result<JournalAck> {
        self.heard_from(device);
        let known_size = upload.log_size;
        let mut whole: Vec<Entry> = upload.entries.into_iter().map(protocol::WireEntry::into_entry).collect();
        whole.sort_by_key(|e| e.seq);
        // Each entry with the body it was built from, where the server built it.
        let mut entries: Vec<(Entry, Option<journal::seal::Built>)> = whole.into_iter().map(|e| (e, None)).collect();
        if let Some(first) = upload.compact.first().map(|c| c.s) {
            // Compact entries follow the whole ones; the server fills in links from its copy.
            let prev = match entries.last() {
                Some((e, _)) if e.seq + 1 == first => e.hash.clone(),
                Some(_) => return Err(Error::Unprocessable("compact entries must continue the whole ones".into())),
                None => self.hash_before(device, first)?,
            };
            let whole: std::collections::HashMap<u64, String> = entries.iter().map(|(e, _)| (e.seq, e.hash.clone())).collect();
            let mut failure = None;
            let expanded = journal_wire::expand_built(&upload.compact, &device.id, &prev, |seq| match whole.get(&seq) {
                Some(h) => Some(h.clone()),
                None => self.storage.journal_hash(&device.id, seq).unwrap_or_else(|e| {
                    failure = Some(e);
                    None
                }),
            });
            if let Some(e) = failure {
                return Err(e.into());
            }
            entries.extend(expanded.map_err(|e| Error::Unprocessable(e.to_string()))?.into_iter().map(|(e, b)| (e, Some(b))));
        }
        // Entries the server already has must be the same entries (a retry or duplicate);
        // sessions among them, and those the upload names, must be logged.
        let mut fresh: Vec<Entry> = Vec::new();
        let mut built = Vec::new();
        let mut logged_sessions: Vec<Entry> = upload.sessions.into_iter().map(protocol::WireEntry::into_entry).collect();
        for s in &logged_sessions {
            if self.storage.journal_hash(&device.id, s.seq)?.as_deref() != Some(s.hash.as_str()) {
                return Err(Error::Unprocessable(format!("session entry {} is not the one in the log", s.seq)));
            }
        }
        for (e, b) in entries {
            if e.seq <= device.journal_seq {
                match self.storage.journal_hash(&device.id, e.seq)? {
                    Some(h) if h == e.hash => {
                        if e.body().is_ok_and(|b| b.is(journal::JournalKind::SessionOpen)) {
                            logged_sessions.push(e);
                        }
                        continue;
                    }
                    _ => {
                        return Err(Error::Conflict {
                            reason: format!("entry {} differs from the one already logged", e.seq),
                            acked_seq: Some(device.journal_seq),
                            offset: None,
                        })
                    }
                }
            }
            fresh.push(e);
            built.push(b);
        }
        let Some(first) = fresh.first() else {
            return Ok(JournalAck { acked_seq: device.journal_seq, checkpoint: None, proofs: Vec::new(), consistency: None });
        };
        if first.seq != device.journal_seq + 1 {
            return Err(Error::Conflict {
                reason: format!("expected entry {} next, got {}", device.journal_seq + 1, first.seq),
                acked_seq: Some(device.journal_seq),
                offset: None,
            });
        }
        let keys = journal::Keys::device(&device.public_key)
            .with_sessions(&logged_sessions, &device.id)
            .map_err(|p| Error::Unprocessable(format!("the sessions do not verify: {p:?}")))?;
        let prev = device.journal_head.clone().unwrap_or_else(|| ZERO_HASH.to_string());
        // Every entry must be covered by a signature: an unsealed tail is refused too.
        let (report, bodies) = journal::verify_keeping_bodies(&fresh, built, &keys, &device.id, Some(&prev));
        if let Some(p) = report.first_problem_sealed() {
            return Err(Error::Unprocessable(format!("the journal does not verify: {p:?}")));
        }
        if bodies.len() != fresh.len() {
            return Err(internal("the journal verified without a body for every entry"));
        }
        let mut rows = Vec::with_capacity(fresh.len());
        for (e, body) in fresh.iter().zip(bodies) {
            // The leaf input is the entry's hash; the tree stores its RFC 9162 leaf hash.
            let entry_hash = unhex(&e.hash).filter(|h| h.len() == 32).ok_or_else(|| Error::Unprocessable("entry hash".into()))?;
            let leaf = log::leaf_hash(&entry_hash);
            rows.push(JournalRow {
                seq: e.seq,
                order_id: body.order,
                kind: body.kind,
                body: e.body.clone(),
                hash: e.hash.clone(),
                signature: e.signature.clone(),
                leaf,
            });
        }
        let last_seq = fresh.last().map(|e| e.seq).unwrap_or(device.journal_seq);
        let mut receipts = Vec::new();
        for r in upload.receipts {
            let sr = onsite_core::receipt::SignedReceipt {
                order: r.order_id.clone(),
                revision: r.revision,
                receipt_sha256: sha256_hex(&r.canonical),
                strokes_sha256: r.strokes.as_deref().map(sha256_hex),
                canonical: r.canonical,
                strokes: r.strokes,
                message: r.message,
                signature: r.signature,
                journal_seq: r.journal_seq,
                signed_at_ms: 0,
            };
            onsite_core::receipt::verify(&sr, &device.public_key)
                .map_err(|p| Error::Unprocessable(format!("receipt of {}: {}: {}", r.order_id, p.check, p.detail)))?;
            let bound = rows.iter().any(|row| row.seq == r.journal_seq && row.kind == "receipt_signed" && row.order_id.as_deref() == Some(r.order_id.as_str()));
            if !bound && r.journal_seq > device.journal_seq {
                return Err(Error::Unprocessable(format!("receipt of {} is not signed by a journal entry of this upload", r.order_id)));
            }
            receipts.push(ReceiptRow {
                order_id: sr.order,
                revision: sr.revision,
                sha256: sr.receipt_sha256,
                canonical: sr.canonical,
                strokes: sr.strokes,
                message: sr.message,
                signature: sr.signature,
                journal_seq: sr.journal_seq,
            });
        }
        let indices = self.storage.append_journal(device, &rows, &receipts).map_err(|e| match e {
            storage::Error::Conflict(reason) => Error::Conflict { reason, acked_seq: Some(device.journal_seq), offset: None },
            other => other.into(),
        })?;
        self.metrics.journal_entries.add(rows.len() as u64);
        // Witnesses cosign the new tree head (one that is down does not fail the upload);
        // the checkpoint and proofs are of that head, so a proof carries its cosignatures.
        let witnessed = self.witness(&device.provider).unwrap_or_else(|e| {
            tracing::warn!(provider = %device.provider, error = %e, "witnessing the checkpoint failed");
            None
        });
        let size = match &witnessed {
            Some((size, _)) => *size,
            None => self.storage.log_size(&device.provider)?,
        };
        let note = witnessed.map(|(_, note)| note);
        let proved: Vec<(u64, u64)> =
            rows.iter().zip(&indices).filter(|(row, _)| row.kind == "receipt_signed" || row.seq == last_seq).map(|(row, idx)| (row.seq, *idx)).collect();
        let mut queries = vec![Query::Root(size)];
        queries.extend(proved.iter().map(|(_, index)| Query::Inclusion { index: *index, size }));
        // The device proves the new head consistent with the last one it saw (ADR 0020).
        let from = known_size.filter(|m| *m > 0 && *m <= size);
        queries.extend(from.map(|m| Query::Consistency { from: m, to: size }));
        let mut tree = StoredTree::prefetched(&*self.storage, &device.provider, &queries)?;
        let checkpoint = Checkpoint::sign(&Self::log_origin(&device.provider), size, &tree.root(size)?, self.now_ms(), &self.log_key).map_err(internal)?;
        let mut proofs = Vec::new();
        for (seq, index) in proved {
            let path = tree.inclusion(index, size)?;
            proofs.push(InclusionProof { seq, index, path: path.iter().map(|h| hex(h)).collect(), checkpoint: checkpoint.clone(), note: note.clone() });
        }
        let consistency = match from {
            Some(m) => Some(Consistency { from: m, to: size, path: tree.consistency(m, size)?.iter().map(|h| hex(h)).collect() }),
            None => None,
        };
        Ok(JournalAck { acked_seq: last_seq, checkpoint: Some(checkpoint), proofs, consistency })
    }

    /// The hash of the device's entry before `seq` as the server holds it.
    fn hash_before(&self, device: &DeviceRow, seq: u64) -> Result<String> {
        if seq <= 1 {
            return Ok(ZERO_HASH.to_string());
        }
        if seq == device.journal_seq + 1 {
            return Ok(device.journal_head.clone().unwrap_or_else(|| ZERO_HASH.to_string()));
        }
        match self.storage.journal_hash(&device.id, seq - 1)? {
            Some(h) => Ok(h),
            None => Err(Error::Conflict {
                reason: format!("expected entry {} next, got {seq}", device.journal_seq + 1),
                acked_seq: Some(device.journal_seq),
                offset: None,
            }),
        }
    }
}
