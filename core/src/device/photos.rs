//! Photo evidence: streaming ingest into the blob store, analysis, reuse check, the record
//! and its journal entry in one transaction; blob reads.

use super::Device;
use crate::cancel::Cancel;
use crate::changes::ChangeOrigin;
use crate::evidence::journal::{Draft, JournalKind};
use crate::evidence::photo::{self, PhotoRecord, ReuseHit};
use crate::evidence::EvidenceError;
use crate::order::GpsFix;
use crate::Result;

/// Where a photo comes from.
pub enum PhotoSource<'a> {
    Path(&'a std::path::Path),
    Bytes(&'a [u8]),
}

/// What ingest found, in one value for the capture screen.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct IngestReport {
    pub sha256: String,
    pub size: u64,
    /// False when these bytes were already stored (on this or another order).
    pub new_blob: bool,
    pub analysis: photo::Analysis,
    pub thumb_sha256: Option<String>,
    /// The same or a near-identical photo already used as evidence on other orders.
    pub reused_on: Vec<ReuseHit>,
    pub journal_seq: u64,
}

/// Hamming distance at or below which two photos count as the same picture.
pub const NEAR_DUPLICATE_BITS: u32 = 6;

/// Reuse hits named in a photo's journal entry (the total is always recorded).
pub const REUSE_HITS_JOURNALED: usize = 8;

impl Device {
    /// Stores a photo as evidence for an order (optionally a checklist step): one streaming
    /// pass hashes and stores it, then analysis (EXIF, thumbnail, perceptual hash), a reuse
    /// check against other orders, and a journal entry in the same transaction as the record.
    pub fn ingest_photo(&self, order_id: &str, step: Option<&str>, source: PhotoSource<'_>, fix: Option<GpsFix>) -> Result<IngestReport> {
        self.ingest_photo_cancellable(order_id, step, source, fix, &Cancel::new())
    }

    /// [`Device::ingest_photo`] that stops (with `Error::Cancelled`) when `cancel` fires
    /// before the photo is recorded. The stored blob may stay (content-addressed, harmless);
    /// no record or journal entry is written. Once recorded, a cancel changes nothing.
    pub fn ingest_photo_cancellable(
        &self,
        order_id: &str,
        step: Option<&str>,
        source: PhotoSource<'_>,
        fix: Option<GpsFix>,
        cancel: &Cancel,
    ) -> Result<IngestReport> {
        // The order must exist before anything is stored for it.
        self.store.get(order_id)?;
        cancel.check()?;
        let fix = self.fix_or_current(fix)?;
        let stored = match source {
            PhotoSource::Path(p) => {
                let f = std::fs::File::open(p).map_err(EvidenceError::from)?;
                self.blobs.put(std::io::BufReader::with_capacity(256 * 1024, f))
            }
            PhotoSource::Bytes(b) => self.blobs.put_bytes(b),
        }
        .map_err(EvidenceError::from)?;
        let decoder = self.image_decoder.read().unwrap_or_else(|p| p.into_inner()).clone();
        let input = StoredPhoto {
            device: self,
            sha256: &stored.sha256,
            source: match source {
                PhotoSource::Path(p) => Some(p),
                PhotoSource::Bytes(_) => None,
            },
        };
        let mut analysis = photo::analyze_with(&input, &self.photo_limits, decoder.as_deref()).map_err(EvidenceError::from)?;
        let thumb = match analysis.thumbnail.take() {
            Some(t) => Some(self.blobs.put_bytes(&t).map_err(EvidenceError::from)?),
            None => None,
        };
        let reused_on = self.store.find_reuse(order_id, &stored.sha256, analysis.phash, NEAR_DUPLICATE_BITS)?;
        cancel.check()?;
        let stamp = self.stamp();
        let row = PhotoRecord {
            order_id: order_id.to_string(),
            sha256: stored.sha256.clone(),
            step: step.map(str::to_string),
            phash: analysis.phash,
            format: analysis.format.as_str().to_string(),
            width: analysis.width,
            height: analysis.height,
            size: stored.size,
            exif: serde_json::to_value(&analysis.exif)
                .map_err(|e| crate::evidence::journal::Error::Payload { kind: JournalKind::Photo.as_str(), reason: e.to_string() })
                .map_err(crate::store::Error::from)?,
            thumb_sha256: thumb.as_ref().map(|t| t.sha256.clone()),
            problems: analysis.problems.clone(),
            ingested_at: stamp.at_ms,
            journal_seq: 0,
        };
        let draft = Draft::new(
            JournalKind::Photo,
            Some(order_id),
            serde_json::json!({
                "sha256": &stored.sha256,
                "size": stored.size,
                "phash": analysis.phash.map(|p| format!("{p:016x}")),
                "step": step,
                "format": &row.format,
                "captured_at": &analysis.exif.captured_at,
                "thumb_sha256": &row.thumb_sha256,
                // At most a few hits inline: the entry's payload must stay small enough to be
                // kept in the body (a verifier reads `sha256` and `step` from it).
                "reused_on": &reused_on[..reused_on.len().min(REUSE_HITS_JOURNALED)],
                "reused_total": reused_on.len(),
            }),
        )
        .with_fix(fix);
        let mut vouched = vec![(stored.sha256.as_str(), stored.size)];
        if let Some(t) = &thumb {
            vouched.push((t.sha256.as_str(), t.size));
        }
        let journal_seq = self.store.record_photo(&row, stamp, &draft, &vouched)?;
        self.changed(order_id, ChangeOrigin::Local);
        if !reused_on.is_empty() {
            tracing::warn!(order = order_id, photo = %stored.sha256, hits = reused_on.len(), "photo already used on another order");
        }
        Ok(IngestReport { sha256: stored.sha256, size: stored.size, new_blob: stored.new, analysis, thumb_sha256: row.thumb_sha256, reused_on, journal_seq })
    }

    pub fn photos(&self, order_id: &str) -> Result<Vec<PhotoRecord>> {
        Ok(self.store.photos(order_id)?)
    }

    /// A stored blob's bytes; re-hashed first unless the database vouches for it.
    pub fn blob(&self, sha256: &str) -> Result<Vec<u8>> {
        if !self.store.blob_vouched(sha256)? {
            self.blobs.verify(sha256).map_err(EvidenceError::from)?;
        }
        Ok(self.blobs.read(sha256).map_err(EvidenceError::from)?)
    }

    /// Re-hashes a stored blob (for audits and after a crash).
    pub fn verify_blob(&self, sha256: &str) -> Result<u64> {
        Ok(self.blobs.verify(sha256).map_err(EvidenceError::from)?)
    }

    /// Where a blob's file is (encrypted on a device store: read it with `open_blob`).
    pub fn blob_path(&self, sha256: &str) -> std::path::PathBuf {
        self.blobs.path(sha256)
    }

    /// A stored blob's bytes as a stream (decrypted as read; seekable, for ranged uploads).
    pub fn open_blob(&self, sha256: &str) -> Result<Box<dyn crate::evidence::blob::BlobRead>> {
        Ok(self.blobs.open_blob(sha256).map_err(EvidenceError::from)?)
    }
}

/// The photo just stored, read back from the blob store for analysis (what is analysed is
/// what was hashed). The platform decoder reads a path: the app's own file when the photo
/// came from one, else a temp copy, removed when analysis ends.
struct StoredPhoto<'a> {
    device: &'a Device,
    sha256: &'a str,
    source: Option<&'a std::path::Path>,
}

impl photo::PhotoInput for StoredPhoto<'_> {
    fn open(&self) -> std::io::Result<Box<dyn crate::evidence::blob::BlobRead>> {
        self.device.blobs.open_blob(self.sha256).map_err(std::io::Error::other)
    }

    fn plain_file(&self) -> std::io::Result<photo::PlainFile> {
        if let Some(p) = self.source {
            return Ok(photo::PlainFile { path: p.to_path_buf(), temporary: false });
        }
        if !self.device.blobs.is_encrypted() {
            return Ok(photo::PlainFile { path: self.device.blobs.path(self.sha256), temporary: false });
        }
        let copy = photo::PlainFile { path: self.device.blobs.scratch_path(), temporary: true };
        let mut out = std::fs::File::create(&copy.path)?;
        std::io::copy(&mut self.open()?, &mut out)?;
        Ok(copy)
    }
}
