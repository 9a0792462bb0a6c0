//! Formats the field already holds: a bundle and a service record exported by the v1 code
//! (commit 3076772, before session keys and seals) verify with every later version, and a
//! single flipped byte in any of their members still fails. These files are kept forever.

use std::io::{Read, Write};
use std::path::PathBuf;

use onsite_core::bundle::verify::{verify_bytes, Options};
use onsite_core::hash::unhex;
use onsite_core::profile::{verify_record, VerifyOptions};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/v1")
}

fn key(name: &str) -> Vec<u8> {
    let text = std::fs::read_to_string(fixtures().join("keys.txt")).unwrap();
    let hex = text.lines().find_map(|l| l.strip_prefix(&format!("{name}="))).unwrap();
    unhex(hex).unwrap()
}

fn bundle() -> Vec<u8> {
    std::fs::read(fixtures().join("bundle-WO-20261123-0001.zip")).unwrap()
}

fn options() -> Options {
    Options {
        device_key: Some(key("device_key")),
        time_authority: Some(key("time_authority")),
        log_key: Some(key("log_key")),
        utc_offset_minutes: None,
        attestation_trust: None,
        witness_policy: None,
    }
}

fn members(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    (0..z.len())
        .map(|i| {
            let mut f = z.by_index(i).unwrap();
            let mut b = Vec::new();
            f.read_to_end(&mut b).unwrap();
            (f.name().unwrap().to_string(), b)
        })
        .collect()
}

fn rebuild(members: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, bytes) in members {
        w.start_file(name.as_str(), zip::write::SimpleFileOptions::default()).unwrap();
        w.write_all(bytes).unwrap();
    }
    w.finish().unwrap().into_inner()
}

#[test]
fn the_v1_bundle_verifies_with_every_check() {
    let r = verify_bytes(&bundle(), &options());
    let failed: Vec<_> = r.failures().map(|c| format!("{}: {}", c.check, c.detail)).collect();
    assert!(r.ok, "{failed:?}");
    assert_eq!(r.bundle_version, Some(1));
    assert!(r.checks.len() >= 28, "{}", r.checks.len());
    let text = r.render_text();
    assert!(text.contains("VERDICT: VALID") && text.contains("WO-20261123-0001"), "{text}");
    // Another device key (as a server would register it) is refused.
    let mut other = options();
    other.device_key = Some(key("log_key"));
    assert!(!verify_bytes(&bundle(), &other).ok);
}

#[test]
fn every_member_of_the_v1_bundle_still_catches_a_flipped_byte() {
    let ms = members(&bundle());
    assert!(ms.len() >= 10, "{}", ms.len());
    for (i, (name, bytes)) in ms.iter().enumerate() {
        // Every byte of the small members, a spread of positions in the large ones.
        let step = (bytes.len() / 64).max(1);
        for pos in (0..bytes.len()).step_by(step) {
            let mut t = ms.clone();
            t[i].1[pos] ^= 0x01;
            let r = verify_bytes(&rebuild(&t), &options());
            assert!(!r.ok, "{name} byte {pos} flipped, still valid");
        }
    }
}

#[test]
fn the_v1_service_record_verifies_and_a_flip_fails() {
    let bytes = std::fs::read(fixtures().join("service-record-eng-017.json")).unwrap();
    let opts = VerifyOptions { device_key: Some(key("device_key")), log_key: Some(key("log_key")), attestation_trust: None, witness_policy: None };
    let r = verify_record(&bytes, &opts);
    let failed: Vec<_> = r.checks.iter().filter(|c| !c.passed).map(|c| format!("{}: {}", c.check, c.detail)).collect();
    assert!(failed.is_empty(), "{failed:?}");
    assert!(r.checks.len() > 5);
    // Flip bytes inside the signed content (not JSON whitespace): every one is caught.
    let text = String::from_utf8(bytes.clone()).unwrap();
    let mut caught = 0;
    for (pos, ch) in text.char_indices().step_by(97) {
        if !ch.is_ascii_alphanumeric() {
            continue;
        }
        let mut t = bytes.clone();
        t[pos] = if ch == '0' { b'1' } else { b'0' };
        let r = verify_record(&t, &opts);
        assert!(!r.ok && r.checks.iter().any(|c| !c.passed), "byte {pos} ({ch}) changed, still valid");
        caught += 1;
    }
    assert!(caught > 100, "{caught}");
}

/// Hex in a record has one spelling: lowercase, as the device writes it. `A`–`F` for `a`–`f`
/// decodes to the same bytes and left every signature valid, so a record could be altered
/// without detection (the browser verifier agreed: 13–14 flips of 480 passed both).
#[test]
fn a_record_with_any_hex_digit_in_another_case_is_refused() {
    let bytes = std::fs::read(fixtures().join("service-record-eng-017.json")).unwrap();
    let opts = VerifyOptions { device_key: Some(key("device_key")), log_key: Some(key("log_key")), attestation_trust: None, witness_policy: None };
    assert!(verify_record(&bytes, &opts).ok);
    let mut tried = 0;
    let mut passed = Vec::new();
    // Every 10th letter a–f of the record (the whole file took minutes in a debug build).
    for (pos, b) in bytes.iter().enumerate().filter(|(_, b)| (b'a'..=b'f').contains(b)).step_by(10) {
        let mut t = bytes.clone();
        t[pos] = b.to_ascii_uppercase();
        tried += 1;
        if verify_record(&t, &opts).ok {
            passed.push(pos);
        }
    }
    assert!(tried > 500, "{tried}");
    assert!(passed.is_empty(), "{} of {tried} case flips still verify, at {:?}", passed.len(), &passed[..passed.len().min(10)]);
}
