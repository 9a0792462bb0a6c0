//! Evidence through the device: ingest, reuse detection, journal coverage and tampering.

use std::sync::Arc;

use chrono::TimeZone;

use super::photo::tests::{exif_orientation, make_jpeg};
use crate::device::PhotoSource;
use crate::evidence::journal::{Problem, ZERO_HASH};
use crate::evidence::time::TimeAuthority;
use crate::order::import::tests::sample_json;
use crate::{Actor, Device, Event, ManualClock};

fn device(dir: &std::path::Path, authority: Option<&TimeAuthority>) -> (Device, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::at(chrono::Utc.with_ymd_and_hms(2026, 11, 23, 2, 0, 0).unwrap()));
    let mut o = crate::device::testkit::options(dir).with_clock(clock.clone());
    o.time_authority = authority.map(|a| a.public_key());
    let d = Device::open(o).unwrap();
    d.import_orders_json(&format!("[{},{}]", sample_json("WO-1"), sample_json("WO-2"))).unwrap();
    (d, clock)
}

#[test]
fn ingest_detects_reuse_across_orders() {
    let dir = tempfile::tempdir().unwrap();
    let (d, _) = device(dir.path(), None);
    let jpeg = make_jpeg(1600, 1200, 9, Some(&exif_orientation(1)));
    let a = d.ingest_photo("WO-1", Some("repair_photo"), PhotoSource::Bytes(&jpeg), None).unwrap();
    assert!(a.new_blob && a.reused_on.is_empty());
    assert_eq!(a.analysis.exif.make.as_deref(), Some("ACME"));
    assert!(a.thumb_sha256.is_some());
    // The same bytes on another order: flagged, distance 0.
    let b = d.ingest_photo("WO-2", None, PhotoSource::Bytes(&jpeg), None).unwrap();
    assert!(!b.new_blob);
    assert_eq!(b.reused_on.len(), 1);
    assert_eq!((b.reused_on[0].order_id.as_str(), b.reused_on[0].distance), ("WO-1", 0));
    // A resized, recompressed copy: still caught by the perceptual hash.
    let copy = {
        let img = image::load_from_memory(&jpeg).unwrap().resize(1000, 750, image::imageops::FilterType::Triangle);
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 55).encode_image(&img.to_rgb8()).unwrap();
        out
    };
    let c = d.ingest_photo("WO-2", None, PhotoSource::Bytes(&copy), None).unwrap();
    assert!(c.reused_on.iter().any(|h| h.order_id == "WO-1" && h.distance <= super::super::device::NEAR_DUPLICATE_BITS), "{:?}", c.reused_on);
    // A different photo on the same order is not flagged.
    let other = make_jpeg(1600, 1200, 200, None);
    assert!(d.ingest_photo("WO-1", None, PhotoSource::Bytes(&other), None).unwrap().reused_on.is_empty());
    assert_eq!(d.photos("WO-1").unwrap().len(), 2);
    assert_eq!(d.blob(&a.sha256).unwrap(), jpeg);
}

#[test]
fn bad_photos_are_kept_or_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let (d, _) = device(dir.path(), None);
    assert!(matches!(
        d.ingest_photo("WO-1", None, PhotoSource::Bytes(b""), None),
        Err(crate::Error::Evidence(super::EvidenceError::Blob(super::blob::Error::Empty)))
    ));
    let heic = b"\0\0\0\x18ftypheic\0\0\0\0mif1heic-payload".to_vec();
    let r = d.ingest_photo("WO-1", None, PhotoSource::Bytes(&heic), None).unwrap();
    assert_eq!(r.analysis.problems, ["no thumbnail: unsupported format (HEIC) without the platform's decoder"]);
    assert!(r.thumb_sha256.is_none());
    assert_eq!(d.blob(&r.sha256).unwrap(), heic, "stored and hashed as evidence");
    assert!(matches!(d.ingest_photo("WO-404", None, PhotoSource::Bytes(&heic), None), Err(crate::Error::Store(_))));
}

#[test]
fn every_change_is_journaled_and_tampering_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let (d, clock) = device(dir.path(), None);
    d.transition("WO-1", Event::Accept, Actor::Engineer, None).unwrap();
    assert!(d.transition("WO-1", Event::Arrive, Actor::Engineer, None).is_err());
    d.add_note("WO-1", "called ahead").unwrap();
    d.start_checklist("WO-1", "onsite-repair").unwrap();
    d.answer("WO-1", "dress_badge", crate::sop::Answer::Confirmed).unwrap();
    d.ingest_photo("WO-1", None, PhotoSource::Bytes(&make_jpeg(64, 48, 1, None)), None).unwrap();
    clock.advance(chrono::Duration::minutes(1));
    let kinds: Vec<String> = d.journal(Some("WO-1")).unwrap().iter().map(|e| e.body().unwrap().kind).collect();
    assert_eq!(kinds, ["import", "transition", "note", "checklist_start", "answer", "photo", "seal"], "the refused transition wrote nothing");
    let report = d.verify_journal().unwrap();
    assert!(report.sealed(), "{report:?}");
    assert_eq!(report.entries, 9, "the session, two imports, five changes, the photo's seal");
    let signed: Vec<String> = d.journal(None).unwrap().iter().filter(|e| e.is_signed()).map(|e| e.body().unwrap().kind).collect();
    assert_eq!(signed, ["session_open", "seal"], "one device signature, one session signature");
    // Tamper with the database directly: flip one byte of one stored body.
    drop(d);
    let conn = crate::device::testkit::raw_db(dir.path());
    let body: Vec<u8> = conn.query_row("SELECT body FROM journal WHERE seq = 4", [], |r| r.get(0)).unwrap();
    let mut forged = body.clone();
    let pos = forged.iter().position(|&b| b == b'c').unwrap();
    forged[pos] = b'k';
    conn.execute("UPDATE journal SET body = ?1 WHERE seq = 4", [&forged]).unwrap();
    drop(conn);
    let d = Device::open(crate::device::testkit::options(dir.path())).unwrap();
    let report = d.verify_journal().unwrap();
    assert!(matches!(report.first_problem, Some(Problem::HashMismatch { seq: 4 })), "{report:?}");
}

#[test]
fn a_photo_byte_flip_is_caught_by_the_blob_check() {
    let dir = tempfile::tempdir().unwrap();
    let (d, _) = device(dir.path(), None);
    let jpeg = make_jpeg(64, 48, 3, None);
    let r = d.ingest_photo("WO-1", None, PhotoSource::Bytes(&jpeg), None).unwrap();
    for pos in (0..jpeg.len()).step_by(97) {
        let mut flipped = jpeg.clone();
        flipped[pos] ^= 0x01;
        std::fs::write(d.blob_path(&r.sha256), &flipped).unwrap();
        assert!(d.verify_blob(&r.sha256).is_err(), "flip at {pos}");
    }
}

#[test]
fn time_tickets_anchor_later_entries() {
    let dir = tempfile::tempdir().unwrap();
    let authority = TimeAuthority::generate().unwrap();
    let (d, clock) = device(dir.path(), Some(&authority));
    let server_now = 1_795_000_000_000;
    let ticket = authority.issue(d.device_id(), "nonce-1", server_now).unwrap();
    d.accept_time_ticket(ticket.clone(), 80).unwrap();
    // A ticket for another device, or from another authority, is refused.
    let stranger = TimeAuthority::generate().unwrap().issue(d.device_id(), "n", server_now).unwrap();
    assert!(d.accept_time_ticket(stranger, 10).is_err());
    assert!(d.accept_time_ticket(authority.issue("other-device", "n", server_now).unwrap(), 10).is_err());
    // Ten minutes later, with the phone's wall clock moved back a day.
    clock.advance(chrono::Duration::minutes(10));
    clock.set_wall(chrono::Utc.with_ymd_and_hms(2026, 11, 22, 2, 0, 0).unwrap());
    d.transition("WO-1", Event::Accept, Actor::Engineer, None).unwrap();
    let all = d.journal(None).unwrap();
    let kinds: Vec<String> = all.iter().map(|e| e.body().unwrap().kind).collect();
    assert!(kinds.contains(&"clock_jump".to_string()), "{kinds:?}");
    let accept = all.iter().rev().find(|e| e.body().unwrap().kind == "transition").unwrap().body().unwrap();
    let (lo, hi) = crate::evidence::time::trusted_interval(&accept, &all, &authority.public_key()).unwrap();
    let expected = server_now + 600_000;
    assert!(lo <= expected && expected <= hi + 80, "{lo}..{hi} vs {expected}");
    assert!(crate::evidence::journal::verify(&all, &crate::evidence::journal::Keys::device(&d.public_key()), d.device_id(), Some(ZERO_HASH)).ok());
}

#[test]
fn the_journal_refuses_another_key() {
    let dir = tempfile::tempdir().unwrap();
    let (d, _) = device(dir.path(), None);
    drop(d);
    let other = Arc::new(crate::evidence::SoftwareSigner::generate().unwrap());
    let r = Device::open(crate::device::testkit::options(dir.path()).with_signer(other));
    assert!(matches!(r, Err(crate::Error::Evidence(super::EvidenceError::KeyMismatch))));
}
