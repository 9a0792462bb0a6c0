//! Replays every input the fuzzers found interesting (or that crashed once) through the
//! decoders of outside bytes. Inputs live in `core/tests/fuzz-crashers/<target>/`.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::Path;

fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-crashers").join(target);
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .map(|d| d.flatten().map(|e| (e.file_name().to_string_lossy().to_string(), std::fs::read(e.path()).unwrap_or_default())).collect())
        .unwrap_or_default();
    out.sort();
    out
}

#[test]
fn ingest_inputs_never_panic() {
    let cases = inputs("ingest");
    assert!(!cases.is_empty(), "the regression corpus is missing");
    for (name, bytes) in cases {
        let a = onsite_core::evidence::photo::analyze_bytes(&bytes, &Default::default());
        // Either a thumbnail or a reason, never neither.
        assert!(a.thumbnail.is_some() || !a.problems.is_empty(), "{name}");
    }
}

#[test]
fn stroke_and_document_inputs_never_panic() {
    for (_, bytes) in inputs("strokes") {
        let _ = onsite_core::signature::decode(&bytes);
    }
    for (_, bytes) in inputs("journal") {
        let entry = onsite_core::evidence::Entry { seq: 1, body: bytes.clone(), hash: String::new(), signature: vec![] };
        let _ = entry.body();
    }
}

#[test]
fn bundle_inputs_never_panic_and_only_the_real_one_verifies() {
    let cases = inputs("bundle");
    assert!(cases.len() >= 5, "the bundle regression corpus is missing");
    for (name, bytes) in cases {
        let r = onsite_core::bundle::verify_bytes(&bytes, &Default::default());
        let _ = r.render_text();
        assert_eq!(r.ok, name == "valid-thumbs.zip", "{name}: {}", r.render_text());
    }
}

#[test]
fn sync_inputs_never_panic_and_seeds_decode() {
    use onsite_core::sync::{authz, protocol};
    let cases = inputs("sync");
    assert!(cases.len() >= 4, "the sync regression corpus is missing");
    let mut decoded = 0;
    let mut expanded = 0;
    for (name, bytes) in cases {
        let _ = protocol::inflate(&bytes, 1 << 20);
        let _ = protocol::decode_response(&bytes);
        if let Ok(upload) = protocol::decode_journal_upload(&bytes) {
            for e in upload.entries {
                let _ = e.into_entry().body();
            }
            if let Ok(built) = onsite_core::sync::journal_wire::expand_built(&upload.compact, "dev", onsite_core::evidence::journal::ZERO_HASH, |_| None) {
                for (e, b) in &built {
                    assert_eq!(e.body().ok().as_ref(), Some(b.body()), "{name}");
                }
                let entries: Vec<_> = built.into_iter().map(|(e, _)| e).collect();
                let r = onsite_core::evidence::journal::verify(&entries, &onsite_core::evidence::journal::Keys::device(&[4u8; 65]), "dev", None);
                // The seed's seal holds only under its own device key.
                assert!(!r.ok() || entries.is_empty(), "{name}");
                expanded += usize::from(!entries.is_empty());
            }
        }
        if let Ok(req) = protocol::decode_request(&bytes) {
            decoded += 1;
            for push in &req.push {
                if let Ok(changes) = onsite_core::order::document::parse_changes(&[&push.changes]) {
                    let full: Vec<_> = changes.iter().map(|c| (c.hash(), c.deps().to_vec())).collect();
                    assert_eq!(onsite_core::order::document::change_links(&[&push.changes]).ok(), Some(full), "{name}");
                }
                // As the server applies a push (onto an empty document here, which has the
                // shape trivially): the check of what it wrote agrees with the whole check.
                let mut doc = automerge::AutoCommit::new();
                if let Ok(pushed) = onsite_core::order::document::apply_pushed(&mut doc, &push.changes) {
                    if let Ok(o) = autosurgeon::hydrate::<_, onsite_core::WorkOrder>(&doc) {
                        assert!(authz::check_engineer_change(&o, &o, &[], "dev", &[]).is_ok(), "{name}");
                        let whole = onsite_core::sync::shape::check_document(&doc, &o);
                        // Over the hydrate's own scans, as the server checks.
                        let (_, reader) = onsite_core::order::document::hydrate_reading(&doc).unwrap();
                        assert_eq!(onsite_core::sync::shape::check_read(&reader, &o), whole, "{name}");
                        if let Some(written) = pushed.written {
                            assert_eq!(onsite_core::sync::shape::check_touched(&reader, &o, &written).is_ok(), whole.is_ok(), "{name}");
                        }
                    }
                }
            }
        }
    }
    assert!(decoded >= 2, "the seed requests decode");
    assert!(expanded >= 1, "the compact journal seed expands");
}

#[test]
fn service_record_inputs_never_panic_and_only_the_real_one_verifies() {
    let cases = inputs("record");
    assert!(cases.len() >= 3, "the service record regression corpus is missing");
    for (name, bytes) in cases {
        let r = onsite_core::profile::verify_record(&bytes, &Default::default());
        assert_eq!(r.ok, name == "valid.json", "{name}: {}", r.text);
    }
}

#[test]
fn attestation_inputs_never_panic_and_never_verify() {
    use onsite_core::attest::{android, apple, Expected, Trust};
    let cases = inputs("attestation");
    assert!(!cases.is_empty(), "the regression corpus is missing");
    let trust = Trust::pinned();
    let apps = vec!["ABCDE12345.com.example".to_string()];
    let ex = Expected { public_key: &[4; 65], challenge: None, client_data: b"fuzz", apple_app_ids: &apps, android_packages: &[], at: 1_750_000_000 };
    for (name, bytes) in cases {
        assert!(android::parse_key_description(&bytes).is_err(), "{name}");
        assert!(apple::verify(&[0; 32], &bytes, &ex, &trust).is_err(), "{name}");
        let chain: Vec<Vec<u8>> = bytes.split(|b| *b == 0xff).map(<[u8]>::to_vec).collect();
        assert!(android::verify(&chain, &ex, &trust).is_err(), "{name}");
    }
}

#[test]
fn log_format_inputs_never_panic_and_never_open() {
    use onsite_core::evidence::log::note::{open_checkpoint, CheckpointBody, Note, NoteSigner, Verifier};
    use onsite_core::evidence::log::witness::{decide, AddCheckpoint, Cosigner, Policy, Witness};
    let cases = inputs("log");
    assert!(!cases.is_empty(), "the regression corpus is missing");
    let log = NoteSigner::from_seed("onsite/fuzz", &[1; 32]).unwrap();
    let key = Verifier::parse(&log.verifier_key()).unwrap();
    let w = Witness::parse(&Cosigner::from_seed("w", &[2; 32]).unwrap().verifier_key()).unwrap();
    for (name, bytes) in cases {
        let text = String::from_utf8_lossy(&bytes);
        assert!(open_checkpoint(&text, &key).is_err(), "{name}");
        let _ = CheckpointBody::parse(&text);
        assert!(Verifier::parse(&text).is_err() && Witness::parse(&text).is_err(), "{name}");
        if let Ok(note) = Note::parse(&text) {
            assert!(Policy { witnesses: vec![w.clone()], quorum: 1 }.check(&note).is_err(), "{name}");
        }
        if let Ok(req) = AddCheckpoint::parse(&text) {
            assert!(decide(&req, |_| Some(key.clone()), |_| None).is_err(), "{name}");
        }
    }
}
