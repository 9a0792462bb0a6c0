//! The enrolment's key attestation policy (docs/adr/0019): per provider `off`, `record`
//! (verify, keep the verdict or the reason it failed, accept) or `require` (refuse a device
//! without a verified hardware-backed key). Verification itself is the core's (`attest`).

use std::collections::HashMap;

use onsite_core::attest::{self, Evidence, Expected, Policy, Trust, Verdict};
use serde::Serialize;

use crate::storage;

/// The server's attestation settings.
#[derive(Debug, Clone, Default)]
pub struct AttestationConfig {
    /// The policy of providers not named in `per_provider`.
    pub default_policy: Policy,
    pub per_provider: HashMap<String, Policy>,
    /// Apple app ids (`TEAMID.bundle.id`) whose App Attest keys are accepted.
    pub apple_app_ids: Vec<String>,
    /// Android package names whose keys are accepted (empty: any).
    pub android_packages: Vec<String>,
    /// Pinned roots and Google's revocation status list (loaded from a file).
    pub trust: Trust,
}

/// What is kept with the device: the verdict, or why there is none.
#[derive(Debug, Serialize)]
struct Record<'a> {
    attested: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    verdict: Option<&'a Verdict>,
    #[serde(skip_serializing_if = "Option::is_none")]
    problem: Option<String>,
}

impl AttestationConfig {
    pub fn policy(&self, provider: &str) -> Policy {
        self.per_provider.get(provider).copied().unwrap_or(self.default_policy)
    }

    /// Verifies the enrolment's evidence (when any) against this enrolment's binding.
    pub fn check(
        &self,
        evidence: Option<&Evidence>,
        code: &str,
        device_id: &str,
        public_key: &[u8],
        public_key_hex: &str,
        now_s: i64,
    ) -> Option<Result<Verdict, attest::Error>> {
        let evidence = evidence?;
        let challenge = attest::android_challenge(code);
        let client_data = attest::apple_client_data(code, device_id, public_key_hex);
        let expected = Expected {
            public_key,
            challenge: Some(&challenge),
            client_data: client_data.as_bytes(),
            apple_app_ids: &self.apple_app_ids,
            android_packages: &self.android_packages,
            at: now_s,
        };
        Some(attest::verify(evidence, &expected, &self.trust))
    }

    /// The decision for `provider`: the record to keep, or the refusal.
    pub fn admit(&self, provider: &str, outcome: Option<&Result<Verdict, attest::Error>>) -> storage::Result<Option<String>> {
        let record = |r: Record<'_>| serde_json::to_string(&r).map(Some).map_err(|e| storage::Error::Corrupt(e.to_string()));
        let refuse = |why: String| Err(storage::Error::Refused(format!("key attestation required by this provider: {why}")));
        match (self.policy(provider), outcome) {
            (Policy::Off, _) => Ok(None),
            (Policy::Record, None) => record(Record { attested: false, verdict: None, problem: Some("no attestation was sent".into()) }),
            (Policy::Record, Some(Ok(v))) => record(Record { attested: v.security_level.is_hardware(), verdict: Some(v), problem: None }),
            (Policy::Record, Some(Err(e))) => record(Record { attested: false, verdict: None, problem: Some(e.to_string()) }),
            (Policy::Require, None) => refuse("no attestation was sent".into()),
            (Policy::Require, Some(Err(e))) => refuse(e.to_string()),
            (Policy::Require, Some(Ok(v))) if !v.security_level.is_hardware() => refuse(format!("the key is not in hardware ({})", v.summary())),
            (Policy::Require, Some(Ok(v))) => record(Record { attested: true, verdict: Some(v), problem: None }),
        }
    }
}
