//! Android Key Attestation: the certificate chain (leaf first) from the Keystore, verified up
//! to a pinned Google root, and the leaf's KeyDescription extension (OID
//! 1.3.6.1.4.1.11129.2.1.17), parsed strictly (AuthorizationList tags in ascending order,
//! DER booleans, no trailing bytes).

use super::der::{Der, Tlv, CONTEXT};
use super::{Error, Expected, SecurityLevel, Trust, Verdict};

pub const KEY_DESCRIPTION_OID: &str = "1.3.6.1.4.1.11129.2.1.17";

/// The parts of KeyDescription the verdict and the checks use.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyDescription {
    pub attestation_version: i64,
    pub attestation_security_level: i64,
    pub keymint_security_level: i64,
    pub challenge: Vec<u8>,
    pub software: AuthorizationList,
    pub hardware: AuthorizationList,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthorizationList {
    pub purposes: Vec<i64>,
    pub algorithm: Option<i64>,
    pub ec_curve: Option<i64>,
    pub origin: Option<i64>,
    pub root_of_trust: Option<RootOfTrust>,
    pub os_version: Option<i64>,
    pub os_patch_level: Option<i64>,
    pub packages: Vec<String>,
    pub brand: Option<String>,
    pub device: Option<String>,
    pub manufacturer: Option<String>,
    pub model: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootOfTrust {
    pub device_locked: bool,
    /// 0 Verified, 1 SelfSigned, 2 Unverified, 3 Failed.
    pub verified_boot_state: i64,
}

fn malformed(e: super::der::DerError) -> Error {
    Error::Extension(e.0)
}

/// Parses the extension's value (the KeyDescription SEQUENCE).
pub fn parse_key_description(bytes: &[u8]) -> Result<KeyDescription, Error> {
    let mut top = Der::new(bytes);
    let mut s = top.sequence().map_err(malformed)?;
    top.end().map_err(malformed)?;
    let attestation_version = s.integer().map_err(malformed)?;
    let attestation_security_level = s.enumerated().map_err(malformed)?;
    let _keymint_version = s.integer().map_err(malformed)?;
    let keymint_security_level = s.enumerated().map_err(malformed)?;
    let challenge = s.octets().map_err(malformed)?.to_vec();
    let _unique_id = s.octets().map_err(malformed)?;
    let software = authorization_list(s.sequence().map_err(malformed)?)?;
    let hardware = authorization_list(s.sequence().map_err(malformed)?)?;
    s.end().map_err(malformed)?;
    Ok(KeyDescription { attestation_version, attestation_security_level, keymint_security_level, challenge, software, hardware })
}

fn authorization_list(mut list: Der<'_>) -> Result<AuthorizationList, Error> {
    let mut out = AuthorizationList::default();
    let mut last: Option<u32> = None;
    while !list.is_empty() {
        let Tlv { class, constructed, tag, value } = list.element().map_err(malformed)?;
        if class != CONTEXT || !constructed {
            return Err(Error::Extension(format!("an authorization list entry that is not an explicit tag (class {class}, tag {tag})")));
        }
        if last.is_some_and(|l| tag <= l) {
            return Err(Error::Extension(format!("authorization list tags out of order: [{tag}] after [{}]", last.unwrap_or(0))));
        }
        last = Some(tag);
        let mut inner = Der::new(value);
        match tag {
            1 => {
                let mut set = Der::new(inner.expect(17, true).map_err(malformed)?);
                while !set.is_empty() {
                    out.purposes.push(set.integer().map_err(malformed)?);
                }
            }
            2 => out.algorithm = Some(inner.integer().map_err(malformed)?),
            10 => out.ec_curve = Some(inner.integer().map_err(malformed)?),
            702 => out.origin = Some(inner.integer().map_err(malformed)?),
            704 => {
                let mut rot = inner.sequence().map_err(malformed)?;
                let _boot_key = rot.octets().map_err(malformed)?;
                let device_locked = rot.boolean().map_err(malformed)?;
                let verified_boot_state = rot.enumerated().map_err(malformed)?;
                if !rot.is_empty() {
                    let _boot_hash = rot.octets().map_err(malformed)?;
                }
                rot.end().map_err(malformed)?;
                out.root_of_trust = Some(RootOfTrust { device_locked, verified_boot_state });
            }
            705 => out.os_version = Some(inner.integer().map_err(malformed)?),
            706 => out.os_patch_level = Some(inner.integer().map_err(malformed)?),
            709 => out.packages = application_id(inner.octets().map_err(malformed)?)?,
            710 => out.brand = Some(text(inner.octets().map_err(malformed)?)),
            711 => out.device = Some(text(inner.octets().map_err(malformed)?)),
            716 => out.manufacturer = Some(text(inner.octets().map_err(malformed)?)),
            717 => out.model = Some(text(inner.octets().map_err(malformed)?)),
            // Other tags are read as one element each (their shapes vary), never interpreted.
            _ => {
                inner.element().map_err(malformed)?;
            }
        }
        inner.end().map_err(malformed)?;
    }
    Ok(out)
}

/// AttestationApplicationId: SEQUENCE { SET OF { name OCTET STRING, version INTEGER }, SET OF
/// signature digests }: the package names.
fn application_id(bytes: &[u8]) -> Result<Vec<String>, Error> {
    let mut top = Der::new(bytes);
    let mut s = top.sequence().map_err(malformed)?;
    let mut packages = Der::new(s.expect(17, true).map_err(malformed)?);
    let mut names = Vec::new();
    while !packages.is_empty() {
        let mut p = packages.sequence().map_err(malformed)?;
        names.push(text(p.octets().map_err(malformed)?));
        p.integer().map_err(malformed)?;
        p.end().map_err(malformed)?;
    }
    Ok(names)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn level(n: i64) -> Result<SecurityLevel, Error> {
    match n {
        0 => Ok(SecurityLevel::Software),
        1 => Ok(SecurityLevel::Tee),
        2 => Ok(SecurityLevel::StrongBox),
        other => Err(Error::Extension(format!("unknown security level {other}"))),
    }
}

fn boot_state(n: i64) -> &'static str {
    match n {
        0 => "verified",
        1 => "self-signed",
        2 => "unverified",
        3 => "failed",
        _ => "unknown",
    }
}

/// Verifies a chain (DER certificates, leaf first) and returns the verdict.
pub fn verify(chain: &[Vec<u8>], expected: &Expected<'_>, trust: &Trust) -> Result<Verdict, Error> {
    if chain.len() < 2 || chain.len() > 10 {
        return Err(Error::Chain(format!("a chain of {} certificate(s)", chain.len())));
    }
    let certs = super::parse_certs(chain.iter().map(Vec::as_slice))?;
    let root = super::check_chain(&certs, expected.at, trust, None)?;
    let leaf = &certs[0];
    let ext = leaf
        .extensions()
        .iter()
        .find(|e| e.oid.to_id_string() == KEY_DESCRIPTION_OID)
        .ok_or_else(|| Error::Extension("the leaf carries no key attestation extension".into()))?;
    let kd = parse_key_description(ext.value)?;
    // The attested key is the enrolled key.
    let attested = leaf.public_key().subject_public_key.data.as_ref();
    if attested != expected.public_key {
        return Err(Error::Binding("the attested key is not the enrolled key".into()));
    }
    if let Some(challenge) = expected.challenge {
        if kd.challenge != challenge {
            return Err(Error::Binding("the attestation challenge is not this enrolment's".into()));
        }
    }
    // The attestation's own level: an old phone whose key lives in the TEE but whose
    // attestation was signed in software proves no more than software.
    let mut security = level(kd.attestation_security_level)?;
    level(kd.keymint_security_level)?;
    // A software attestation root vouches for nothing in hardware, whatever the leaf says.
    if !root.hardware {
        security = SecurityLevel::Software;
    }
    let hw = &kd.hardware;
    let packages = if kd.software.packages.is_empty() { &hw.packages } else { &kd.software.packages };
    if !expected.android_packages.is_empty() && !packages.iter().any(|p| expected.android_packages.contains(p)) {
        return Err(Error::Binding(format!("the key belongs to {packages:?}, not this app")));
    }
    let rot = hw.root_of_trust.as_ref();
    let device = [hw.brand.as_deref(), hw.model.as_deref()].into_iter().flatten().collect::<Vec<_>>().join(" ");
    Ok(Verdict {
        platform: "android".into(),
        security_level: security,
        root: root.name.to_string(),
        device: (!device.is_empty()).then_some(device),
        verified_boot: rot.map(|r| boot_state(r.verified_boot_state).to_string()),
        device_locked: rot.map(|r| r.device_locked),
        os_version: hw.os_version,
        os_patch_level: hw.os_patch_level,
        app_id: packages.first().cloned(),
        environment: None,
        attestation_version: Some(kd.attestation_version),
    })
}
