//! Receipts on the device: build, sign (one transaction with the document and the journal),
//! read back, and render the customer copy.

use super::Device;
use crate::evidence::journal::Draft;
use crate::evidence::signer;
use crate::hash::sha256_hex;
use crate::order::{ReceiptRef, Status, Timestamp, WorkOrder};
use crate::receipt::{self, html, BuildContext, HeadRef, Receipt, ReceiptInput, SignedReceipt, SigningMessage, Superseded};
use crate::store::{receipt_store, Change};
use crate::Result;

impl Device {
    /// Builds the order's receipt from its document, checklist and photos plus `input`, and
    /// signs it with the device key. The first revision needs the order awaiting signature;
    /// a correction (a new revision naming the one it supersedes) also works once completed.
    pub fn sign_receipt(&self, order_id: &str, input: &ReceiptInput) -> Result<SignedReceipt> {
        input.validate()?;
        let photos = self.store.photos(order_id)?;
        let signer = self.store.signer().ok_or(crate::store::Error::NoSigner)?;
        let stamp = self.stamp();
        let device = self.device_id().to_string();
        let (signed, _) = self.store.edit_bound(
            order_id,
            "receipt.sign",
            stamp,
            |o: &mut WorkOrder, head| -> Result<(SignedReceipt, Vec<Change>, Option<Draft>)> {
                let last = o.receipts.iter().max_by_key(|r| r.revision).cloned();
                match (o.status, &last) {
                    (Status::AwaitingSignature, _) | (Status::Completed, Some(_)) => {}
                    (s, None) => {
                        return Err(receipt::Error::WrongStatus {
                            status: s.to_string(),
                            reason: "the customer signs once the work is verified and the order awaits signature".into(),
                        }
                        .into())
                    }
                    (s, Some(_)) => {
                        return Err(receipt::Error::WrongStatus {
                            status: s.to_string(),
                            reason: "only a receipt of an order awaiting signature or completed can be corrected".into(),
                        }
                        .into())
                    }
                }
                let supersedes = match &last {
                    Some(l) => Some(Superseded {
                        revision: l.revision,
                        sha256: l.sha256.clone(),
                        reason: input
                            .correction_reason
                            .as_deref()
                            .map(|s| s.trim().to_string())
                            .ok_or_else(|| receipt::invalid("correction_reason", "required to correct a signed receipt"))?,
                    }),
                    None => None,
                };
                let revision = last.as_ref().map_or(1, |l| l.revision + 1);
                let template = self.pinned_template(o)?.map(|(_, t)| t);
                let journal_head = HeadRef { seq: head.seq, hash: head.hash.clone() };
                let ctx = BuildContext {
                    revision,
                    supersedes: supersedes.clone(),
                    device: &device,
                    now: Timestamp(stamp.at_ms),
                    journal_head: journal_head.clone(),
                    calendar: &self.calendar,
                    template: template.as_deref(),
                    photos: &photos,
                };
                let (built, strokes) = receipt::build(o, input, &ctx)?;
                let canonical = crate::jcs::to_vec_of(&built).map_err(receipt::Error::from)?;
                let receipt_sha256 = sha256_hex(&canonical);
                let strokes_sha256 = strokes.as_deref().map(sha256_hex);
                let message = SigningMessage {
                    v: 1,
                    kind: receipt::SIGNATURE_KIND.into(),
                    order: o.id.clone(),
                    revision,
                    receipt_sha256: receipt_sha256.clone(),
                    strokes_sha256: strokes_sha256.clone(),
                    journal_head: journal_head.clone(),
                }
                .canonical()?;
                let signature = signer::normalize(&signer.sign(&message).map_err(receipt::Error::from)?).map_err(receipt::Error::from)?;
                let decision = match built.outcome {
                    receipt::Outcome::Signed { .. } => "signed",
                    receipt::Outcome::Refused { .. } => "refused",
                };
                let draft = Draft::new(
                    crate::evidence::journal::JournalKind::ReceiptSigned,
                    Some(&o.id),
                    serde_json::json!({
                        "revision": revision,
                        "decision": decision,
                        "receipt_sha256": &receipt_sha256,
                        "strokes_sha256": &strokes_sha256,
                        "message_sha256": sha256_hex(&message),
                        "signature": crate::hash::hex(&signature),
                        "journal_head": &journal_head,
                        "supersedes": supersedes.as_ref().map(|s| serde_json::json!({ "revision": s.revision, "sha256": &s.sha256 })),
                    }),
                );
                o.receipts.push(ReceiptRef {
                    revision,
                    sha256: receipt_sha256.clone(),
                    decision: decision.to_string(),
                    signed_at: Timestamp(stamp.at_ms),
                    device: device.clone(),
                });
                let signed = SignedReceipt {
                    order: o.id.clone(),
                    revision,
                    canonical,
                    receipt_sha256,
                    strokes,
                    strokes_sha256,
                    message,
                    signature,
                    journal_seq: 0,
                    signed_at_ms: stamp.at_ms,
                };
                Ok((signed, vec![Change::AppendReceipt], Some(draft)))
            },
            |o| self.summarize(o),
            |tx, signed, seq| {
                signed.journal_seq = seq;
                receipt_store::insert_receipt(tx, signed, seq)
            },
        )?;
        self.changed(order_id, crate::changes::ChangeOrigin::Local);
        tracing::info!(order = order_id, revision = signed.revision, receipt = %signed.receipt_sha256, "receipt signed");
        Ok(signed)
    }

    /// Every receipt revision of the order, oldest first.
    pub fn receipts(&self, order_id: &str) -> Result<Vec<SignedReceipt>> {
        self.store.get(order_id)?;
        Ok(self.store.receipts(order_id)?)
    }

    /// One revision (`None`: the latest).
    pub fn receipt(&self, order_id: &str, revision: Option<u32>) -> Result<SignedReceipt> {
        let all = self.receipts(order_id)?;
        let found = match revision {
            Some(r) => all.into_iter().find(|s| s.revision == r),
            None => all.into_iter().last(),
        };
        Ok(found.ok_or_else(|| receipt::Error::NotFound { order: order_id.to_string(), revision: revision.unwrap_or(1) })?)
    }

    /// Verifies a stored receipt against this device's key and returns its content.
    pub fn verify_receipt(&self, signed: &SignedReceipt) -> Result<Receipt> {
        receipt::verify(signed, &self.public_key()).map_err(|p| receipt::Error::Invalid { field: p.check.to_string(), reason: p.detail }.into())
    }

    /// The printable customer copy (客户联) of a revision (`None`: the latest) as HTML, with
    /// the signature image and the photos' thumbnails.
    pub fn customer_copy_html(&self, order_id: &str, revision: Option<u32>) -> Result<String> {
        let signed = self.receipt(order_id, revision)?;
        let r = self.verify_receipt(&signed)?;
        let svg = match &signed.strokes {
            Some(b) => Some(crate::signature::render_svg(&crate::signature::decode(b)?)),
            None => None,
        };
        let rows = self.store.photos(order_id)?;
        let mut thumbs = Vec::new();
        for p in &r.photos {
            let Some(t) = rows.iter().find(|row| row.sha256 == p.sha256).and_then(|row| row.thumb_sha256.clone()) else { continue };
            if let Ok(bytes) = self.blob(&t) {
                thumbs.push((p.sha256.clone(), p.step.clone(), bytes));
            }
        }
        let views: Vec<html::Thumb<'_>> = thumbs.iter().map(|(sha, step, jpeg)| html::Thumb { sha256: sha, step: step.as_deref(), jpeg }).collect();
        Ok(html::customer_copy(&r, &signed.receipt_sha256, svg.as_deref(), &views, self.calendar.offset))
    }
}
