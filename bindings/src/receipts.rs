//! Receipts and arbitration bundles at the boundary: records in, records out.

use std::time::SystemTime;

use onsite_core::{bundle, receipt};

use crate::orders::to_time;
use crate::signature::{strokes_in, Stroke};
use crate::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum ChargeBasis {
    /// Covered by the warranty: shown, not payable.
    Warranty,
    /// Paid service (有偿服务).
    Paid,
}

#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ChargeLine {
    pub description: String,
    /// Minor units (分 for CNY).
    pub amount_cents: i64,
    pub basis: ChargeBasis,
}

#[derive(Debug, Clone, PartialEq, uniffi::Enum)]
pub enum CustomerDecision {
    /// The customer signed on the device's pad.
    Signed { strokes: Vec<Stroke> },
    /// The customer refused to sign, with the reason they gave.
    Refused { reason: String },
}

/// What the engineer and the customer supply for the receipt; the rest comes from the order.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct ReceiptRequest {
    pub diagnosis: String,
    pub work_done: String,
    pub charges: Vec<ChargeLine>,
    pub currency: String,
    /// 1..5, or none when the customer declines to rate.
    pub rating: Option<u8>,
    pub rating_comment: String,
    pub signer_name: String,
    pub decision: CustomerDecision,
    /// Required when correcting an already signed receipt (a new revision).
    pub correction_reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct SignedReceiptInfo {
    pub order_id: String,
    pub revision: u32,
    pub receipt_sha256: String,
    pub strokes_sha256: Option<String>,
    /// `signed` or `refused`.
    pub decision: String,
    pub signed_at: SystemTime,
    pub journal_seq: u64,
    /// The receipt's canonical JSON (RFC 8785), exactly as signed.
    pub canonical_json: String,
    /// ES256 over the signing message, r || s.
    pub signature: Vec<u8>,
    pub supersedes_sha256: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct BundleExport {
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
    pub members: u32,
    pub receipts: u32,
    pub photos: u32,
    pub journal_entries: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct BundleCheck {
    pub check: String,
    pub subject: String,
    pub passed: bool,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct BundleReport {
    /// True only when every check passed.
    pub ok: bool,
    pub order_id: Option<String>,
    pub revision: Option<u32>,
    pub decision: Option<String>,
    pub signer_name: Option<String>,
    pub checks: Vec<BundleCheck>,
    /// The report for people (who, what, where, when, each check).
    pub text: String,
    /// The same report as JSON, for machines.
    pub json: String,
}

impl From<bundle::Report> for BundleReport {
    fn from(r: bundle::Report) -> Self {
        let s = r.summary.as_ref();
        Self {
            ok: r.ok,
            order_id: s.map(|s| s.order.clone()),
            revision: s.map(|s| s.revision),
            decision: s.map(|s| s.decision.clone()),
            signer_name: s.map(|s| s.signer_name.clone()),
            checks: r
                .checks
                .iter()
                .map(|c| BundleCheck { check: c.check.clone(), subject: c.subject.clone(), passed: c.passed, detail: c.detail.clone() })
                .collect(),
            text: r.render_text(),
            // The report is plain data; serializing it fails only when memory does.
            json: serde_json::to_string(&r).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}")),
        }
    }
}

impl From<ReceiptRequest> for receipt::ReceiptInput {
    fn from(r: ReceiptRequest) -> Self {
        Self {
            diagnosis: r.diagnosis,
            work_done: r.work_done,
            charges: r
                .charges
                .into_iter()
                .map(|c| receipt::ChargeLine {
                    description: c.description,
                    amount_cents: c.amount_cents,
                    basis: match c.basis {
                        ChargeBasis::Warranty => receipt::ChargeBasis::Warranty,
                        ChargeBasis::Paid => receipt::ChargeBasis::Paid,
                    },
                })
                .collect(),
            currency: r.currency,
            rating: r.rating.map(|score| receipt::Rating { score, comment: r.rating_comment }),
            signer_name: r.signer_name,
            decision: match r.decision {
                CustomerDecision::Signed { strokes } => receipt::CustomerDecision::Signed { strokes: strokes_in(strokes) },
                CustomerDecision::Refused { reason } => receipt::CustomerDecision::Refused { reason },
            },
            correction_reason: r.correction_reason,
        }
    }
}

pub(crate) fn info(s: receipt::SignedReceipt) -> Result<SignedReceiptInfo, ApiError> {
    let parsed = s.receipt().map_err(|e| ApiError::Internal { reason: format!("stored receipt of {} is unreadable: {e}", s.order) })?;
    Ok(SignedReceiptInfo {
        decision: match parsed.outcome {
            receipt::Outcome::Refused { .. } => "refused".into(),
            receipt::Outcome::Signed { .. } => "signed".into(),
        },
        supersedes_sha256: parsed.supersedes.map(|s| s.sha256),
        order_id: s.order,
        revision: s.revision,
        receipt_sha256: s.receipt_sha256,
        strokes_sha256: s.strokes_sha256,
        signed_at: to_time(onsite_core::order::Timestamp(s.signed_at_ms)),
        journal_seq: s.journal_seq,
        canonical_json: String::from_utf8_lossy(&s.canonical).into_owned(),
        signature: s.signature,
    })
}

/// Receipts the customer signs, the customer copy, and the arbitration bundle.
#[derive(uniffi::Object)]
pub struct ReceiptsApi {
    pub(crate) device: crate::onsite::Handle,
}

#[uniffi::export]
impl ReceiptsApi {
    /// Builds the order's receipt and signs it with the device key (the customer's strokes,
    /// or their refusal, are part of it). Needs the order awaiting signature; a correction
    /// of a signed receipt is a new revision with a reason.
    pub fn sign(&self, order_id: String, request: ReceiptRequest) -> Result<SignedReceiptInfo, ApiError> {
        info(self.device.get()?.sign_receipt(&order_id, &request.into())?)
    }

    /// Every receipt revision of the order, oldest first.
    pub fn list(&self, order_id: String) -> Result<Vec<SignedReceiptInfo>, ApiError> {
        self.device.get()?.receipts(&order_id)?.into_iter().map(info).collect()
    }

    /// The printable customer copy (客户联) as self-contained HTML (`None`: latest revision).
    pub fn customer_copy_html(&self, order_id: String, revision: Option<u32>) -> Result<String, ApiError> {
        Ok(self.device.get()?.customer_copy_html(&order_id, revision)?)
    }

    /// Writes the order's arbitration bundle (zip) to `path`, off the caller's thread.
    /// Cancelling stops between members; `path` is then left untouched.
    #[uniffi::method(default(cancel_token = None))]
    pub async fn export_bundle(
        &self,
        order_id: String,
        path: String,
        thumbnails_only: bool,
        cancel_token: Option<std::sync::Arc<crate::task::CancelToken>>,
    ) -> Result<BundleExport, ApiError> {
        let device = self.device.get()?;
        crate::task::blocking("export", cancel_token, move |cancel| {
            let opts = onsite_core::device::ExportOptions { thumbnails_only };
            let s = device.export_bundle_cancellable(&order_id, std::path::Path::new(&path), opts, cancel)?;
            Ok(BundleExport {
                path: s.path.display().to_string(),
                bytes: s.bytes,
                sha256: s.sha256,
                members: s.members as u32,
                receipts: s.receipts as u32,
                photos: s.photos as u32,
                journal_entries: s.journal_entries as u32,
            })
        })
        .await
    }
}

/// Verifies an arbitration bundle file offline. `device_key` (SEC1), when given, must be
/// the key the bundle was signed with (as the server registered it).
#[uniffi::export]
pub fn verify_bundle(path: String, device_key: Option<Vec<u8>>) -> BundleReport {
    bundle::verify_file(std::path::Path::new(&path), &bundle::verify::Options { device_key, ..Default::default() }).into()
}

/// Parses an amount the user typed in 元 (`80`, `80.5`, `80.50`) into exact 分, by the one
/// rule the CLI and the server use: at most two decimals, no sign or exponent.
#[uniffi::export]
pub fn parse_amount_cents(text: String) -> Result<i64, ApiError> {
    onsite_core::money::parse_cents(&text).map_err(|e| ApiError::InvalidInput { field: "amount".into(), reason: e.to_string() })
}
