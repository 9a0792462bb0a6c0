//! Attestation against real devices' data (../shared/attestation, read in place) at fixed
//! times, and against chains a test CA makes (for the bindings real chains cannot show).

use std::path::PathBuf;

use base64::Engine;

use super::*;

fn shared() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/attestation")
}

fn b64(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD.decode(s.trim()).unwrap()
}

/// DER certificates of a PEM chain file.
fn pem_chain(path: &std::path::Path) -> Vec<Vec<u8>> {
    let text = std::fs::read_to_string(path).unwrap();
    text.split("-----BEGIN CERTIFICATE-----")
        .skip(1)
        .map(|block| b64(&block.split("-----END CERTIFICATE-----").next().unwrap().replace(['\n', '\r'], "")))
        .collect()
}

/// The parsed view beside a chain (some files open with a `//` comment line).
fn json_of(path: &std::path::Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap();
    let body: String = text.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn leaf_key(chain: &[Vec<u8>]) -> Vec<u8> {
    let (_, leaf) = X509Certificate::from_der(&chain[0]).unwrap();
    leaf.public_key().subject_public_key.data.to_vec()
}

/// A fixed time inside every certificate's validity: a day after the latest notBefore.
fn inside(chain: &[Vec<u8>]) -> i64 {
    let certs: Vec<X509Certificate<'_>> = chain.iter().map(|d| X509Certificate::from_der(d).unwrap().1).collect();
    let start = certs.iter().map(|c| c.validity().not_before.timestamp()).max().unwrap() + 86_400;
    assert!(certs.iter().all(|c| c.validity().not_after.timestamp() > start));
    start
}

fn expect<'a>(key: &'a [u8], challenge: Option<&'a [u8]>, at: i64) -> Expected<'a> {
    Expected { public_key: key, challenge, client_data: b"", apple_app_ids: &[], android_packages: &[], at }
}

#[test]
fn every_real_android_chain_verifies_with_its_security_level() {
    let dir = shared().join("android");
    let mut checked = 0;
    for e in std::fs::read_dir(&dir).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if !name.ends_with(".pem") || name.starts_with("invalid_") {
            continue;
        }
        let json = json_of(&dir.join(name.replace(".pem", ".json")));
        let chain = pem_chain(&e.path());
        let key = leaf_key(&chain);
        let at = inside(&chain);
        let challenge = b64(json["attestationChallenge"].as_str().unwrap());
        let v = android::verify(&chain, &expect(&key, Some(&challenge), at), &Trust::pinned()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let want = match json["attestationSecurityLevel"].as_str().unwrap() {
            "STRONG_BOX" => SecurityLevel::StrongBox,
            "TRUSTED_ENVIRONMENT" => SecurityLevel::Tee,
            _ => SecurityLevel::Software,
        };
        assert_eq!(v.security_level, want, "{name}: {v:?}");
        assert_eq!(name.contains("_SB_"), want == SecurityLevel::StrongBox, "{name}");
        if let Some(model) = json["hardwareEnforced"]["attestationIdModel"].as_str() {
            assert!(v.device.as_deref().unwrap_or("").contains(model), "{name}: {v:?}");
        }
        if let Some(state) = json["hardwareEnforced"]["rootOfTrust"]["verifiedBootState"].as_str() {
            assert_eq!(v.verified_boot.as_deref().map(str::to_uppercase).map(|s| s.replace('-', "_")), Some(state.to_string()), "{name}");
        }
        assert_eq!(v.root.contains("2026"), name.contains("2026_ROOT"), "{name}: {}", v.root);
        // Another challenge, another key: refused.
        assert!(matches!(android::verify(&chain, &expect(&key, Some(b"another enrolment"), at), &Trust::pinned()), Err(Error::Binding(_))), "{name}");
        assert!(matches!(android::verify(&chain, &expect(&[4u8; 65], Some(&challenge), at), &Trust::pinned()), Err(Error::Binding(_))), "{name}");
        checked += 1;
    }
    assert_eq!(checked, 7);
}

#[test]
fn the_invalid_real_chains_are_refused_with_a_reason() {
    for name in ["invalid_malformed_rot_device_locked.pem", "invalid_tags_not_in_ascending_order.pem"] {
        let chain = pem_chain(&shared().join("android").join(name));
        let key = leaf_key(&chain);
        assert!(android::verify(&chain, &expect(&key, None, inside(&chain)), &Trust::pinned()).is_err(), "{name}");
        // The extension itself is refused, whatever else is wrong with the chain.
        let (_, leaf) = X509Certificate::from_der(&chain[0]).unwrap();
        let ext = leaf.extensions().iter().find(|e| e.oid.to_id_string() == android::KEY_DESCRIPTION_OID).unwrap();
        let e = android::parse_key_description(ext.value).unwrap_err();
        assert!(matches!(e, Error::Extension(_)), "{name}: {e}");
        eprintln!("{name}: {e}");
    }
}

#[test]
fn every_single_byte_flip_in_a_real_chain_is_refused() {
    let chain = pem_chain(&shared().join("android/tegu_sdk36_SB_EC_2026_ROOT.pem"));
    let key = leaf_key(&chain);
    let json = json_of(&shared().join("android/tegu_sdk36_SB_EC_2026_ROOT.json"));
    let challenge = b64(json["attestationChallenge"].as_str().unwrap());
    let trust = Trust::pinned();
    let at = inside(&chain);
    assert!(android::verify(&chain, &expect(&key, Some(&challenge), at), &trust).is_ok());
    let mut flips = 0;
    for c in 0..chain.len() {
        for i in 0..chain[c].len() {
            let mut bad = chain.clone();
            bad[c][i] ^= 0x01;
            assert!(android::verify(&bad, &expect(&key, Some(&challenge), at), &trust).is_err(), "flip in certificate {c} byte {i} accepted");
            flips += 1;
        }
    }
    assert!(flips > 2000, "{flips}");
    // An expired chain (after the leaf's notAfter).
    assert!(matches!(android::verify(&chain, &expect(&key, Some(&challenge), 2_600_000_000), &trust), Err(Error::Chain(_))));
    // A chain whose root is not pinned.
    let mut unpinned = Trust::pinned();
    unpinned.roots.retain(|r| r.name != "google-2026-ec");
    assert!(matches!(android::verify(&chain, &expect(&key, Some(&challenge), at), &unpinned), Err(Error::UnknownRoot(_))));
    // The chain cut short of its root.
    assert!(android::verify(&chain[..chain.len() - 1], &expect(&key, Some(&challenge), at), &trust).is_err());
}

/// The fields of one YAML document of Apple's test data (flat `key: value` lines).
fn apple_docs(path: &std::path::Path) -> Vec<std::collections::HashMap<String, String>> {
    let text = std::fs::read_to_string(path).unwrap();
    text.split("\n---")
        .map(|doc| {
            doc.lines()
                .filter(|l| !l.starts_with(' ') && l.contains(": "))
                .filter_map(|l| l.split_once(": ").map(|(k, v)| (k.trim().to_string(), v.trim().trim_matches('\'').to_string())))
                .collect()
        })
        .filter(|m: &std::collections::HashMap<String, String>| m.get("type").map(String::as_str) == Some("attestation"))
        .collect()
}

fn rfc3339_secs(s: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(s).unwrap().timestamp()
}

#[test]
fn real_app_attest_objects_verify_and_flips_are_refused() {
    let mut checked = 0;
    for v in ["14.2", "14.3", "14.4"] {
        for doc in apple_docs(&shared().join(format!("apple/ios-{v}.yaml"))) {
            let object = b64(&doc["attestationBase64"]);
            let key_id = b64(&doc["keyIdBase64"]);
            let client_data = b64(&doc["clientDataBase64"]);
            let app = vec![format!("{}.{}", doc["teamIdentifier"], doc["bundleIdentifier"])];
            let at = rfc3339_secs(&doc["timestamp"]);
            let ex = Expected { public_key: &[], challenge: None, client_data: &client_data, apple_app_ids: &app, android_packages: &[], at };
            let verdict = apple::verify(&key_id, &object, &ex, &Trust::pinned()).unwrap_or_else(|e| panic!("ios {v}: {e}"));
            assert_eq!(verdict.security_level, SecurityLevel::SecureEnclave);
            assert_eq!(verdict.environment.as_deref(), Some(doc["environment"].as_str()));
            // Another app, other client data (another enrolment), another key id: refused.
            let other_app = vec!["ABCDE12345.com.example.other".to_string()];
            assert!(matches!(apple::verify(&key_id, &object, &Expected { apple_app_ids: &other_app, ..ex }, &Trust::pinned()), Err(Error::Binding(_))));
            let ex2 = Expected { public_key: &[], challenge: None, client_data: b"another enrolment", apple_app_ids: &app, android_packages: &[], at };
            assert!(matches!(apple::verify(&key_id, &object, &ex2, &Trust::pinned()), Err(Error::Binding(_))));
            let mut other_id = key_id.clone();
            other_id[0] ^= 1;
            assert!(apple::verify(&other_id, &object, &ex, &Trust::pinned()).is_err());
            if checked == 0 {
                for i in 0..object.len() {
                    let mut bad = object.clone();
                    bad[i] ^= 0x01;
                    let e = apple::verify(&key_id, &bad, &ex, &Trust::pinned());
                    // The receipt (an Apple-signed blob the server could send to Apple) is not
                    // checked offline; a flip there changes nothing the verdict rests on.
                    if e.is_ok() {
                        assert!(in_receipt(&object, i), "flip at {i} accepted outside the receipt");
                    }
                }
            }
            checked += 1;
        }
    }
    assert!(checked >= 3, "{checked}");
}

/// Whether byte `i` of the object lies inside attStmt.receipt (its key, header or bytes).
fn in_receipt(object: &[u8], i: usize) -> bool {
    let value: ciborium::Value = ciborium::de::from_reader(object).unwrap();
    let receipt = value
        .as_map()
        .unwrap()
        .iter()
        .find(|(k, _)| k.as_text() == Some("attStmt"))
        .unwrap()
        .1
        .as_map()
        .unwrap()
        .iter()
        .find(|(k, _)| k.as_text() == Some("receipt"))
        .unwrap()
        .1
        .as_bytes()
        .unwrap()
        .clone();
    let start = object.windows(receipt.len()).position(|w| w == receipt.as_slice()).unwrap();
    let key = object.windows(8).position(|w| w == b"\x67receipt").unwrap();
    (key..start + receipt.len()).contains(&i)
}

/// A mutation fuzzer in the test suite (cargo-fuzz is not on this machine): the real leaf's
/// KeyDescription and a real App Attest object, flipped, cut, spliced and extended at
/// random, never panic the parsers.
#[test]
fn mutated_extensions_and_objects_never_panic() {
    use rand::{Rng, SeedableRng};
    let seed: u64 = std::env::var("ONSITE_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    eprintln!("attestation mutation seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let chain = pem_chain(&shared().join("android/caiman_sdk36_SB_EC_RKP.pem"));
    let (_, leaf) = X509Certificate::from_der(&chain[0]).unwrap();
    let ext = leaf.extensions().iter().find(|e| e.oid.to_id_string() == android::KEY_DESCRIPTION_OID).unwrap().value.to_vec();
    let doc = &apple_docs(&shared().join("apple/ios-14.4.yaml"))[0];
    let object = b64(&doc["attestationBase64"]);
    let apps = vec![format!("{}.{}", doc["teamIdentifier"], doc["bundleIdentifier"])];
    let ex = Expected { public_key: &[], challenge: None, client_data: b"x", apple_app_ids: &apps, android_packages: &[], at: rfc3339_secs(&doc["timestamp"]) };
    for round in 0..20_000 {
        for base in [&ext, &object] {
            let mut m = base.clone();
            for _ in 0..rng.gen_range(1..4) {
                let at = rng.gen_range(0..m.len().max(1));
                match rng.gen_range(0..4) {
                    0 if !m.is_empty() => m[at] ^= 1 << rng.gen_range(0..8),
                    1 => m.truncate(at),
                    2 => m.insert(at.min(m.len()), rng.gen()),
                    _ if !m.is_empty() => m[at] = [0x00, 0x80, 0xff, 0x1f, 0xbf][rng.gen_range(0..5)],
                    _ => {}
                }
            }
            let _ = android::parse_key_description(&m);
            if round % 10 == 0 {
                assert!(apple::verify(&b64(&doc["keyIdBase64"]), &m, &ex, &Trust::pinned()).is_err() || m == object);
            }
        }
    }
}

/// The pins are Google's and Apple's published roots (read in place from the test data),
/// and nothing else vouches for hardware.
#[test]
fn the_pinned_roots_are_the_published_ones() {
    let trust = Trust::pinned();
    let roots: Vec<String> = serde_json::from_slice(&std::fs::read(shared().join("android/google-roots.json")).unwrap()).unwrap();
    assert_eq!(roots.len(), 2);
    for pem in &roots {
        let der = b64(&pem.replace("-----BEGIN CERTIFICATE-----", "").replace("-----END CERTIFICATE-----", "").replace(['\n', '\r'], ""));
        let (_, cert) = X509Certificate::from_der(&der).unwrap();
        let pin = crate::hash::Sha256::digest(cert.public_key().raw);
        assert!(trust.roots.iter().any(|r| r.spki_sha256 == pin && r.hardware), "{} is not pinned", cert.subject());
    }
    let apple = pem_chain(&shared().join("apple/Apple_App_Attestation_Root_CA.pem"));
    let (_, cert) = X509Certificate::from_der(&apple[0]).unwrap();
    let pinned = trust.roots.iter().find(|r| r.name == "apple-app-attestation").unwrap();
    assert_eq!(pinned.spki_der.as_deref(), Some(cert.public_key().raw));
    assert_eq!(trust.roots.iter().filter(|r| r.hardware).count(), 3, "two Google roots and Apple's");
}
