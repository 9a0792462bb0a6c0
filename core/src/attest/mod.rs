//! Key attestation at enrolment (docs/adr/0019): the platform's proof that the device key
//! lives in hardware. Android: a Key Attestation certificate chain ([`android`]); iOS: an App
//! Attest attestation object ([`apple`]). Both are verified against pinned roots at a given
//! time, bound to the enrolment (challenge / client data), and summed up in a [`Verdict`]
//! that the server stores with the device and `onsite verify` reports.

pub mod android;
pub mod apple;
pub mod der;
#[cfg(test)]
mod tests;

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use x509_parser::prelude::*;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("the attestation cannot be decoded: {0}")]
    Format(String),
    #[error("the certificate chain does not verify: {0}")]
    Chain(String),
    #[error("the chain ends at a root that is not pinned ({0})")]
    UnknownRoot(String),
    #[error("certificate serial {0} is revoked")]
    Revoked(String),
    #[error("the attestation extension is malformed: {0}")]
    Extension(String),
    #[error("the attestation is not bound to this enrolment: {0}")]
    Binding(String),
    #[error("the revocation status list cannot be read: {0}")]
    StatusList(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecurityLevel {
    Software,
    Tee,
    StrongBox,
    SecureEnclave,
}

impl SecurityLevel {
    pub fn is_hardware(self) -> bool {
        !matches!(self, SecurityLevel::Software)
    }

    pub fn label(self) -> &'static str {
        match self {
            SecurityLevel::Software => "software",
            SecurityLevel::Tee => "TEE",
            SecurityLevel::StrongBox => "StrongBox",
            SecurityLevel::SecureEnclave => "Secure Enclave",
        }
    }
}

/// What a verified attestation says about the device key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    pub platform: String,
    pub security_level: SecurityLevel,
    /// The pinned root the chain ends at.
    pub root: String,
    /// Brand and model (Android).
    pub device: Option<String>,
    /// Android's verified boot state: verified, self-signed, unverified, failed.
    pub verified_boot: Option<String>,
    pub device_locked: Option<bool>,
    pub os_version: Option<i64>,
    pub os_patch_level: Option<i64>,
    /// The app: Android package name, or Apple team.bundle id.
    pub app_id: Option<String>,
    /// Apple: development or production.
    pub environment: Option<String>,
    pub attestation_version: Option<i64>,
}

impl Verdict {
    /// One line for a report: "StrongBox, google Pixel 9 Pro, verified boot state verified, locked".
    pub fn summary(&self) -> String {
        let mut parts = vec![self.security_level.label().to_string()];
        parts.extend(self.device.clone());
        if let Some(b) = &self.verified_boot {
            parts.push(format!("verified boot state {b}"));
        }
        if let Some(l) = self.device_locked {
            parts.push(if l { "bootloader locked".into() } else { "bootloader unlocked".into() });
        }
        parts.extend(self.app_id.clone());
        parts.extend(self.environment.clone());
        parts.join(", ")
    }
}

/// The evidence a device sends with its enrolment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Evidence {
    /// DER certificates, base64, leaf first (Android `KeyStore.getCertificateChain`).
    AndroidKeyChain { chain: Vec<String> },
    /// The App Attest key id and attestation object, base64 (`DCAppAttestService`).
    AppleAppAttest { key_id: String, object: String },
}

/// What a device keeps of its enrolment's attestation and exports in bundles: enough for a
/// third party to verify it offline (the one-time code is spent by then; it rebuilds the
/// challenge and client data the attestation is bound to).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    pub evidence: Evidence,
    pub enrolment_code: String,
    /// When the server accepted it: the chain is verified as of then.
    pub enrolled_at_ms: i64,
    /// Apple: the app id the server matched (its hash is in the attestation).
    #[serde(default)]
    pub app_id: Option<String>,
}

impl Record {
    /// Verifies the record for the device `device_id` whose key is `public_key`.
    pub fn verify(&self, device_id: &str, public_key: &[u8], trust: &Trust) -> Result<Verdict, Error> {
        let challenge = android_challenge(&self.enrolment_code);
        let client_data = apple_client_data(&self.enrolment_code, device_id, &crate::hash::hex(public_key));
        let apps: Vec<String> = self.app_id.iter().cloned().collect();
        let expected = Expected {
            public_key,
            challenge: Some(&challenge),
            client_data: client_data.as_bytes(),
            apple_app_ids: &apps,
            android_packages: &[],
            at: self.enrolled_at_ms.div_euclid(1000),
        };
        verify(&self.evidence, &expected, trust)
    }
}

/// What the attestation must match.
pub struct Expected<'a> {
    /// The enrolled key (SEC1 uncompressed).
    pub public_key: &'a [u8],
    /// Android: the attestation challenge this enrolment set.
    pub challenge: Option<&'a [u8]>,
    /// Apple: the client data whose SHA-256 the attestation's nonce covers.
    pub client_data: &'a [u8],
    /// Apple: accepted app ids (`TEAMID.bundle.id`); empty accepts none.
    pub apple_app_ids: &'a [String],
    /// Android: accepted package names; empty accepts any.
    pub android_packages: &'a [String],
    /// The verification time, seconds since the epoch.
    pub at: i64,
}

/// A pinned root: its public key's SHA-256, and whether it vouches for hardware.
#[derive(Debug, Clone)]
pub struct PinnedRoot {
    pub name: &'static str,
    pub spki_sha256: [u8; 32],
    /// The public key itself when chains stop below the root (Apple's x5c).
    pub spki_der: Option<Vec<u8>>,
    pub hardware: bool,
}

/// Pinned roots and the revoked serials (Google's attestation status list, loaded from a
/// file: no network at verification time).
#[derive(Debug, Clone)]
pub struct Trust {
    pub roots: Vec<PinnedRoot>,
    revoked: HashSet<String>,
}

/// SHA-256 of the SubjectPublicKeyInfo of Google's RSA attestation root (also re-issued
/// with the same key), of its 2026 EC root, and of its software attestation root.
const GOOGLE_RSA_ROOT: [u8; 32] = [
    0xfe, 0xb2, 0xea, 0x75, 0x51, 0xee, 0x31, 0x6e, 0xd4, 0xbb, 0x44, 0x3c, 0x82, 0x93, 0xb8, 0x84, 0xdb, 0xfd, 0xea, 0x40, 0xb6, 0x03, 0xee, 0x3e, 0x4f, 0x4a,
    0x89, 0x7e, 0x45, 0x80, 0xfb, 0xae,
];
const GOOGLE_2026_EC_ROOT: [u8; 32] = [
    0x3e, 0xe4, 0x45, 0x12, 0xa1, 0xaf, 0x2b, 0xeb, 0x39, 0xc8, 0x89, 0x49, 0x0c, 0x60, 0xea, 0x3f, 0x82, 0xe4, 0x3f, 0x5d, 0x5a, 0x55, 0x32, 0xf5, 0xab, 0x94,
    0x19, 0xf6, 0x76, 0xcd, 0x07, 0xec,
];
const GOOGLE_SOFTWARE_ROOT: [u8; 32] = [
    0xd5, 0x10, 0x0c, 0x79, 0x42, 0xef, 0x2e, 0x83, 0x10, 0xdc, 0x30, 0xef, 0x82, 0x72, 0x96, 0x80, 0xcf, 0x48, 0xd6, 0x90, 0x73, 0x5c, 0x3f, 0x68, 0x17, 0x9a,
    0x33, 0xc7, 0xc3, 0x70, 0xf2, 0x86,
];

/// Apple App Attestation Root CA's public key (P-384, SubjectPublicKeyInfo DER).
const APPLE_ROOT_SPKI: [u8; 120] = [
    0x30, 0x76, 0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22, 0x03, 0x62, 0x00, 0x04, 0x45, 0x31,
    0xe1, 0x98, 0xb5, 0xb4, 0xec, 0x04, 0xda, 0x15, 0x02, 0x04, 0x57, 0x04, 0xed, 0x4f, 0x87, 0x72, 0x72, 0xd7, 0x61, 0x35, 0xb2, 0x61, 0x16, 0xcf, 0xc8, 0x8b,
    0x61, 0x5d, 0x0a, 0x00, 0x07, 0x19, 0xba, 0x69, 0x85, 0x8d, 0xfe, 0x77, 0xca, 0xa3, 0xb8, 0x39, 0xe0, 0x20, 0xdd, 0xd6, 0x56, 0x14, 0x14, 0x04, 0x70, 0x28,
    0x31, 0xe4, 0x3f, 0x70, 0xb8, 0x8f, 0xd6, 0xc3, 0x94, 0xb6, 0x08, 0xea, 0x2b, 0xd6, 0xae, 0x61, 0xe9, 0xf5, 0x98, 0xc1, 0x2f, 0x46, 0xaf, 0x52, 0x93, 0x72,
    0x66, 0xe5, 0x7f, 0x14, 0xeb, 0x61, 0xfe, 0xc5, 0x30, 0xf7, 0x14, 0x4f, 0x53, 0x81, 0x2e, 0x35,
];

impl Default for Trust {
    fn default() -> Self {
        Self::pinned()
    }
}

impl Trust {
    /// Google's hardware attestation roots (the RSA root, also re-issued with the same key,
    /// and the 2026 EC root), Google's software attestation root (known, vouches for no
    /// hardware), Apple's App Attestation root. Pinned by the SHA-256 of the public key.
    pub fn pinned() -> Self {
        Self {
            roots: vec![
                PinnedRoot { name: "google-rsa", spki_sha256: GOOGLE_RSA_ROOT, spki_der: None, hardware: true },
                PinnedRoot { name: "google-2026-ec", spki_sha256: GOOGLE_2026_EC_ROOT, spki_der: None, hardware: true },
                PinnedRoot { name: "google-software", spki_sha256: GOOGLE_SOFTWARE_ROOT, spki_der: None, hardware: false },
                PinnedRoot {
                    name: "apple-app-attestation",
                    spki_sha256: crate::hash::Sha256::digest(APPLE_ROOT_SPKI),
                    spki_der: Some(APPLE_ROOT_SPKI.to_vec()),
                    hardware: true,
                },
            ],
            revoked: HashSet::new(),
        }
    }

    /// Adds a root (a rotation announced before the code knows it; tests' own CAs).
    pub fn with_root(mut self, root: PinnedRoot) -> Self {
        self.roots.push(root);
        self
    }

    /// Loads Google's status list (`{"entries": {"<serial hex>": {"status": "REVOKED", ...}}}`).
    pub fn with_status_list(mut self, json: &[u8]) -> Result<Self, Error> {
        #[derive(Deserialize)]
        struct Entry {
            status: String,
        }
        #[derive(Deserialize)]
        struct List {
            entries: std::collections::HashMap<String, Entry>,
        }
        let list: List = serde_json::from_slice(json).map_err(|e| Error::StatusList(e.to_string()))?;
        self.revoked.extend(list.entries.into_iter().filter(|(_, e)| e.status.eq_ignore_ascii_case("REVOKED")).map(|(k, _)| normalize_serial(&k)));
        Ok(self)
    }

    fn root_for(&self, spki_der: &[u8]) -> Option<&PinnedRoot> {
        let h = crate::hash::Sha256::digest(spki_der);
        self.roots.iter().find(|r| r.spki_sha256 == h)
    }
}

fn normalize_serial(s: &str) -> String {
    let s = s.trim().to_ascii_lowercase();
    let t = s.trim_start_matches('0');
    if t.is_empty() {
        "0".into()
    } else {
        t.to_string()
    }
}

/// Parses DER certificates, each whole (no trailing bytes).
pub(crate) fn parse_certs<'a>(ders: impl IntoIterator<Item = &'a [u8]>) -> Result<Vec<X509Certificate<'a>>, Error> {
    ders.into_iter()
        .enumerate()
        .map(|(i, der)| match X509Certificate::from_der(der) {
            Ok(([], c)) => Ok(c),
            Ok(_) => Err(Error::Chain(format!("certificate {i} has trailing bytes"))),
            Err(e) => Err(Error::Chain(format!("certificate {i}: {e}"))),
        })
        .collect()
}

/// Verifies each certificate's signature by the next, names, validity at `at` and
/// revocation; the last certificate must be a pinned root (self-signed), or be signed by
/// `issuer_root` (a pinned root the chain stops below). Returns the root.
pub(crate) fn check_chain<'t>(certs: &[X509Certificate<'_>], at: i64, trust: &'t Trust, issuer_root: Option<&'t PinnedRoot>) -> Result<&'t PinnedRoot, Error> {
    let when = ASN1Time::from_timestamp(at).map_err(|e| Error::Chain(e.to_string()))?;
    for (i, c) in certs.iter().enumerate() {
        envelope(c.as_ref()).map_err(|e| Error::Chain(format!("certificate {i}: {e}")))?;
        if !c.validity().is_valid_at(when) {
            return Err(Error::Chain(format!("certificate {i} is not valid at the verification time")));
        }
        let serial = normalize_serial(&format!("{:x}", c.serial));
        if trust.revoked.contains(&serial) {
            return Err(Error::Revoked(serial));
        }
        if let Some(next) = certs.get(i + 1) {
            if c.issuer() != next.subject() {
                return Err(Error::Chain(format!("certificate {i}'s issuer is not certificate {}", i + 1)));
            }
            c.verify_signature(Some(next.public_key())).map_err(|e| Error::Chain(format!("certificate {i}'s signature: {e}")))?;
        }
    }
    let last = certs.last().ok_or_else(|| Error::Chain("an empty chain".into()))?;
    if let Some(root) = issuer_root {
        let der = root.spki_der.as_deref().ok_or_else(|| Error::UnknownRoot(root.name.into()))?;
        let (_, spki) = SubjectPublicKeyInfo::from_der(der).map_err(|e| Error::Chain(e.to_string()))?;
        last.verify_signature(Some(&spki)).map_err(|e| Error::Chain(format!("the last certificate is not signed by {}: {e}", root.name)))?;
        return Ok(root);
    }
    let root = trust.root_for(last.public_key().raw).ok_or_else(|| Error::UnknownRoot(last.subject().to_string()))?;
    last.verify_signature(None).map_err(|e| Error::Chain(format!("the root's self-signature: {e}")))?;
    Ok(root)
}

/// The unsigned part of a certificate, read strictly: `SEQUENCE { tbs, signatureAlgorithm,
/// signatureValue }` with the outer algorithm byte for byte the one inside the signed part
/// (RFC 5280 4.1.1.2), which a lenient parser would otherwise let anyone alter.
fn envelope(der: &[u8]) -> Result<(), String> {
    let mut top = der::Der::new(der);
    let mut cert = top.sequence().map_err(|e| e.0)?;
    top.end().map_err(|e| e.0)?;
    let mut tbs = cert.sequence().map_err(|e| e.0)?;
    let outer = cert.element().map_err(|e| e.0)?;
    // A signature is whole bytes: a BIT STRING with unused bits is not one.
    if cert.expect(3, false).map_err(|e| e.0)?.first() != Some(&0) {
        return Err("the signature BIT STRING has unused bits".into());
    }
    cert.end().map_err(|e| e.0)?;
    let mut first = tbs.element().map_err(|e| e.0)?;
    if first.class == der::CONTEXT && first.tag == 0 {
        first = tbs.element().map_err(|e| e.0)?; // the serial, after the version
    }
    if first.class != der::UNIVERSAL || first.tag != 2 {
        return Err("no serial number".into());
    }
    let inner = tbs.element().map_err(|e| e.0)?;
    if inner != outer || outer.class != der::UNIVERSAL || outer.tag != 16 {
        return Err("the signature algorithm differs from the signed one".into());
    }
    Ok(())
}

/// Decodes and verifies enrolment evidence.
pub fn verify(evidence: &Evidence, expected: &Expected<'_>, trust: &Trust) -> Result<Verdict, Error> {
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.decode(s).map_err(|e| Error::Format(e.to_string()));
    match evidence {
        Evidence::AndroidKeyChain { chain } => {
            let ders = chain.iter().map(|c| b64(c)).collect::<Result<Vec<_>, _>>()?;
            android::verify(&ders, expected, trust)
        }
        Evidence::AppleAppAttest { key_id, object } => apple::verify(&b64(key_id)?, &b64(object)?, expected, trust),
    }
}

/// A provider's attestation policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// Attestations are not checked (nor stored).
    #[default]
    Off,
    /// Checked; the verdict (or the reason it failed) is stored; the device is accepted.
    Record,
    /// A device without a hardware-backed, verified attestation is refused.
    Require,
}

impl std::str::FromStr for Policy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "off" => Ok(Policy::Off),
            "record" => Ok(Policy::Record),
            "require" => Ok(Policy::Require),
            other => Err(format!("unknown attestation policy `{other}` (off, record, require)")),
        }
    }
}

/// The Android attestation challenge of an enrolment: SHA-256 of the one-time code (the key
/// is generated when the code is scanned, before the store has a device id; ADR 0019).
pub fn android_challenge(code: &str) -> [u8; 32] {
    crate::hash::Sha256::digest(format!("onsite-attest/v1\n{}\n", crate::sync::protocol::normalize_code(code)))
}

/// The App Attest client data of an enrolment: it names the enrolled key (App Attest keys
/// cannot sign arbitrary data, so the Secure Enclave device key is bound through it).
pub fn apple_client_data(code: &str, device_id: &str, public_key_hex: &str) -> String {
    format!("onsite-attest/v1\n{}\n{device_id}\n{public_key_hex}\n", crate::sync::protocol::normalize_code(code))
}
