//! What the console shows of an order's evidence, from what devices uploaded: each photo's
//! journal record (EXIF capture time beside the time it was ingested, reuse on other
//! orders), and the signed receipts, re-verified with the signing device's key and rendered
//! as the customer copy (客户联).

use onsite_core::receipt::{self, html, SignedReceipt};
use serde::Deserialize;

use super::{internal, Error, Result, Service};

/// One photo as the device's journal recorded it.
#[derive(Debug, Clone, PartialEq)]
pub struct PhotoRecord {
    pub sha256: String,
    pub step: Option<String>,
    pub format: String,
    /// EXIF capture time as the camera wrote it (not trusted).
    pub captured_at: Option<String>,
    /// When the device ingested it (the journal entry's time).
    pub ingested_at_ms: i64,
    /// Other orders where a near-identical photo was seen (perceptual hash).
    pub reused_on: Vec<String>,
    pub thumb_sha256: Option<String>,
    /// What to show small: the thumbnail when the device uploaded it, else the photo.
    pub preview: String,
}

#[derive(Deserialize)]
struct Body {
    at_ms: i64,
    kind: String,
    payload: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct PhotoPayload {
    sha256: String,
    step: Option<String>,
    #[serde(default)]
    format: String,
    captured_at: Option<String>,
    #[serde(default)]
    reused_on: Vec<String>,
    thumb_sha256: Option<String>,
}

/// A receipt revision the console lists: verified against the device key it names.
#[derive(Debug, Clone)]
pub struct ReceiptView {
    pub revision: u32,
    pub sha256: String,
    pub device_id: String,
    pub decision: String,
    pub signer_name: String,
    /// `None` when it verified; else why not (shown, never hidden).
    pub problem: Option<String>,
}

impl Service {
    /// The order's photos from its journal entries (every device of the provider).
    pub fn photo_records(&self, provider: &str, order_id: &str) -> Result<Vec<PhotoRecord>> {
        let mut out = Vec::new();
        for e in self.storage.order_photo_entries(provider, order_id)? {
            // Entries were verified at upload; one that no longer parses is skipped, not guessed.
            let Ok(body) = serde_json::from_slice::<Body>(&e.body) else { continue };
            let Some(p) = body.payload.filter(|_| body.kind == "photo").and_then(|v| serde_json::from_value::<PhotoPayload>(v).ok()) else { continue };
            let preview = match &p.thumb_sha256 {
                Some(t) if self.storage.has_blob(provider, t)? => t.clone(),
                _ => p.sha256.clone(),
            };
            out.push(PhotoRecord {
                preview,
                sha256: p.sha256,
                step: p.step,
                format: p.format,
                captured_at: p.captured_at,
                ingested_at_ms: body.at_ms,
                reused_on: p.reused_on,
                thumb_sha256: p.thumb_sha256,
            });
        }
        Ok(out)
    }

    fn signed_receipts(&self, provider: &str, order_id: &str) -> Result<Vec<(String, SignedReceipt, Result<receipt::Receipt>)>> {
        let devices = self.storage.devices(provider)?;
        let mut out = Vec::new();
        for (device_id, row) in self.storage.receipts(provider, order_id)? {
            let strokes_sha256 = serde_json::from_slice::<receipt::SigningMessage>(&row.message).map_err(internal)?.strokes_sha256;
            let sr = SignedReceipt {
                order: row.order_id,
                revision: row.revision,
                canonical: row.canonical,
                receipt_sha256: row.sha256,
                strokes: row.strokes,
                strokes_sha256,
                message: row.message,
                signature: row.signature,
                journal_seq: row.journal_seq,
                signed_at_ms: 0,
            };
            let verified = match devices.iter().find(|d| d.id == device_id) {
                Some(d) => receipt::verify(&sr, &d.public_key).map_err(|p| Error::Unprocessable(format!("{}: {}", p.check, p.detail))),
                None => Err(Error::NotFound(format!("device {device_id}"))),
            };
            out.push((device_id, sr, verified));
        }
        Ok(out)
    }

    /// The order's receipt revisions, each verified again with its device's key.
    pub fn receipt_views(&self, provider: &str, order_id: &str) -> Result<Vec<ReceiptView>> {
        Ok(self
            .signed_receipts(provider, order_id)?
            .into_iter()
            .map(|(device_id, sr, verified)| {
                let (decision, signer_name) = match verified.as_ref().map(|r| &r.outcome) {
                    Ok(receipt::Outcome::Signed { signer_name, .. }) => ("signed".to_string(), signer_name.clone()),
                    Ok(receipt::Outcome::Refused { signer_name, .. }) => ("refused".to_string(), signer_name.clone()),
                    Err(_) => (String::new(), String::new()),
                };
                ReceiptView {
                    revision: sr.revision,
                    sha256: sr.receipt_sha256,
                    device_id,
                    decision,
                    signer_name,
                    problem: verified.err().map(|e| e.to_string()),
                }
            })
            .collect())
    }

    /// The customer copy of one receipt revision as the device would print it: a page of its
    /// own (inline styles, photos as data: URIs), rendered from the verified receipt only.
    pub fn customer_copy(&self, provider: &str, order_id: &str, revision: u32) -> Result<String> {
        let (_, sr, verified) = self
            .signed_receipts(provider, order_id)?
            .into_iter()
            .find(|(_, sr, _)| sr.revision == revision)
            .ok_or_else(|| Error::NotFound(format!("receipt r{revision} of `{order_id}`")))?;
        let r = verified?;
        let svg = match &sr.strokes {
            Some(b) => Some(onsite_core::signature::render_svg(&onsite_core::signature::decode(b).map_err(internal)?)),
            None => None,
        };
        let photos = self.photo_records(provider, order_id)?;
        let mut thumbs = Vec::new();
        for p in &r.photos {
            // The preview (thumbnail, or the photo when no thumbnail was uploaded); a photo not
            // uploaded yet is listed without a picture.
            let preview = photos.iter().find(|x| x.sha256 == p.sha256).map(|x| x.preview.clone());
            if let Some(bytes) = preview.and_then(|t| self.blob_bytes(provider, &t).ok()) {
                thumbs.push((p.sha256.clone(), p.step.clone(), bytes));
            }
        }
        let views: Vec<html::Thumb<'_>> = thumbs.iter().map(|(sha, step, jpeg)| html::Thumb { sha256: sha, step: step.as_deref(), jpeg }).collect();
        let tz = chrono::FixedOffset::east_opt(8 * 3600).ok_or_else(|| internal("UTC+8"))?;
        Ok(html::customer_copy(&r, &sr.receipt_sha256, svg.as_deref(), &views, tz))
    }
}
