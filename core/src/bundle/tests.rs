use std::io::Read;

use super::verify::Options;
use super::*;
use crate::device::testkit::{self, input, worked_order};
use crate::device::ExportOptions;

/// A device with a signed order, its bundle bytes, and the dir holding both.
fn signed_bundle(opts: ExportOptions) -> (tempfile::TempDir, crate::Device, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let clock = testkit::clock();
    let d = testkit::device(&dir.path().join("device"), clock.clone());
    worked_order(&d, &clock, "WO-1");
    d.sign_receipt("WO-1", &input()).unwrap();
    let out = dir.path().join("WO-1.zip");
    let s = d.export_bundle("WO-1", &out, opts).unwrap();
    let bytes = std::fs::read(&out).unwrap();
    assert_eq!(s.bytes, bytes.len() as u64);
    (dir, d, bytes)
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
    let mut w = archive::Writer::new(std::io::Cursor::new(Vec::new()));
    for (n, b) in members {
        w.add(n, b, true).unwrap();
    }
    w.finish().unwrap().into_inner()
}

fn failed(r: &Report) -> Vec<String> {
    r.failures().map(|c| format!("{} {}", c.check, c.subject)).collect()
}

#[test]
fn an_exported_bundle_verifies_and_reports_who_what_where_when() {
    let (_dir, d, bytes) = signed_bundle(ExportOptions::default());
    let r = verify_bytes(
        &bytes,
        &Options {
            device_key: Some(d.public_key()),
            time_authority: None,
            log_key: None,
            utc_offset_minutes: None,
            attestation_trust: None,
            witness_policy: None,
        },
    );
    assert!(r.ok, "{}", r.render_text());
    let s = r.summary.as_ref().unwrap();
    assert_eq!((s.order.as_str(), s.revision, s.decision.as_str()), ("WO-1", 1, "signed"));
    assert_eq!(s.signer_name, "王女士");
    assert!(s.arrival_fix.as_ref().is_some_and(|f| (f.lat - 39.915).abs() < 1e-9 && !f.mock));
    assert!(s.photos >= 4 && s.journal_entries > 20);
    let names: Vec<String> = members(&bytes).into_iter().map(|(n, _)| n).collect();
    for want in ["manifest.json", "manifest.sig", "receipt/r1.json", "receipt/r1.signed.json", "signature/r1.oss1", "signature/r1.svg", "journal/order.json"] {
        assert!(names.iter().any(|n| n == want), "{want} in {names:?}");
    }
    assert_eq!(names.iter().filter(|n| n.starts_with("photos/")).count(), s.photos);
    let text = r.render_text();
    assert!(text.contains("VERDICT: VALID") && text.contains("Who:") && text.contains("Where:") && text.contains("When:"), "{text}");
    assert!(r.checks.iter().any(|c| c.check == "photo.binding" && c.passed));
    // Machines get the same as JSON.
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["ok"], true);
    // Another registered key: refused.
    let other = crate::evidence::SoftwareSigner::generate().unwrap();
    let r = verify_bytes(
        &bytes,
        &Options {
            device_key: Some(crate::evidence::Signer::public_key(&other)),
            time_authority: None,
            log_key: None,
            utc_offset_minutes: None,
            attestation_trust: None,
            witness_policy: None,
        },
    );
    assert_eq!(failed(&r), vec!["device.key manifest.json"]);
}

#[test]
fn thumbnails_only_bundles_are_smaller_and_still_verify() {
    let (_dir, _d, full) = signed_bundle(ExportOptions::default());
    let (_dir2, _d2, small) = signed_bundle(ExportOptions { thumbnails_only: true });
    let r = verify_bytes(&small, &Options::default());
    assert!(r.ok, "{}", r.render_text());
    assert!(members(&small).iter().any(|(n, _)| n.starts_with("thumbs/")));
    assert!(!members(&small).iter().any(|(n, _)| n.starts_with("photos/")));
    assert!(full.len() > small.len() / 2, "{} vs {}", full.len(), small.len());
}

/// Change bytes of every member (keeping the manifest, or re-hashing it as a forger would):
/// verification fails and names the member.
#[test]
fn mutating_any_member_fails_and_names_it() {
    let (_dir, _d, bytes) = signed_bundle(ExportOptions::default());
    let orig = members(&bytes);
    let mut cases = 0;
    for (i, (name, body)) in orig.iter().enumerate() {
        let positions: Vec<usize> = if body.len() <= 96 { (0..body.len()).collect() } else { (0..48).map(|k| k * (body.len() - 1) / 47).collect() };
        for pos in positions {
            let mut m = orig.clone();
            m[i].1[pos] ^= 0x20;
            let r = verify_bytes(&rebuild(&m), &Options::default());
            assert!(!r.ok, "{name} byte {pos} flipped, still valid");
            let f = failed(&r);
            assert!(f.iter().any(|x| x.ends_with(name.as_str()) || x.contains("manifest")), "{name} byte {pos}: {f:?}");
            cases += 1;
        }
    }
    assert!(cases > 400, "{cases}");
    // A forger who rewrites a photo and its manifest entry is caught by the manifest signature
    // and by the journal, which binds the original hash.
    let mut m = orig.clone();
    let pi = m.iter().position(|(n, _)| n.starts_with("photos/")).unwrap();
    m[pi].1[10] ^= 1;
    let new_sha = crate::hash::sha256_hex(&m[pi].1);
    let manifest = String::from_utf8(m[0].1.clone()).unwrap();
    let old_sha = m[pi].0.trim_start_matches("photos/").trim_end_matches(".jpg").to_string();
    m[0].1 = manifest.replace(&old_sha, &new_sha).into_bytes();
    m[pi].0 = format!("photos/{new_sha}.jpg");
    let r = verify_bytes(&rebuild(&m), &Options::default());
    let f = failed(&r);
    assert!(f.contains(&"manifest.signature manifest.sig".to_string()), "{f:?}");
    assert!(f.iter().any(|x| x.starts_with("photo.present")), "{f:?}");
}

/// Flipping bytes of the archive file itself never yields a valid bundle or a panic.
#[test]
fn raw_archive_corruption_is_caught() {
    let (_dir, _d, bytes) = signed_bundle(ExportOptions::default());
    for k in 0..200 {
        let pos = k * (bytes.len() - 1) / 199;
        let mut b = bytes.clone();
        b[pos] ^= 0x55;
        let r = verify_bytes(&b, &Options::default());
        // A flip in zip padding fields (e.g. timestamps, version-made-by) may be harmless;
        // content is always covered by hashes and CRCs.
        if r.ok {
            assert_eq!(
                members(&b).iter().map(|(_, c)| c.clone()).collect::<Vec<_>>(),
                members(&bytes).iter().map(|(_, c)| c.clone()).collect::<Vec<_>>(),
                "byte {pos}"
            );
        }
    }
    for cut in [0, 10, 100, bytes.len() / 2, bytes.len() - 1] {
        let r = verify_bytes(&bytes[..cut], &Options::default());
        assert!(!r.ok);
        assert_eq!(r.checks[0].check, "archive.structure", "truncated at {cut}");
    }
}

#[test]
fn hostile_archives_are_refused_and_nothing_escapes_on_extract() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("out");
    let raw_zip = |entries: &[(&str, &[u8])]| -> Vec<u8> {
        let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for (n, b) in entries {
            z.start_file(*n, zip::write::SimpleFileOptions::default()).unwrap();
            std::io::Write::write_all(&mut z, b).unwrap();
        }
        z.finish().unwrap().into_inner()
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("parent traversal", raw_zip(&[("manifest.json", b"{}"), ("../evil.txt", b"x")])),
        ("nested traversal", raw_zip(&[("photos/../../evil.txt", b"x")])),
        ("absolute path", raw_zip(&[("/tmp/onsite-evil.txt", b"x")])),
        ("backslash", raw_zip(&[("..\\evil.txt", b"x")])),
        ("case duplicate", raw_zip(&[("a.json", b"1"), ("A.json", b"2")])),
    ];
    for (what, bytes) in &cases {
        let r = verify_bytes(bytes, &Options::default());
        assert!(!r.ok, "{what}");
        assert_eq!(r.checks[0].check, "archive.structure", "{what}: {:?}", r.checks);
        assert!(archive::extract(std::io::Cursor::new(bytes), &target).is_err(), "{what}");
    }
    // Exact duplicates (the zip writer refuses them, so patch a second name into the first).
    let mut dup = raw_zip(&[("photos/aaaa", b"1"), ("photos/aaab", b"2")]);
    let from = b"photos/aaab";
    let mut i = 0;
    while i + from.len() <= dup.len() {
        if &dup[i..i + from.len()] == from {
            dup[i + from.len() - 1] = b'a';
        }
        i += 1;
    }
    let r = verify_bytes(&dup, &Options::default());
    assert!(!r.ok && r.checks[0].check == "archive.structure", "{:?}", r.checks);
    assert!(archive::extract(std::io::Cursor::new(&dup), &target).is_err());
    // Nothing was written anywhere: not the target, not its parent.
    assert!(!dir.path().join("evil.txt").exists());
    assert!(!std::path::Path::new("/tmp/onsite-evil.txt").exists());
    assert!(std::fs::read_dir(&target).map(|d| d.count()).unwrap_or(0) == 0);

    // A zip bomb: 200 MB of zeros deflate to ~200 KB; refused from the headers.
    let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    z.start_file("manifest.json", zip::write::SimpleFileOptions::default().large_file(true)).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..200 {
        std::io::Write::write_all(&mut z, &zeros).unwrap();
    }
    let bomb = z.finish().unwrap().into_inner();
    assert!(bomb.len() < 1 << 20);
    let r = verify_bytes(&bomb, &Options::default());
    assert!(!r.ok && r.checks[0].check == "archive.structure" && r.checks[0].detail.contains("bytes"), "{:?}", r.checks);

    // A safe bundle extracts inside the target only, and never over existing files.
    let (_d2, _dev, good) = signed_bundle(ExportOptions { thumbnails_only: true });
    let written = archive::extract(std::io::Cursor::new(&good), &target).unwrap();
    let root = target.canonicalize().unwrap();
    assert!(written.iter().all(|p| p.starts_with(&root)));
    assert!(archive::extract(std::io::Cursor::new(&good), &target).is_err(), "no overwrite");
}

#[test]
fn lying_manifests_and_unknown_versions_are_refused() {
    let (_dir, d, bytes) = signed_bundle(ExportOptions { thumbnails_only: true });
    let orig = members(&bytes);
    // An unlisted member slipped in.
    let mut m = orig.clone();
    m.push(("photos/extra.jpg".into(), b"not listed".to_vec()));
    assert!(failed(&verify_bytes(&rebuild(&m), &Options::default())).contains(&"member.listed photos/extra.jpg".to_string()));
    // A listed member removed.
    let mut m = orig.clone();
    let gone = m.iter().position(|(n, _)| n == "signature/r1.svg").unwrap();
    m.remove(gone);
    let f = failed(&verify_bytes(&rebuild(&m), &Options::default()));
    assert!(f.contains(&"member.hash signature/r1.svg".to_string()), "{f:?}");

    // Manifests re-signed by the device key itself (so the signature holds) that lie about
    // sizes, or claim another version, are still refused.
    let signer = d.store().signer().unwrap();
    let resign = |m: &mut Vec<(String, Vec<u8>)>, manifest: serde_json::Value| {
        let b = crate::jcs::to_vec(&manifest).unwrap();
        let sig = crate::evidence::signer::normalize(&signer.sign(&b).unwrap()).unwrap();
        m[0].1 = b;
        m[1].1 = crate::hash::hex(&sig).into_bytes();
    };
    let manifest: serde_json::Value = serde_json::from_slice(&orig[0].1).unwrap();
    let mut lie = manifest.clone();
    lie["members"][0]["size"] = serde_json::json!(1);
    let mut m = orig.clone();
    resign(&mut m, lie);
    let f = failed(&verify_bytes(&rebuild(&m), &Options::default()));
    assert_eq!(f.len(), 1, "{f:?}");
    assert!(f[0].starts_with("member.hash"));
    let mut future = manifest.clone();
    future["version"] = serde_json::json!(3);
    let mut m = orig.clone();
    resign(&mut m, future);
    let r = verify_bytes(&rebuild(&m), &Options::default());
    assert_eq!(failed(&r), vec!["manifest.version manifest.json"]);
    assert_eq!(r.bundle_version, Some(3));
    // Not canonical JSON at all.
    let mut m = orig.clone();
    m[0].1 = b"{ \"format\": \"onsite.bundle\" }".to_vec();
    assert_eq!(failed(&verify_bytes(&rebuild(&m), &Options::default())), vec!["manifest.canonical manifest.json"]);
    // A forger replacing the device key and re-signing the manifest still fails: the journal
    // and the receipt are signed by the original key.
    let forger = crate::evidence::SoftwareSigner::generate().unwrap();
    let mut swapped = manifest.clone();
    swapped["device"]["public_key"] = serde_json::json!(crate::hash::hex(&crate::evidence::Signer::public_key(&forger)));
    let b = crate::jcs::to_vec(&swapped).unwrap();
    let mut m = orig.clone();
    m[1].1 = crate::hash::hex(&crate::evidence::Signer::sign(&forger, &b).unwrap()).into_bytes();
    m[0].1 = b;
    let f = failed(&verify_bytes(&rebuild(&m), &Options::default()));
    assert!(f.iter().any(|x| x.starts_with("journal.chain")) && f.iter().any(|x| x.starts_with("receipt.signature")), "{f:?}");
}

#[test]
fn a_time_ticket_gives_the_signing_a_trusted_interval() {
    use crate::Clock;
    let dir = tempfile::tempdir().unwrap();
    let clock = testkit::clock();
    let authority = crate::evidence::time::TimeAuthority::generate().unwrap();
    let mut o = crate::device::testkit::options(dir.path().join("device")).with_clock(clock.clone());
    o.time_authority = Some(authority.public_key());
    let d = crate::Device::open(o).unwrap();
    let ticket = authority.issue(d.device_id(), "n1", clock.now().timestamp_millis()).unwrap();
    d.accept_time_ticket(ticket, 150).unwrap();
    worked_order(&d, &clock, "WO-1");
    let signed = d.sign_receipt("WO-1", &input()).unwrap();
    let out = dir.path().join("b.zip");
    d.export_bundle("WO-1", &out, ExportOptions::default()).unwrap();
    let r = verify_file(&out, &Options::default());
    assert!(r.ok, "{}", r.render_text());
    assert!(r.checks.iter().any(|c| c.check == "journal.tickets" && c.passed));
    let (lo, hi) = r.summary.as_ref().unwrap().signed_trusted.clone().unwrap();
    let at = crate::receipt::build::rfc3339(crate::order::Timestamp(signed.signed_at_ms));
    assert!(lo <= at && at <= hi, "{lo} <= {at} <= {hi}");
    assert!(r.render_text().contains("server time ticket"));
    // Trusting another authority: no interval, and the report says the times are the device's.
    let stranger = crate::evidence::time::TimeAuthority::generate().unwrap();
    let r = verify_file(
        &out,
        &Options {
            device_key: None,
            time_authority: Some(stranger.public_key()),
            log_key: None,
            utc_offset_minutes: None,
            attestation_trust: None,
            witness_policy: None,
        },
    );
    assert!(r.summary.as_ref().unwrap().signed_trusted.is_none());
    assert!(r.render_text().contains("times are the device's own"));
}

/// A photo reused on many orders keeps its journal payload small enough to stay inline, so
/// its binding to the step remains verifiable (found by `onsite bench receipt`).
#[test]
fn a_photo_reused_on_many_orders_still_binds_to_its_step() {
    let dir = tempfile::tempdir().unwrap();
    let clock = testkit::clock();
    let d = testkit::device(&dir.path().join("device"), clock.clone());
    let first_photo = crate::evidence::photo::tests::make_jpeg(96, 64, 1, None);
    for i in 0..12 {
        let id = format!("WO-OLD-{i}");
        d.import_orders_json(&crate::order::import::tests::sample_json(&id)).unwrap();
        d.ingest_photo(&id, None, crate::device::PhotoSource::Bytes(&first_photo), None).unwrap();
    }
    worked_order(&d, &clock, "WO-1");
    d.sign_receipt("WO-1", &input()).unwrap();
    let out = dir.path().join("b.zip");
    d.export_bundle("WO-1", &out, ExportOptions { thumbnails_only: true }).unwrap();
    let r = verify_file(&out, &Options::default());
    assert!(r.ok, "{}", r.render_text());
    let photo = d.journal(Some("WO-1")).unwrap().into_iter().map(|e| e.body().unwrap()).find(|b| b.kind == "photo").unwrap();
    let payload = photo.payload.expect("inline payload");
    assert_eq!(payload["reused_total"], 12);
    assert_eq!(payload["reused_on"].as_array().unwrap().len(), crate::device::REUSE_HITS_JOURNALED);
}
