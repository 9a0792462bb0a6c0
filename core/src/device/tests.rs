//! Device tests: lifecycle, listing, compaction, two-device merge.

use std::sync::Arc;

use super::*;
use crate::clock::ManualClock;
use crate::order::import::tests::sample_json;
use crate::order::{self, Actor, Event, GpsFix, Status, Timestamp};
use crate::order::{LocationSource, TimeWindow};
use crate::sop;
use chrono::TimeZone;

fn device(dir: &std::path::Path, clock: Arc<ManualClock>) -> Device {
    Device::open(DeviceOptions::new(dir).with_clock(clock)).unwrap()
}

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::at(chrono::Utc.with_ymd_and_hms(2026, 11, 23, 1, 30, 0).unwrap()))
}

fn window(d: &Device) -> TimeWindow {
    TimeWindow { start: Timestamp(d.now().0 + 3_600_000), end: Timestamp(d.now().0 + 7_200_000) }
}

#[test]
fn full_lifecycle_is_recorded_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let d = device(dir.path(), clock.clone());
    assert_eq!(d.import_orders_json(&sample_json("WO-1")).unwrap(), vec!["WO-1"]);
    let fix = GpsFix { lat: 39.9, lon: 116.4, accuracy_m: 8.0, source: LocationSource::Gps, mock: false };
    let w = window(&d);
    let events =
        [Event::Accept, Event::ContactCustomer { window: w }, Event::Depart, Event::Arrive, Event::StartWork, Event::RequestSignature, Event::Complete];
    for e in events {
        clock.advance(chrono::Duration::minutes(10));
        if e == Event::Complete {
            let err = d.transition("WO-1", e.clone(), Actor::Engineer, Some(fix)).unwrap_err();
            assert!(matches!(err, crate::Error::Sop(sop::Error::Blocked { .. })), "{err:?}");
            d.start_checklist("WO-1", "onsite-repair").unwrap();
            assert!(d.walk_checklist_demo("WO-1").unwrap() > 15);
            assert_eq!(d.blockers("WO-1").unwrap().iter().map(|b| b.step.as_str()).collect::<Vec<_>>(), ["receipt"]);
            d.sign_receipt("WO-1", &testkit::input()).unwrap();
            assert!(d.blockers("WO-1").unwrap().is_empty());
        }
        d.transition("WO-1", e, Actor::Engineer, Some(fix)).unwrap();
    }
    d.add_note("WO-1", "replaced the DC-in board").unwrap();
    let device_id = d.device_id().to_string();
    drop(d);

    let d = device(dir.path(), clock);
    assert_eq!(d.device_id(), device_id, "device id is stable");
    let v = d.get("WO-1").unwrap();
    assert_eq!(v.order.status, Status::Completed);
    assert_eq!(v.order.transitions.len(), 7);
    assert_eq!(v.order.appointment, Some(w));
    let t = &v.order.transitions[3];
    assert_eq!((t.from, t.to), (Status::EnRoute, Status::OnSite));
    assert_eq!(t.monotonic_ms, 40 * 60_000);
    assert_eq!(t.fix, Some(fix));
    assert_eq!(t.device, device_id);
    assert_eq!(v.order.notes[0].text, "replaced the DC-in board");
    assert!(v.next_events.is_empty());
    assert!(v.sla.clocks.iter().all(|c| matches!(c.state, crate::sla::ClockState::Met { .. })));
    let list = d.list(&OrderFilter::default()).unwrap();
    assert_eq!(list[0].status, Status::Completed);
    assert_eq!(list[0].sla_deadline, None);
}

#[test]
fn illegal_transition_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = device(dir.path(), clock());
    d.import_orders_json(&sample_json("WO-1")).unwrap();
    let err = d.transition("WO-1", Event::Arrive, Actor::Engineer, None).unwrap_err();
    assert!(matches!(err, crate::Error::Order(order::Error::IllegalTransition { .. })));
    let v = d.get("WO-1").unwrap();
    assert_eq!(v.order.status, Status::Assigned);
    assert!(v.order.transitions.is_empty());
    assert!(matches!(d.transition("nope", Event::Accept, Actor::Engineer, None), Err(crate::Error::Store(crate::store::Error::NotFound { .. }))));
    assert!(matches!(d.add_note("WO-1", "   "), Err(crate::Error::Order(order::Error::Invalid { .. }))));
}

#[test]
fn list_filters_and_sorts_by_sla_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let d = device(dir.path(), clock.clone());
    let low = sample_json("WO-LOW").replace("\"urgent\"", "\"low\"");
    let normal = sample_json("WO-NORMAL").replace("\"urgent\"", "\"normal\"");
    d.import_orders_json(&format!("[{low},{normal},{}]", sample_json("WO-URGENT"))).unwrap();
    let ids = |d: &Device| -> Vec<String> { d.list(&OrderFilter::default()).unwrap().into_iter().map(|s| s.id).collect() };
    // All three share the 2 h first-contact deadline: ties go to the higher priority.
    assert_eq!(ids(&d), ["WO-URGENT", "WO-NORMAL", "WO-LOW"]);
    // Contacting the urgent customer leaves its 2 h response clock running at 11:10;
    // the others are due at the same time, so the order holds...
    clock.advance(chrono::Duration::minutes(5));
    d.transition("WO-NORMAL", Event::Accept, Actor::Engineer, None).unwrap();
    let w = window(&d);
    d.transition("WO-NORMAL", Event::ContactCustomer { window: w }, Actor::Engineer, None).unwrap();
    // ...and the normal order, accepted and contacted, now waits only for its on-site clock.
    assert_eq!(ids(&d), ["WO-URGENT", "WO-LOW", "WO-NORMAL"]);
    d.transition("WO-URGENT", Event::Accept, Actor::Engineer, None).unwrap();
    let accepted = d.list(&OrderFilter { statuses: vec![Status::Accepted], ..Default::default() }).unwrap();
    assert_eq!(accepted.len(), 1);
    assert_eq!(accepted[0].id, "WO-URGENT");
    assert!(d.list(&OrderFilter::default()).unwrap().iter().all(|s| !s.breached));
    clock.advance(chrono::Duration::hours(30));
    let rows = d.list(&OrderFilter::default()).unwrap();
    let breached: Vec<&str> = rows.iter().filter(|s| s.breached).map(|s| s.id.as_str()).collect();
    assert_eq!(breached, ["WO-URGENT", "WO-LOW"], "the contacted order's on-site clock still runs");
    assert!(matches!(d.import_orders_json(&sample_json("WO-LOW")), Err(crate::Error::Store(crate::store::Error::AlreadyExists { .. }))));
}

#[test]
fn compaction_keeps_every_edit() {
    let dir = tempfile::tempdir().unwrap();
    let d = device(dir.path(), clock());
    d.import_orders_json(&sample_json("WO-1")).unwrap();
    for i in 0..100 {
        d.add_note("WO-1", &format!("note {i}")).unwrap();
    }
    let crate::store::Footprint { bytes, orders: count } = d.store().document_footprint().unwrap();
    assert_eq!(count, 1);
    assert!(bytes < 16 * 1024, "100 notes compacted into {bytes} bytes");
    let d2 = device(dir.path(), clock());
    let notes = d2.get("WO-1").unwrap().order.notes;
    assert_eq!(notes.len(), 100);
    assert_eq!(notes[99].text, "note 99");
}

#[test]
fn two_devices_merge_concurrent_edits() {
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = device(a_dir.path(), clock());
    let b = device(b_dir.path(), clock());
    assert_ne!(a.device_id(), b.device_id());
    a.import_orders_json(&sample_json("WO-1")).unwrap();
    b.merge_document(&a.document_bytes("WO-1").unwrap()).unwrap();
    a.add_note("WO-1", "from a").unwrap();
    b.add_note("WO-1", "from b").unwrap();
    b.transition("WO-1", Event::Accept, Actor::Engineer, None).unwrap();
    let merged_a = a.merge_document(&b.document_bytes("WO-1").unwrap()).unwrap();
    let merged_b = b.merge_document(&a.document_bytes("WO-1").unwrap()).unwrap();
    assert_eq!(merged_a.order, merged_b.order);
    assert_eq!(merged_a.order.notes.len(), 2);
    assert_eq!(merged_a.order.status, Status::Accepted);
    assert_eq!(a.list(&OrderFilter::default()).unwrap()[0].status, Status::Accepted, "summary follows merges");
    assert!(matches!(a.merge_document(b"garbage"), Err(crate::Error::Store(crate::store::Error::Document { .. }))));
}
