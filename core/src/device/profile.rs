//! Building and exporting the engineer's signed service record (see `crate::profile`).

use std::path::Path;

use super::Device;
use crate::order::Status;
use crate::profile::{self, Error, OrderRecord, ServiceRecord, SignedCertification, SignedRecord};
use crate::store::MetaKey;
use crate::Result;

/// The provider of a record made on a device never enrolled with one.
const NO_PROVIDER: &str = "";

impl Device {
    /// Stores a certification the provider signed, if it verifies under the log key this
    /// device pinned at enrolment and names this device's engineer. Returns true when new.
    pub fn accept_certification(&self, c: &SignedCertification) -> Result<bool> {
        let key = self.store.meta(MetaKey::SyncLogKey)?.and_then(|h| crate::hash::unhex(&h)).ok_or(Error::NoLogKey)?;
        let cert = c.verify(&key).map_err(Error::Certification)?;
        if cert.engineer != self.engineer_id()? {
            return Err(Error::OtherEngineer.into());
        }
        Ok(self.store.save_certification(&cert.id, &c.body, &c.signature, self.now().0)?)
    }

    pub fn certifications(&self) -> Result<Vec<SignedCertification>> {
        Ok(self.store.certifications()?)
    }

    /// The service record: every completed order whose newest receipt the customer signed.
    pub fn service_record(&self) -> Result<ServiceRecord> {
        let key = self.public_key();
        self.countersigner.flush();
        self.store.seal_pending(self.stamp(), "export")?;
        let proofs = self.log_proofs()?;
        let mut orders: Vec<OrderRecord> = Vec::new();
        for s in self.store.list(&[Status::Completed], crate::store::SortBy::Updated)? {
            let Some(sr) = self.store.receipts(&s.id)?.into_iter().max_by_key(|r| r.revision) else { continue };
            let parsed = sr.receipt().map_err(|e| Error::Record(format!("receipt of {}: {e}", s.id)))?;
            if !matches!(parsed.outcome, crate::receipt::Outcome::Signed { .. }) {
                continue;
            }
            let journal = self.store.journal_entries(Some(&s.id))?;
            let sessions = self.sessions_of(&journal)?;
            let proof = proofs.iter().find(|p| p.seq == sr.journal_seq).cloned();
            orders.push(profile::order_record(&sr, &key, journal, sessions, proof).map_err(Error::Record)?);
        }
        orders.sort_by(|a, b| a.receipt.signed_at_ms.cmp(&b.receipt.signed_at_ms).then_with(|| a.order_id.cmp(&b.order_id)));
        let aggregates = profile::aggregate(&orders);
        Ok(ServiceRecord {
            format: profile::RECORD_FORMAT.into(),
            version: profile::RECORD_VERSION,
            engineer: self.engineer_id()?,
            provider: self.store.meta(MetaKey::SyncProvider)?.unwrap_or_else(|| NO_PROVIDER.to_string()),
            device_id: self.device_id().to_string(),
            device_key: crate::hash::hex(&key),
            generated_at: crate::receipt::build::rfc3339(self.now()),
            log_key: self.store.meta(MetaKey::SyncLogKey)?,
            orders,
            aggregates,
            certifications: self.certifications()?,
            key_attestation: match self.store.meta(MetaKey::KeyAttestation)? {
                Some(json) => Some(serde_json::from_str(&json).map_err(|e| Error::Record(format!("the stored key attestation: {e}")))?),
                None => None,
            },
        })
    }

    /// Signs the service record with the device key and writes it to `out` (JSON).
    pub fn export_service_record(&self, out: &Path) -> Result<SignedRecord> {
        let signer = self.store.signer().ok_or(crate::store::Error::NoSigner)?;
        let signed = profile::sign_record(self.service_record()?, signer.as_ref()).map_err(Error::Record)?;
        let bytes = serde_json::to_vec(&signed).map_err(|e| Error::Record(e.to_string()))?;
        let tmp = out.with_extension("tmp");
        std::fs::write(&tmp, &bytes).map_err(Error::from)?;
        std::fs::rename(&tmp, out).map_err(Error::from)?;
        Ok(signed)
    }
}
