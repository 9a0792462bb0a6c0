//! Evidence records, the device-key foreign trait, and conversions.

use std::sync::Arc;

use onsite_core::evidence;

use crate::ApiError;

/// The device key, implemented by the app with a hardware-backed P-256 key (Android
/// StrongBox/Keystore, iOS Secure Enclave). `sign` returns an ES256 signature over SHA-256 of
/// `message`, DER or raw 64-byte `r || s`. It may be slow (a secure element): the core calls
/// it only to open a journal session, to countersign consents (on a worker thread), and for
/// receipts, bundles and records (docs/adr/0017), never on an ordinary edit.
#[uniffi::export(with_foreign)]
pub trait DeviceSigner: Send + Sync {
    /// SEC1 uncompressed public key (65 bytes).
    fn public_key(&self) -> Vec<u8>;
    fn sign(&self, message: Vec<u8>) -> Result<Vec<u8>, ApiError>;
}

/// Adapts the app's signer to the core's trait; a failing callback becomes a signing error.
pub(crate) struct ForeignSigner(pub Arc<dyn DeviceSigner>);

impl evidence::Signer for ForeignSigner {
    fn public_key(&self) -> Vec<u8> {
        self.0.public_key()
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, evidence::signer::Error> {
        self.0.sign(message.to_vec()).map_err(|e| evidence::signer::Error::Signing(e.to_string()))
    }
}

/// A photo the platform decoded: the original size, and RGB pixels (3 bytes each, orientation
/// applied) at a reduced size whose long edge is about the `max_edge` asked for.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct DecodedImage {
    pub width: u32,
    pub height: u32,
    pub small_width: u32,
    pub small_height: u32,
    pub rgb: Vec<u8>,
}

/// The platform's codecs for photo formats the core does not decode (`format`: `heic`,
/// `avif`, `unknown`): ImageIO (`CGImageSourceCreateThumbnailAtIndex` with the transform) on
/// iOS, `ImageDecoder`/`BitmapFactory` on Android. Return `null` when the platform cannot
/// decode it either. The core hashes the original bytes itself and checks what comes back.
#[uniffi::export(with_foreign)]
pub trait ImageDecoder: Send + Sync {
    fn decode(&self, path: String, format: String, max_edge: u32) -> Result<Option<DecodedImage>, ApiError>;
}

pub(crate) struct ForeignDecoder(pub Arc<dyn ImageDecoder>);

impl evidence::photo::PlatformDecoder for ForeignDecoder {
    fn decode(&self, path: &std::path::Path, format: evidence::photo::Format, max_edge: u32) -> Result<Option<evidence::photo::Decoded>, String> {
        let got = self
            .0
            .decode(path.to_string_lossy().into_owned(), format.as_str().to_string(), max_edge)
            .map_err(|e| format!("the platform's decoder failed: {e}"))?;
        Ok(got.map(|d| evidence::photo::Decoded { width: d.width, height: d.height, small_width: d.small_width, small_height: d.small_height, rgb: d.rgb }))
    }
}

/// A P-256 key held in software: what desktop tools use as the device key, and what tests
/// wrap in their own `DeviceSigner` (a slow or failing secure element) where the platform has
/// no P-256 of its own (Swift on Linux).
#[derive(uniffi::Object)]
pub struct SoftwareKey(evidence::SoftwareSigner);

#[uniffi::export]
impl SoftwareKey {
    #[uniffi::constructor]
    pub fn generate() -> Result<Arc<Self>, ApiError> {
        Ok(Arc::new(Self(evidence::SoftwareSigner::generate().map_err(|e| ApiError::Internal { reason: e.to_string() })?)))
    }

    /// SEC1 uncompressed public key (65 bytes).
    pub fn public_key(&self) -> Vec<u8> {
        evidence::Signer::public_key(&self.0)
    }

    /// ES256 over `message`, raw 64-byte `r || s`.
    pub fn sign(&self, message: Vec<u8>) -> Result<Vec<u8>, ApiError> {
        evidence::Signer::sign(&self.0, &message).map_err(|e| ApiError::Internal { reason: e.to_string() })
    }
}

#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct ExifSummary {
    pub captured_at: Option<String>,
    pub offset: Option<String>,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub make: Option<String>,
    pub model: Option<String>,
    pub orientation: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct PhotoReuse {
    pub order_id: String,
    pub sha256: String,
    pub distance: u32,
}

#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct IngestReport {
    pub sha256: String,
    pub size: u64,
    pub new_blob: bool,
    /// jpeg | png | webp | tiff | heic | avif | unknown
    pub format: String,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub exif: ExifSummary,
    pub thumb_sha256: Option<String>,
    pub thumb_width: u32,
    pub thumb_height: u32,
    /// 64-bit perceptual hash, hex.
    pub phash: Option<String>,
    /// The same or a near-identical photo already used as evidence on other orders.
    pub reused_on: Vec<PhotoReuse>,
    /// Why something is missing (e.g. "no thumbnail: unsupported format (HEIC) without the
    /// platform's decoder").
    pub problems: Vec<String>,
    pub journal_seq: u64,
}

impl From<onsite_core::device::IngestReport> for IngestReport {
    fn from(r: onsite_core::device::IngestReport) -> Self {
        let a = r.analysis;
        Self {
            sha256: r.sha256,
            size: r.size,
            new_blob: r.new_blob,
            format: a.format.as_str().to_string(),
            width: a.width,
            height: a.height,
            exif: ExifSummary {
                captured_at: a.exif.captured_at,
                offset: a.exif.offset,
                lat: a.exif.lat,
                lon: a.exif.lon,
                make: a.exif.make,
                model: a.exif.model,
                orientation: a.exif.orientation,
            },
            thumb_sha256: r.thumb_sha256,
            thumb_width: a.thumb_width,
            thumb_height: a.thumb_height,
            phash: a.phash.map(|p| format!("{p:016x}")),
            reused_on: r.reused_on.into_iter().map(|h| PhotoReuse { order_id: h.order_id, sha256: h.sha256, distance: h.distance }).collect(),
            problems: a.problems,
            journal_seq: r.journal_seq,
        }
    }
}

#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct JournalEntry {
    pub seq: u64,
    pub kind: String,
    pub order_id: Option<String>,
    pub at_ms: i64,
    pub monotonic_ms: u64,
    pub hash: String,
    pub payload_sha256: String,
    /// The canonical body exactly as hashed and signed (JSON).
    pub body: Vec<u8>,
    pub signature: Vec<u8>,
}

impl TryFrom<evidence::Entry> for JournalEntry {
    type Error = ApiError;
    fn try_from(e: evidence::Entry) -> Result<Self, ApiError> {
        let b = e.body().map_err(|err| ApiError::Internal { reason: err.to_string() })?;
        Ok(Self {
            seq: e.seq,
            kind: b.kind,
            order_id: b.order,
            at_ms: b.at_ms,
            monotonic_ms: b.mono_ms,
            hash: e.hash,
            payload_sha256: b.payload_sha256,
            body: e.body,
            signature: e.signature,
        })
    }
}

#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct JournalReport {
    pub entries: u64,
    pub ok: bool,
    /// Empty when `ok`; else the first problem, e.g. "bad signature at 12".
    pub problem: Option<String>,
    /// The first entry no seal covers yet (sealed at the next photo, consent, receipt, sync,
    /// export or app start); none when everything is sealed.
    pub unsealed_from: Option<u64>,
    /// Entries (consents) the device key countersigned.
    pub countersigned: u64,
}

impl From<evidence::journal::Report> for JournalReport {
    fn from(r: evidence::journal::Report) -> Self {
        Self {
            entries: r.entries as u64,
            ok: r.ok(),
            problem: r.first_problem.map(|p| serde_json::to_string(&p).unwrap_or_else(|_| format!("{p:?}"))),
            unsealed_from: r.unsealed_from,
            countersigned: r.countersigned.len() as u64,
        }
    }
}

/// A photo recorded for an order, as the detail screen lists it.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct PhotoInfo {
    pub sha256: String,
    pub step: Option<String>,
    pub format: String,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub size: u64,
    pub thumb_sha256: Option<String>,
    /// EXIF capture time as written by the camera (local time, no zone), if any.
    pub captured_at: Option<String>,
    pub ingested_at: std::time::SystemTime,
    pub problems: Vec<String>,
    pub journal_seq: u64,
}

impl From<onsite_core::evidence::photo::PhotoRecord> for PhotoInfo {
    fn from(r: onsite_core::evidence::photo::PhotoRecord) -> Self {
        Self {
            captured_at: r.exif.get("captured_at").and_then(|v| v.as_str()).map(String::from),
            sha256: r.sha256,
            step: r.step,
            format: r.format,
            width: r.width,
            height: r.height,
            size: r.size,
            thumb_sha256: r.thumb_sha256,
            ingested_at: crate::orders::to_time(onsite_core::order::Timestamp(r.ingested_at)),
            problems: r.problems,
            journal_seq: r.journal_seq,
        }
    }
}

/// Photos and the operation log.
#[derive(uniffi::Object)]
pub struct EvidenceApi {
    pub(crate) device: crate::onsite::Handle,
}

#[uniffi::export]
impl EvidenceApi {
    /// Stores a photo file as evidence for an order (optionally a checklist step): hash,
    /// EXIF, thumbnail, reuse check and journal entry. Runs off the caller's thread;
    /// cancelling before the photo is recorded leaves no record.
    #[uniffi::method(default(cancel_token = None))]
    pub async fn ingest_file(
        &self,
        order_id: String,
        step_id: Option<String>,
        path: String,
        fix: Option<crate::orders::GpsFix>,
        cancel_token: Option<Arc<crate::task::CancelToken>>,
    ) -> Result<IngestReport, ApiError> {
        let device = self.device.get()?;
        let fix = fix.map(TryInto::try_into).transpose()?;
        crate::task::blocking("ingest", cancel_token, move |cancel| {
            let source = onsite_core::device::PhotoSource::Path(std::path::Path::new(&path));
            Ok(device.ingest_photo_cancellable(&order_id, step_id.as_deref(), source, fix, cancel)?.into())
        })
        .await
    }

    /// Stores photo bytes (a camera capture) as evidence; see `ingest_file`.
    #[uniffi::method(default(cancel_token = None))]
    pub async fn ingest_bytes(
        &self,
        order_id: String,
        step_id: Option<String>,
        bytes: Vec<u8>,
        fix: Option<crate::orders::GpsFix>,
        cancel_token: Option<Arc<crate::task::CancelToken>>,
    ) -> Result<IngestReport, ApiError> {
        let device = self.device.get()?;
        let fix = fix.map(TryInto::try_into).transpose()?;
        crate::task::blocking("ingest", cancel_token, move |cancel| {
            let source = onsite_core::device::PhotoSource::Bytes(&bytes);
            Ok(device.ingest_photo_cancellable(&order_id, step_id.as_deref(), source, fix, cancel)?.into())
        })
        .await
    }

    /// The photos recorded for an order, oldest first.
    pub fn photos(&self, order_id: String) -> Result<Vec<PhotoInfo>, ApiError> {
        Ok(self.device.get()?.photos(&order_id)?.into_iter().map(Into::into).collect())
    }

    /// A stored blob (photo or thumbnail) by SHA-256, re-hashed on read.
    pub fn blob(&self, sha256: String) -> Result<Vec<u8>, ApiError> {
        Ok(self.device.get()?.blob(&sha256)?)
    }

    /// The operation log, all of it or one order's.
    pub fn journal(&self, order_id: Option<String>) -> Result<Vec<JournalEntry>, ApiError> {
        self.device.get()?.journal(order_id.as_deref())?.into_iter().map(TryInto::try_into).collect()
    }

    /// Verifies the whole journal: hash chain, signatures, no gaps, what is not sealed yet.
    pub fn verify_journal(&self) -> Result<JournalReport, ApiError> {
        Ok(self.device.get()?.verify_journal()?.into())
    }

    /// Waits for pending countersignatures, then seals everything written so far with the
    /// session key (a sync and an export do this themselves). Returns the seals written.
    pub async fn seal_journal(&self) -> Result<u32, ApiError> {
        let device = self.device.get()?;
        crate::task::blocking("seal", None, move |_| Ok(device.seal_journal("app")? as u32)).await
    }
}
