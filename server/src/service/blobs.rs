//! Resumable, content-addressed blob uploads and reads (per provider).

use onsite_core::hash::hex;
use onsite_core::hash::Sha256;
use onsite_core::sync::protocol;

use super::{internal, Error, Result, Service};
use crate::blobs::PutOutcome;

impl Service {
    pub fn blob_state(&self, provider: &str, sha: &str) -> Result<Option<(u64, u64)>> {
        check_sha(sha)?;
        if self.storage.has_blob(provider, sha)? {
            let size = self.blobs.size(provider, sha).map_err(internal)?.ok_or_else(|| internal("a recorded blob is missing from the object store"))?;
            return Ok(Some((size, size)));
        }
        match self.blobs.partial(provider, sha).map_err(internal)? {
            // Every byte is there but the upload was never finished: an instance died after
            // storing the last chunk (or the blob) and before recording it. The device sees
            // nothing left to send, so it is finished here, or the blob would stay unrecorded.
            Some((at, length)) if at == length => match self.blob_put(provider, sha, length, length, &[]) {
                Ok((_, true)) => Ok(Some((length, length))),
                // The bytes did not hash to the name (and were discarded): start again.
                Err(Error::Unprocessable(_)) => Ok(None),
                Ok(_) => self.blobs.partial(provider, sha).map_err(internal),
                Err(e) => Err(e),
            },
            other => Ok(other),
        }
    }

    pub fn blob_put(&self, provider: &str, sha: &str, offset: u64, length: u64, bytes: &[u8]) -> Result<(u64, bool)> {
        check_sha(sha)?;
        if length > protocol::MAX_BLOB || length == 0 {
            return Err(Error::BadRequest(format!("upload-length must be 1..={}", protocol::MAX_BLOB)));
        }
        if bytes.len() > protocol::MAX_BLOB_CHUNK {
            return Err(Error::BadRequest("chunk too large".into()));
        }
        if self.storage.has_blob(provider, sha)? {
            return Ok((length, false));
        }
        match self.blobs.put(provider, sha, offset, length, bytes).map_err(internal)? {
            PutOutcome::Partial(at) => Ok((at, false)),
            PutOutcome::LengthMismatch { declared, at } => Err(Error::Conflict {
                reason: format!("an upload of this blob with upload-length {declared} stands at {at}; finish it or wait for it to expire"),
                acked_seq: None,
                offset: Some(at),
            }),
            PutOutcome::Quota => Err(Error::TooMany("too many unfinished uploads; finish or let them expire (7 days)".into())),
            PutOutcome::Conflict(at) => Err(Error::Conflict { reason: format!("the upload stands at {at}"), acked_seq: None, offset: Some(at) }),
            PutOutcome::Mismatch => Err(Error::Unprocessable("the bytes do not hash to the blob's name; the upload was discarded".into())),
            PutOutcome::TooLong => Err(Error::BadRequest("the chunk runs past upload-length".into())),
            PutOutcome::Complete => {
                let new = self.storage.record_blob(provider, sha, length, self.now_ms())?;
                if new {
                    self.metrics.blobs_stored.inc();
                    self.metrics.blob_bytes.add(length);
                }
                Ok((length, true))
            }
        }
    }

    pub fn blob_bytes(&self, provider: &str, sha: &str) -> Result<Vec<u8>> {
        check_sha(sha)?;
        if !self.storage.has_blob(provider, sha)? {
            return Err(Error::NotFound("blob not found".into()));
        }
        let bytes = self.blobs.read(provider, sha).map_err(internal)?.ok_or_else(|| internal("a recorded blob is missing from the object store"))?;
        if hex(&Sha256::digest(&bytes)) != sha {
            return Err(Error::Internal("a stored blob no longer matches its hash".into()));
        }
        Ok(bytes)
    }
}

fn check_sha(sha: &str) -> Result<()> {
    if sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        Ok(())
    } else {
        Err(Error::BadRequest("a blob is named by its lowercase hex SHA-256".into()))
    }
}
