//! Android Key Attestation chains made by a test CA (rcgen): a root that tests pin, and a
//! leaf for any public key with a KeyDescription extension of the test's choosing. Real
//! chains carry other enrolments' challenges; these carry ours.

use rcgen::{BasicConstraints, CertificateParams, CustomExtension, DnType, IsCa, Issuer, KeyPair};

/// DER: a tag and its contents.
fn tlv(tag: &[u8], content: &[u8]) -> Vec<u8> {
    let mut out = tag.to_vec();
    match content.len() {
        n if n < 0x80 => out.push(n as u8),
        n if n < 0x100 => out.extend([0x81, n as u8]),
        n => out.extend([0x82, (n >> 8) as u8, n as u8]),
    }
    out.extend_from_slice(content);
    out
}

fn int(n: u32) -> Vec<u8> {
    let mut b: Vec<u8> = n.to_be_bytes().into_iter().skip_while(|&x| x == 0).collect();
    if b.first().is_none_or(|x| x & 0x80 != 0) {
        b.insert(0, 0);
    }
    tlv(&[0x02], &b)
}

fn enumerated(n: u8) -> Vec<u8> {
    tlv(&[0x0a], &[n])
}

/// `[tag] EXPLICIT` in context class, constructed (high tag numbers in long form).
fn explicit(tag: u32, inner: &[u8]) -> Vec<u8> {
    let t = if tag < 31 { vec![0xa0 | tag as u8] } else { vec![0xbf, 0x80 | (tag >> 7) as u8, (tag & 0x7f) as u8] };
    tlv(&t, inner)
}

/// A KeyDescription: `level` 0 software, 1 TEE, 2 StrongBox; a locked, verified boot.
pub fn key_description(challenge: &[u8], level: u8, package: &str) -> Vec<u8> {
    let app_id =
        tlv(&[0x30], &[tlv(&[0x31], &tlv(&[0x30], &[tlv(&[0x04], package.as_bytes()), int(1)].concat())), tlv(&[0x31], &tlv(&[0x04], &[7u8; 32]))].concat());
    let software = tlv(&[0x30], &explicit(709, &tlv(&[0x04], &app_id)));
    let rot = tlv(&[0x30], &[tlv(&[0x04], &[0u8; 32]), tlv(&[0x01], &[0xff]), enumerated(0), tlv(&[0x04], &[1u8; 32])].concat());
    let hardware = tlv(
        &[0x30],
        &[
            explicit(1, &tlv(&[0x31], &int(2))),
            explicit(2, &int(3)),
            explicit(10, &int(1)),
            explicit(702, &int(0)),
            explicit(704, &rot),
            explicit(705, &int(160000)),
            explicit(706, &int(202511)),
            explicit(710, &tlv(&[0x04], b"onsite")),
            explicit(717, &tlv(&[0x04], b"Test Phone")),
        ]
        .concat(),
    );
    tlv(&[0x30], &[int(300), enumerated(level), int(300), enumerated(level), tlv(&[0x04], challenge), tlv(&[0x04], b""), software, hardware].concat())
}

/// SubjectPublicKeyInfo DER of a SEC1 uncompressed P-256 point.
pub fn p256_spki(sec1: &[u8]) -> Vec<u8> {
    let mut der = onsite_core::hash::unhex("3059301306072a8648ce3d020106082a8648ce3d030107034200").expect("hex");
    der.extend_from_slice(sec1);
    der
}

/// A test CA: its root certificate (DER) and the root to pin.
pub struct TestCa {
    key: KeyPair,
    params: CertificateParams,
    pub root_der: Vec<u8>,
}

impl TestCa {
    pub fn new() -> Self {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("a P-256 key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, "Onsite test attestation root");
        let root_der = params.self_signed(&key).expect("self-signed").der().to_vec();
        Self { key, params, root_der }
    }

    /// The root pinned as a hardware root named `test-ca`.
    pub fn pinned(&self) -> onsite_core::attest::PinnedRoot {
        let (_, cert) = x509_parser::parse_x509_certificate(&self.root_der).expect("the root parses");
        onsite_core::attest::PinnedRoot {
            name: "test-ca",
            spki_sha256: onsite_core::hash::Sha256::digest(cert.public_key().raw),
            spki_der: None,
            hardware: true,
        }
    }

    /// A chain `[leaf, root]` attesting `sec1` with `description`, valid from `from` to
    /// `until` (years).
    pub fn chain(&self, sec1: &[u8], description: Vec<u8>, from: i32, until: i32) -> Vec<Vec<u8>> {
        let mut leaf = CertificateParams::new(Vec::<String>::new()).expect("params");
        leaf.distinguished_name.push(DnType::CommonName, "Android Keystore Key");
        leaf.not_before = rcgen::date_time_ymd(from, 1, 1);
        leaf.not_after = rcgen::date_time_ymd(until, 1, 1);
        leaf.custom_extensions.push(CustomExtension::from_oid_content(&[1, 3, 6, 1, 4, 1, 11129, 2, 1, 17], description));
        let spki = rcgen::SubjectPublicKeyInfo::from_der(&p256_spki(sec1)).expect("spki");
        let issuer = Issuer::new(self.params.clone(), &self.key);
        let leaf = leaf.signed_by(&spki, &issuer).expect("signed");
        vec![leaf.der().to_vec(), self.root_der.clone()]
    }

    /// The leaf's serial (lowercase hex), for a status list.
    pub fn serial(der: &[u8]) -> String {
        let (_, cert) = x509_parser::parse_x509_certificate(der).expect("parses");
        format!("{:x}", cert.serial)
    }
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}
