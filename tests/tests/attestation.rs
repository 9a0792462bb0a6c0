//! Key attestation at enrolment against a real server on loopback: the policies (`off`,
//! `record`, `require`), the binding of a chain to this enrolment (challenge, key), expiry,
//! revocation, and the verdict kept with the device. Chains come from a test CA (rcgen)
//! pinned for the test, as real chains carry other enrolments' challenges.

use base64::Engine;
use onsite_core::attest::{Evidence, Policy, Trust};
use onsite_core::Device;
use onsite_server::service::attestation::AttestationConfig;
use onsite_tests::attest::{key_description, TestCa};
use onsite_tests::net::{TestServer, PROVIDER};

const PACKAGE: &str = "com.kuaige.onsite.sample";

fn server(ca: &TestCa, policy: Policy, status_list: Option<&str>) -> TestServer {
    let mut trust = Trust::pinned().with_root(ca.pinned());
    if let Some(list) = status_list {
        trust = trust.with_status_list(list.as_bytes()).unwrap();
    }
    TestServer::start_with(|c| {
        c.attestation = AttestationConfig { default_policy: policy, android_packages: vec![PACKAGE.into()], trust, ..Default::default() };
    })
}

fn evidence(chain: &[Vec<u8>]) -> Evidence {
    Evidence::AndroidKeyChain { chain: chain.iter().map(|c| base64::engine::general_purpose::STANDARD.encode(c)).collect() }
}

fn device(dir: &tempfile::TempDir) -> Device {
    Device::open(onsite_tests::options(dir.path().join("d"))).unwrap()
}

fn device_attestation(s: &TestServer, id: &str) -> serde_json::Value {
    let list = s.dispatcher.devices().unwrap();
    list.as_array().unwrap().iter().find(|d| d["id"] == id).unwrap()["attestation"].clone()
}

#[test]
fn require_accepts_only_a_hardware_key_attested_for_this_enrolment() {
    let ca = TestCa::new();
    let s = server(&ca, Policy::Require, None);
    let dir = tempfile::tempdir().unwrap();
    let d = device(&dir);
    let key = d.public_key();
    let code = s.dispatcher.enrolment_code("eng-1").unwrap();
    let challenge = Device::attestation_challenge(&code);
    let refused = |ev: Option<Evidence>, what: &str| {
        let e = d.enrol_attested(&s.transport(), &s.url(), &code, ev).err().unwrap_or_else(|| panic!("{what}: enrolled"));
        assert!(e.to_string().contains("attestation"), "{what}: {e}");
    };
    refused(None, "no attestation");
    let other_code = Device::attestation_challenge("ABCD-EFGH-JKLM");
    refused(Some(evidence(&ca.chain(&key, key_description(&other_code, 2, PACKAGE), 2020, 2040))), "another enrolment's challenge");
    let other = onsite_core::evidence::SoftwareSigner::generate().unwrap();
    refused(Some(evidence(&ca.chain(&onsite_core::evidence::Signer::public_key(&other), key_description(&challenge, 2, PACKAGE), 2020, 2040))), "another key");
    refused(Some(evidence(&ca.chain(&key, key_description(&challenge, 0, PACKAGE), 2020, 2040))), "a software key");
    refused(Some(evidence(&ca.chain(&key, key_description(&challenge, 2, PACKAGE), 2020, 2021))), "an expired chain");
    refused(Some(evidence(&ca.chain(&key, key_description(&challenge, 2, "com.example.other"), 2020, 2040))), "another app's key");
    let stranger = TestCa::new();
    refused(Some(evidence(&stranger.chain(&key, key_description(&challenge, 2, PACKAGE), 2020, 2040))), "an unknown root");
    assert!(s.dispatcher.devices().unwrap().as_array().unwrap().iter().all(|x| x["id"] != d.device_id()), "nothing enrolled yet");
    // The refusals left the one-time code unused: the right chain enrols with it.
    let ok = d.enrol_attested(&s.transport(), &s.url(), &code, Some(evidence(&ca.chain(&key, key_description(&challenge, 2, PACKAGE), 2020, 2040)))).unwrap();
    let verdict = ok.attestation.expect("a verdict");
    assert_eq!(verdict.security_level, onsite_core::attest::SecurityLevel::StrongBox);
    assert!(verdict.summary().contains("StrongBox") && verdict.summary().contains("Test Phone"), "{}", verdict.summary());
    let stored = device_attestation(&s, d.device_id());
    assert_eq!(stored["attested"], true);
    assert_eq!(stored["verdict"]["security_level"], "strong_box");
    assert_eq!(stored["verdict"]["verified_boot"], "verified");
    assert_eq!(stored["verdict"]["app_id"], PACKAGE);
    assert!(d.sync(&s.transport(), &Default::default(), None).unwrap().complete(), "the attested device syncs");
}

#[test]
fn record_accepts_every_device_and_keeps_the_verdict_or_the_reason() {
    let ca = TestCa::new();
    let s = server(&ca, Policy::Record, None);
    let (a_dir, b_dir, c_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b, c) = (device(&a_dir), device(&b_dir), device(&c_dir));
    s.enrol(&a, "eng-1");
    let stored = device_attestation(&s, a.device_id());
    assert_eq!((stored["attested"].clone(), stored["problem"].clone()), (serde_json::json!(false), serde_json::json!("no attestation was sent")));
    let code = s.dispatcher.enrolment_code("eng-1").unwrap();
    let wrong = ca.chain(&b.public_key(), key_description(b"not this enrolment", 1, PACKAGE), 2020, 2040);
    let r = b.enrol_attested(&s.transport(), &s.url(), &code, Some(evidence(&wrong))).unwrap();
    assert!(r.attestation.is_none());
    let stored = device_attestation(&s, b.device_id());
    assert_eq!(stored["attested"], false);
    assert!(stored["problem"].as_str().unwrap().contains("not bound to this enrolment"), "{stored}");
    let code = s.dispatcher.enrolment_code("eng-1").unwrap();
    let tee = ca.chain(&c.public_key(), key_description(&Device::attestation_challenge(&code), 1, PACKAGE), 2020, 2040);
    c.enrol_attested(&s.transport(), &s.url(), &code, Some(evidence(&tee))).unwrap();
    assert_eq!(device_attestation(&s, c.device_id())["verdict"]["security_level"], "tee");
}

#[test]
fn a_revoked_key_and_per_provider_policies() {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let d = device(&dir);
    let probe = ca.chain(&d.public_key(), key_description(b"x", 2, PACKAGE), 2020, 2040);
    // Google's status list names serials; this CA's leaves get fresh random serials, so
    // revoke the root's (every chain of this CA carries it).
    let list = format!(r#"{{"entries": {{"{}": {{"status": "REVOKED", "reason": "KEY_COMPROMISE"}}}}}}"#, TestCa::serial(&probe[1]));
    let s = server(&ca, Policy::Require, Some(&list));
    let code = s.dispatcher.enrolment_code("eng-1").unwrap();
    let chain = ca.chain(&d.public_key(), key_description(&Device::attestation_challenge(&code), 2, PACKAGE), 2020, 2040);
    let e = d.enrol_attested(&s.transport(), &s.url(), &code, Some(evidence(&chain))).unwrap_err();
    assert!(e.to_string().contains("revoked"), "{e}");
    // Off for everyone but this provider: another provider's devices enrol unattested.
    let ca2 = TestCa::new();
    let s2 = TestServer::start_with(|c| {
        c.attestation = AttestationConfig {
            per_provider: [(PROVIDER.to_string(), Policy::Require)].into(),
            trust: Trust::pinned().with_root(ca2.pinned()),
            ..Default::default()
        };
    });
    let code = s2.dispatcher.enrolment_code("eng-1").unwrap();
    assert!(d.enrol_attested(&s2.transport(), &s2.url(), &code, None).is_err(), "{PROVIDER} requires it");
    assert_eq!(s2.running.service.attestation_policy("another-provider"), Policy::Off);
}

/// The attestation travels with the evidence: a bundle from an attested device carries it,
/// and the offline verifier re-checks it against the device key the manifest names (and
/// says so in the report); with roots it does not trust, the check fails; a device that
/// never sent one is reported as not attested.
#[test]
fn bundles_carry_the_attestation_and_the_verifier_rechecks_it() {
    let ca = TestCa::new();
    let s = server(&ca, Policy::Record, None);
    let bundle_of = |d: &Device, dir: &std::path::Path| {
        let id = onsite_tests::complete_sample_order(d);
        let out = dir.join("bundle.zip");
        d.export_bundle(id, &out, Default::default()).unwrap();
        out
    };
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = device(&a_dir);
    let code = s.dispatcher.enrolment_code("eng-1").unwrap();
    let chain = ca.chain(&a.public_key(), key_description(&Device::attestation_challenge(&code), 2, PACKAGE), 2020, 2040);
    a.enrol_attested(&s.transport(), &s.url(), &code, Some(evidence(&chain))).unwrap();
    let bundle = bundle_of(&a, a_dir.path());
    let trusting = onsite_core::bundle::verify::Options { attestation_trust: Some(Trust::pinned().with_root(ca.pinned())), ..Default::default() };
    let report = onsite_core::bundle::verify_file(&bundle, &trusting);
    assert!(report.ok, "{}", report.render_text());
    assert!(report.checks.iter().any(|c| c.check == "key.attestation" && c.passed));
    assert!(report.render_text().contains("key attested: StrongBox, onsite Test Phone, verified boot state verified"), "{}", report.render_text());
    let stranger = onsite_core::bundle::verify_file(&bundle, &Default::default());
    assert!(stranger.checks.iter().any(|c| c.check == "key.attestation" && !c.passed), "a root the verifier does not trust");
    // The service record (résumé) carries it too, under the device's signature.
    let record = a_dir.path().join("record.json");
    a.export_service_record(&record).unwrap();
    let opts = onsite_core::profile::VerifyOptions { attestation_trust: Some(Trust::pinned().with_root(ca.pinned())), ..Default::default() };
    let r = onsite_core::profile::verify_record_file(&record, &opts);
    assert!(r.ok, "{}", r.text);
    assert!(r.key_attested.as_deref().is_some_and(|k| k.starts_with("StrongBox")) && r.text.contains("device key attested: StrongBox"), "{}", r.text);
    assert!(!onsite_core::profile::verify_record_file(&record, &Default::default()).ok, "a root the verifier does not trust");
    let b = device(&b_dir);
    s.enrol(&b, "eng-1");
    let plain = onsite_core::bundle::verify_file(&bundle_of(&b, b_dir.path()), &trusting);
    assert!(plain.ok && plain.render_text().contains("key not attested"), "{}", plain.render_text());
    let record = b_dir.path().join("record.json");
    b.export_service_record(&record).unwrap();
    let r = onsite_core::profile::verify_record_file(&record, &Default::default());
    assert!(r.ok && r.key_attested.is_none() && r.text.contains("device key not attested"), "{}", r.text);
}
