//! Sync at the boundary: enrol, one sync pass with a progress listener (a foreign trait),
//! status for the UI, and merge conflicts. Enrolment and the pass are async exports (Kotlin
//! `suspend`, Swift `async`) that run on their own thread; cancelling the coroutine or task
//! stops the pass between requests, and everything already acknowledged stays so.

use std::sync::Arc;
use std::time::SystemTime;

use onsite_core::device::{self as client, SyncOptions};
use onsite_core::sync::HttpTransport;

use crate::orders::to_time;
use crate::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum SyncPhase {
    Journal,
    Orders,
    Photos,
}

/// Told how a sync pass progresses (a progress bar). Called on the syncing thread; a
/// listener that throws is ignored, the pass goes on.
#[uniffi::export(with_foreign)]
pub trait SyncProgressListener: Send + Sync {
    fn on_progress(&self, phase: SyncPhase, done: u64, total: u64) -> Result<(), ApiError>;
}

struct Listener(Arc<dyn SyncProgressListener>);

impl client::SyncObserver for Listener {
    fn progress(&self, p: &client::SyncProgress) {
        let phase = match p.phase {
            client::Phase::Journal => SyncPhase::Journal,
            client::Phase::Orders => SyncPhase::Orders,
            client::Phase::Photos => SyncPhase::Photos,
        };
        if let Err(e) = self.0.on_progress(phase, p.done, p.total) {
            tracing::debug!(error = %e, "the app's progress listener failed");
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Enrolment {
    pub provider: String,
    pub engineer_id: String,
    /// The server's verdict on the key attestation ("StrongBox, google Pixel 9 Pro, ..."),
    /// when its policy checks them.
    pub attested: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct RejectedOrder {
    pub order_id: String,
    /// `not_in_scope`, `forbidden_field`, `resend_full` or `invalid`.
    pub code: String,
    pub field: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SyncSummary {
    pub round_trips: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub journal_uploaded: u64,
    pub orders_pushed: u64,
    pub orders_pulled: u64,
    pub orders_rejected: Vec<RejectedOrder>,
    /// Orders rebuilt on the server's version after a refusal (local work kept).
    pub orders_rebased: u64,
    /// Orders reassigned away from this engineer.
    pub orders_removed: Vec<String>,
    /// Orders whose screens should refresh.
    pub changed_orders: Vec<String>,
    pub photos_uploaded: u64,
    /// What stays queued for the next pass, and why.
    pub pending_errors: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct WedgedPhoto {
    pub sha256: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SyncState {
    pub enrolled: bool,
    pub server: Option<String>,
    pub engineer_id: Option<String>,
    pub pending_journal: u64,
    pub pending_orders: u64,
    pub pending_photos: u64,
    pub wedged: Vec<WedgedPhoto>,
    pub last_success: Option<SystemTime>,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ConflictValue {
    /// The value as JSON.
    pub value_json: String,
    /// Device id of the author (or the server's actor for dispatcher edits).
    pub author: String,
    /// The value merge kept.
    pub kept: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct FieldConflict {
    pub field: String,
    pub values: Vec<ConflictValue>,
}

fn transport(url: &str) -> Result<HttpTransport, ApiError> {
    HttpTransport::new(url).map_err(|e| ApiError::Network { reason: e.to_string() })
}

pub(crate) fn conflict(c: onsite_core::order::document::FieldConflict) -> FieldConflict {
    FieldConflict {
        field: c.field,
        values: c.values.into_iter().enumerate().map(|(i, v)| ConflictValue { value_json: v.value.to_string(), author: v.actor, kept: i == 0 }).collect(),
    }
}

/// Enrolment, sync passes and the sync screen's state.
/// The Android Key Attestation challenge for enrolling with `code`, before any store is
/// open: the device key is made for the enrolment (`setAttestationChallenge`).
#[uniffi::export]
pub fn enrolment_attestation_challenge(code: String) -> Vec<u8> {
    onsite_core::Device::attestation_challenge(&code)
}

/// The platform's attestation of the device key, sent with the enrolment.
#[derive(Debug, Clone, uniffi::Enum)]
pub enum KeyAttestation {
    /// `KeyStore.getCertificateChain(alias)`: DER certificates, leaf first.
    AndroidKeyChain { chain: Vec<Vec<u8>> },
    /// `DCAppAttestService`: the key id and the attestation object.
    AppleAppAttest { key_id: Vec<u8>, object: Vec<u8> },
}

impl KeyAttestation {
    fn into_evidence(self) -> onsite_core::attest::Evidence {
        use base64::Engine;
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        match self {
            KeyAttestation::AndroidKeyChain { chain } => onsite_core::attest::Evidence::AndroidKeyChain { chain: chain.iter().map(|c| b64(c)).collect() },
            KeyAttestation::AppleAppAttest { key_id, object } => onsite_core::attest::Evidence::AppleAppAttest { key_id: b64(&key_id), object: b64(&object) },
        }
    }
}

#[derive(uniffi::Object)]
pub struct SyncApi {
    pub(crate) device: crate::onsite::Handle,
}

#[uniffi::export]
impl SyncApi {
    /// Enrols this device with `server_url` using the dispatcher's one-time code, with the
    /// platform's attestation of the device key when the app has one (made for this code
    /// with `attestation_challenge` or `app_attest_client_data`).
    #[uniffi::method(default(cancel_token = None, attestation = None))]
    pub async fn enrol(
        &self,
        server_url: String,
        code: String,
        cancel_token: Option<Arc<crate::task::CancelToken>>,
        attestation: Option<KeyAttestation>,
    ) -> Result<Enrolment, ApiError> {
        let device = self.device.get()?;
        crate::task::blocking("enrol", cancel_token, move |_| {
            let r = device.enrol_attested(&transport(&server_url)?, &server_url, &code, attestation.map(KeyAttestation::into_evidence))?;
            Ok(Enrolment { provider: r.provider, engineer_id: r.engineer_id, attested: r.attestation.map(|v| v.summary()) })
        })
        .await
    }

    /// The Android Key Attestation challenge for enrolling with `code`: pass it to
    /// `KeyGenParameterSpec.Builder.setAttestationChallenge` when the device key is made.
    pub fn attestation_challenge(&self, code: String) -> Vec<u8> {
        onsite_core::Device::attestation_challenge(&code)
    }

    /// The App Attest client data for enrolling with `code`; `attestKey` signs its SHA-256.
    pub fn app_attest_client_data(&self, code: String) -> Result<Vec<u8>, ApiError> {
        Ok(self.device.get()?.app_attest_client_data(&code))
    }

    /// One sync pass: journal and receipts, orders, photos. Cancel the coroutine / task to
    /// stop it (`ApiError.Cancelled`); the next pass resumes where it stopped.
    #[uniffi::method(default(listener = None, cancel_token = None))]
    pub async fn run(
        &self,
        listener: Option<Arc<dyn SyncProgressListener>>,
        cancel_token: Option<Arc<crate::task::CancelToken>>,
    ) -> Result<SyncSummary, ApiError> {
        let device = self.device.get()?;
        crate::task::blocking("sync", cancel_token, move |cancel| {
            let url = device.sync_server()?.ok_or(ApiError::Unauthorized { reason: "not enrolled".into() })?;
            let observer = listener.map(Listener);
            let options = SyncOptions { cancel: cancel.clone(), ..SyncOptions::default() };
            let r = device.sync(&transport(&url)?, &options, observer.as_ref().map(|o| o as &dyn client::SyncObserver))?;
            Ok(SyncSummary {
                round_trips: r.round_trips,
                bytes_sent: r.bytes_sent,
                bytes_received: r.bytes_received,
                journal_uploaded: r.journal_uploaded,
                orders_pushed: r.orders_pushed,
                orders_pulled: r.orders_pulled,
                orders_rejected: r.orders_rejected.into_iter().map(|r| RejectedOrder { order_id: r.id, code: r.code, field: r.field }).collect(),
                orders_rebased: r.orders_rebased,
                orders_removed: r.orders_removed,
                changed_orders: r.changed_orders,
                photos_uploaded: r.blobs_uploaded,
                pending_errors: r.errors,
            })
        })
        .await
    }

    /// What the sync screen shows, from local state only.
    pub fn state(&self) -> Result<SyncState, ApiError> {
        let s = self.device.get()?.sync_status()?;
        Ok(SyncState {
            enrolled: s.enrolled,
            server: s.server,
            engineer_id: s.engineer,
            pending_journal: s.pending_journal,
            pending_orders: s.pending_orders,
            pending_photos: s.pending_blobs,
            wedged: s.wedged.into_iter().map(|(sha256, reason)| WedgedPhoto { sha256, reason }).collect(),
            last_success: s.last_success_at.map(|t| to_time(onsite_core::order::Timestamp(t))),
            last_error: s.last_error,
        })
    }

    /// Puts wedged photos back in the outbox (after the cause was fixed); returns how many.
    pub fn retry_wedged(&self) -> Result<u64, ApiError> {
        Ok(self.device.get()?.retry_wedged()? as u64)
    }
}
