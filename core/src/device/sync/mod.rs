//! The client sync engine. One pass, evidence first:
//! 1. journal entries after the server's acknowledged seq (with the receipts they sign);
//! 2. orders: one batched `POST /v1/sync` carrying every dirty order's unsent Automerge
//!    changes and the cursor, answered with every change in the device's scope since the
//!    cursor (repeated only while the server says `more`), read in batches (`batch.rs`);
//! 3. photos: resumable chunked uploads by SHA-256.
//!
//! Every step is idempotent (a retried or duplicated request changes nothing twice) and its
//! progress is persisted before the next begins, so killing the app mid-sync loses nothing:
//! the next pass resumes from the store.

mod batch;
mod engine;
mod log_check;
mod report;

pub use report::{classify, Error, Phase, RejectedOrder, SyncObserver, SyncOptions, SyncProgress, SyncReport, SyncStatus};

use super::Device;
use crate::evidence::log::InclusionProof;
use crate::evidence::signer;
use crate::order::document::FieldConflict;
use crate::store::MetaKey;
use crate::sync::protocol::{self, EnrolRequest, EnrolResponse};
use crate::sync::transport::{Method, Request, Transport};
use crate::Result;
use engine::Pass;
use report::Error as SyncError;

impl Device {
    /// Enrols this device with a server using a one-time code from the dispatcher: proves
    /// possession of the device key, stores the access token and the server's keys.
    pub fn enrol(&self, transport: &dyn Transport, server_url: &str, code: &str) -> Result<EnrolResponse> {
        self.enrol_attested(transport, server_url, code, None)
    }

    /// [`Device::enrol`] carrying the platform's attestation of the device key, made with
    /// [`Device::attestation_challenge`] (Android) or [`Device::app_attest_client_data`]
    /// (iOS) for this code.
    pub fn enrol_attested(
        &self,
        transport: &dyn Transport,
        server_url: &str,
        code: &str,
        attestation: Option<crate::attest::Evidence>,
    ) -> Result<EnrolResponse> {
        let public_key = crate::hash::hex(&self.public_key());
        let message = protocol::enrol_message(code, self.device_id(), &public_key);
        let signer = &self.signer;
        let to_err = |e: signer::Error| crate::store::Error::Journal(crate::evidence::journal::Error::from(e));
        let sig = signer::normalize(&signer.sign(message.as_bytes()).map_err(to_err)?).map_err(to_err)?;
        let sent = attestation.clone();
        let body =
            EnrolRequest { code: code.trim().to_string(), device_id: self.device_id().to_string(), public_key, signature: crate::hash::hex(&sig), attestation };
        let req = Request::new(Method::Post, "/v1/enrol")
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&body).map_err(|e| SyncError::Protocol(e.to_string()))?);
        let resp = transport.send(&req).map_err(SyncError::from)?;
        if !resp.is_success() {
            return Err(classify(&resp).into());
        }
        let enrolled: EnrolResponse = serde_json::from_slice(&resp.body).map_err(|e| SyncError::Protocol(e.to_string()))?;
        let authority = crate::hash::unhex(&enrolled.time_authority).ok_or_else(|| SyncError::Protocol("time_authority".into()))?;
        self.store.set_meta(MetaKey::SyncServer, server_url)?;
        self.store.set_meta(MetaKey::SyncToken, &enrolled.token)?;
        self.store.set_meta(MetaKey::SyncProvider, &enrolled.provider)?;
        self.store.set_meta(MetaKey::SyncEngineer, &enrolled.engineer_id)?;
        // Another log (a new server or provider): the checkpoint kept for the old one says
        // nothing about it. Evidence of a fork is kept whatever happens.
        if self.store.meta(MetaKey::SyncLogKey)?.as_deref() != Some(enrolled.log_key.as_str()) {
            self.store.delete_meta(MetaKey::LogCheckpoint)?;
        }
        self.store.set_meta(MetaKey::SyncLogKey, &enrolled.log_key)?;
        self.store.set_meta(MetaKey::TimeAuthority, &crate::hash::hex(&authority))?;
        if let Some(evidence) = sent {
            // Kept for bundles: a third party re-verifies it offline (docs/adr/0019).
            let record = crate::attest::Record {
                evidence,
                enrolment_code: code.trim().to_string(),
                enrolled_at_ms: self.now().0,
                app_id: enrolled.attestation.as_ref().filter(|v| v.platform == "apple").and_then(|v| v.app_id.clone()),
            };
            self.store.set_meta(MetaKey::KeyAttestation, &serde_json::to_string(&record).map_err(|e| SyncError::Protocol(e.to_string()))?)?;
        }
        tracing::info!(provider = %enrolled.provider, engineer = %enrolled.engineer_id, "enrolled");
        Ok(enrolled)
    }

    /// The Android Key Attestation challenge for enrolling with `code`
    /// (`KeyGenParameterSpec.Builder.setAttestationChallenge`).
    pub fn attestation_challenge(code: &str) -> Vec<u8> {
        crate::attest::android_challenge(code).to_vec()
    }

    /// The App Attest client data for enrolling with `code`: its SHA-256 is what
    /// `DCAppAttestService.attestKey(_:clientDataHash:)` signs; it names this device's key.
    pub fn app_attest_client_data(&self, code: &str) -> Vec<u8> {
        crate::attest::apple_client_data(code, self.device_id(), &crate::hash::hex(&self.public_key())).into_bytes()
    }

    /// Points the device at its server's new address (same server, same data, moved).
    pub fn set_sync_server(&self, url: &str) -> Result<()> {
        if self.store.meta(MetaKey::SyncToken)?.is_none() {
            return Err(SyncError::NotEnrolled.into());
        }
        Ok(self.store.set_meta(MetaKey::SyncServer, url)?)
    }

    /// The server this device is enrolled with, if any.
    pub fn sync_server(&self) -> Result<Option<String>> {
        Ok(self.store.meta(MetaKey::SyncServer)?)
    }

    /// Sync status from local state only (no network).
    pub fn sync_status(&self) -> Result<SyncStatus> {
        let acked = self.store.meta_u64(MetaKey::SyncJournalAcked)?;
        let counts = self.store.sync_counts(acked)?;
        Ok(SyncStatus {
            enrolled: self.store.meta(MetaKey::SyncToken)?.is_some(),
            server: self.store.meta(MetaKey::SyncServer)?,
            provider: self.store.meta(MetaKey::SyncProvider)?,
            engineer: self.store.meta(MetaKey::SyncEngineer)?,
            pending_journal: counts.pending_journal,
            pending_orders: counts.pending_orders,
            pending_blobs: counts.pending_blobs,
            removed_orders: counts.removed_orders,
            wedged: counts.wedged_blobs,
            last_success_at: match self.store.meta_u64(MetaKey::SyncLastSuccess)? {
                0 => None,
                at => Some(at as i64),
            },
            last_error: self.store.meta(MetaKey::SyncLastError)?.filter(|e| !e.is_empty()),
        })
    }

    /// The inclusion proofs the server returned for this device's journal entries. A stored
    /// proof that no longer parses is an error (evidence is never skipped silently).
    pub fn log_proofs(&self) -> Result<Vec<InclusionProof>> {
        let mut out = Vec::new();
        for p in self.store.proofs()? {
            out.push(serde_json::from_str(&p.json).map_err(|e| crate::store::Error::Document { id: format!("log proof {}", p.seq), reason: e.to_string() })?);
        }
        Ok(out)
    }

    /// Fields of an order whose concurrent values Automerge resolved, with each value's
    /// author (device id, or the server's actor for dispatcher edits); the winner first.
    pub fn conflicts(&self, order_id: &str) -> Result<Vec<FieldConflict>> {
        Ok(self.store.open_document(order_id)?.conflicts()?)
    }

    /// Puts wedged photo uploads back in the queue; returns how many.
    pub fn retry_wedged(&self) -> Result<usize> {
        Ok(self.store.retry_wedged()?)
    }

    /// One sync pass. Errors that stop the pass (not enrolled, revoked) are returned; work
    /// that failed transiently stays in the outbox and is listed in the report's `errors`.
    pub fn sync(&self, transport: &dyn Transport, options: &SyncOptions, observer: Option<&dyn SyncObserver>) -> Result<SyncReport> {
        let token = self.store.meta(MetaKey::SyncToken)?.ok_or(SyncError::NotEnrolled)?;
        log_check::refuse_a_forked_log(&self.store)?;
        let entropy = {
            let mut b = [0u8; 8];
            rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut b);
            u64::from_le_bytes(b)
        };
        let mut pass = Pass { device: self, transport, options, observer, token, report: SyncReport::default(), entropy, ticket_accepted: false };
        let result = pass.run();
        // Screens refresh for what merged, even when the pass stopped part-way.
        self.changed_many(pass.report.changed_orders.clone(), crate::changes::ChangeOrigin::Remote);
        let now = self.now().0;
        match &result {
            Ok(()) if pass.report.errors.is_empty() => {
                self.store.set_meta(MetaKey::SyncLastSuccess, &now.to_string())?;
                self.store.set_meta(MetaKey::SyncLastError, "")?;
            }
            Ok(()) => self.store.set_meta(MetaKey::SyncLastError, &pass.report.errors.join("; "))?,
            Err(crate::Error::Cancelled) => {}
            Err(e) => self.store.set_meta(MetaKey::SyncLastError, &e.to_string())?,
        }
        result?;
        tracing::info!(
            round_trips = pass.report.round_trips,
            sent = pass.report.bytes_sent,
            received = pass.report.bytes_received,
            pushed = pass.report.orders_pushed,
            pulled = pass.report.orders_pulled,
            "sync pass"
        );
        Ok(pass.report)
    }
}
