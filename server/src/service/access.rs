//! Who is calling: admin, dispatcher, device, expert tokens; providers, enrolment codes,
//! enrolment and revocation.

use onsite_core::evidence::signer as core_signer;
use onsite_core::hash::{hex, unhex};
use onsite_core::order;
use onsite_core::sync::protocol::{self, EnrolRequest, EnrolResponse};

use super::{random_hex, token_hash, Error, Result, Service, CODE_TTL_MS, MAX_CODE_TTL_MINUTES};
use crate::storage::{self, DeviceRow, Enrolled};

impl Service {
    pub fn check_admin(&self, token: Option<&str>) -> Result<()> {
        match token {
            Some(t) if token_hash(t) == self.admin_token_hash => Ok(()),
            _ => Err(self.unauthorized()),
        }
    }

    fn unauthorized(&self) -> Error {
        self.metrics.auth_failures.inc();
        Error::Unauthorized
    }

    pub fn dispatcher(&self, token: Option<&str>) -> Result<String> {
        let token = token.ok_or_else(|| self.unauthorized())?;
        self.storage.provider_by_token(&token_hash(token))?.ok_or_else(|| self.unauthorized())
    }

    /// Who may upload blobs: a device, or an expert (reference photos). Returns the provider.
    pub fn uploader(&self, token: Option<&str>) -> Result<String> {
        match self.device(token) {
            Ok(d) => Ok(d.provider),
            Err(_) => Ok(self.expert(token)?.provider),
        }
    }

    /// Who may read blobs of a provider: its dispatcher, devices and experts.
    pub fn any_party(&self, token: Option<&str>) -> Result<String> {
        if let Ok(p) = self.dispatcher(token) {
            return Ok(p);
        }
        self.uploader(token)
    }

    pub fn device(&self, token: Option<&str>) -> Result<DeviceRow> {
        let token = token.ok_or_else(|| self.unauthorized())?;
        match self.storage.device_by_token(&token_hash(token))? {
            Some(d) if !d.revoked => Ok(d),
            _ => Err(self.unauthorized()),
        }
    }

    pub fn create_provider(&self, id: &str, name: &str) -> Result<String> {
        order::import::validate_order_id(id).map_err(|_| Error::BadRequest("a provider id is 1-64 letters, digits, `-` or `_`".into()))?;
        let token = format!("dsp_{}", random_hex(24));
        self.storage.create_provider(id, name, &token_hash(&token), self.now_ms())?;
        tracing::info!(provider = id, "provider created");
        Ok(token)
    }

    /// A one-time enrolment code for `engineer_id`, valid `ttl_minutes` (1 to 43,200 = 30
    /// days; 24 h when absent). Out-of-range values are refused, not clamped.
    pub fn create_code(&self, provider: &str, engineer_id: &str, ttl_minutes: Option<i64>) -> Result<(String, i64)> {
        if engineer_id.trim().is_empty() || engineer_id.len() > 64 {
            return Err(Error::BadRequest("engineer_id is 1-64 characters".into()));
        }
        let ttl_ms = match ttl_minutes {
            None => CODE_TTL_MS,
            Some(m) if (1..=MAX_CODE_TTL_MINUTES).contains(&m) => m * 60_000,
            Some(m) => return Err(Error::BadRequest(format!("ttl_minutes is 1 to {MAX_CODE_TTL_MINUTES}, not {m}"))),
        };
        let code = enrol_code();
        let expires = self.now_ms() + ttl_ms;
        self.storage.create_code(&token_hash(&normalize_code(&code)), provider, engineer_id, expires)?;
        Ok((code, expires))
    }

    pub fn enrol(&self, req: &EnrolRequest) -> Result<EnrolResponse> {
        let key = unhex(&req.public_key).filter(|k| core_signer::is_valid_key(k)).ok_or_else(|| Error::BadRequest("public_key is not a P-256 key".into()))?;
        let sig = unhex(&req.signature).ok_or_else(|| Error::BadRequest("signature is not hex".into()))?;
        let message = protocol::enrol_message(&req.code, &req.device_id, &req.public_key);
        if !core_signer::verify(&key, message.as_bytes(), &sig).unwrap_or(false) {
            return Err(self.unauthorized());
        }
        // One spelling per id: upper-case hex would enrol the same device twice.
        if req.device_id.len() != 32 || !req.device_id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(Error::BadRequest("device_id is 32 lowercase hex digits".into()));
        }
        let token = format!("dev_{}", random_hex(32));
        let outcome = self.attestation.check(req.attestation.as_ref(), &req.code, &req.device_id, &key, &req.public_key, self.now_ms() / 1000);
        let admit = |provider: &str| self.attestation.admit(provider, outcome.as_ref());
        let Enrolled { provider, engineer_id } = self
            .storage
            .enrol(&token_hash(&normalize_code(&req.code)), self.now_ms(), &req.device_id, &key, &token_hash(&token), &admit)
            .map_err(|e| match e {
                storage::Error::NotFound(_) => self.unauthorized(),
                other => other.into(),
            })?;
        let verdict = match (self.attestation.policy(&provider), outcome) {
            (onsite_core::attest::Policy::Off, _) | (_, None) => None,
            (_, Some(Ok(v))) => Some(v),
            (_, Some(Err(e))) => {
                tracing::warn!(device = %req.device_id, %provider, error = %e, "the device's key attestation failed; recorded");
                None
            }
        };
        tracing::info!(device = %req.device_id, %provider, engineer = %engineer_id, attested = ?verdict.as_ref().map(|v| v.summary()), "device enrolled");
        Ok(EnrolResponse { token, provider, engineer_id, time_authority: hex(&self.time_authority_key()), log_key: hex(&self.log_key()), attestation: verdict })
    }

    /// A provider's devices, revoked ones included.
    pub fn devices(&self, provider: &str) -> Result<Vec<DeviceRow>> {
        Ok(self.storage.devices(provider)?)
    }

    /// Notes that `d` was heard from, at most once a minute per device (the console's "last
    /// sync"); a failure to note it is logged and never fails the request.
    pub(super) fn heard_from(&self, d: &DeviceRow) {
        let now = self.now_ms();
        if d.last_seen_ms.is_some_and(|t| now - t < LAST_SEEN_EVERY_MS) {
            return;
        }
        if let Err(e) = self.storage.touch_device(&d.id, now) {
            tracing::warn!(device = %d.id, error = %e, "could not record when the device was last seen");
        }
    }

    pub fn revoke_device(&self, provider: &str, device_id: &str) -> Result<()> {
        self.storage.revoke_device(provider, device_id, self.now_ms())?;
        tracing::info!(device = device_id, provider, "device revoked");
        Ok(())
    }
}

/// How stale a device's "last seen" may get before a request writes it again.
const LAST_SEEN_EVERY_MS: i64 = 60_000;

/// A human-typable one-time code: 12 characters of an unambiguous alphabet, in groups.
fn enrol_code() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";
    let mut b = [0u8; 12];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut b);
    let s: String = b.iter().map(|x| ALPHABET[*x as usize % ALPHABET.len()] as char).collect();
    format!("{}-{}-{}", &s[..4], &s[4..8], &s[8..])
}

use onsite_core::sync::protocol::normalize_code;
