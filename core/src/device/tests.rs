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
    Device::open(crate::device::testkit::options(dir).with_clock(clock)).unwrap()
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

/// The device's hardware key as a test sees it: counts signatures, can refuse or hold back
/// countersignatures (a secure element that is slow, or an app killed before the worker ran).
struct HardwareKey {
    key: crate::evidence::SoftwareSigner,
    signs: std::sync::atomic::AtomicUsize,
    countersigns_done: std::sync::atomic::AtomicUsize,
    refuse_countersign: bool,
    gate: (std::sync::Mutex<bool>, std::sync::Condvar),
}

impl HardwareKey {
    fn new(secret: &[u8], refuse_countersign: bool, open: bool) -> Arc<Self> {
        Arc::new(Self {
            key: crate::evidence::SoftwareSigner::from_secret(secret).unwrap(),
            signs: Default::default(),
            countersigns_done: Default::default(),
            refuse_countersign,
            gate: (std::sync::Mutex::new(open), std::sync::Condvar::new()),
        })
    }

    fn open_gate(&self) {
        *self.gate.0.lock().unwrap() = true;
        self.gate.1.notify_all();
    }
}

impl crate::evidence::Signer for HardwareKey {
    fn public_key(&self) -> Vec<u8> {
        self.key.public_key()
    }

    fn sign(&self, message: &[u8]) -> std::result::Result<Vec<u8>, crate::evidence::signer::Error> {
        self.signs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if message.starts_with(b"onsite-countersign/") {
            if self.refuse_countersign {
                return Err(crate::evidence::signer::Error::Signing("the secure element is gone".into()));
            }
            let open = self.gate.0.lock().unwrap();
            let _ = self.gate.1.wait_timeout_while(open, std::time::Duration::from_secs(20), |o| !*o).unwrap();
            self.countersigns_done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        self.key.sign(message)
    }
}

fn visit(d: &Device) {
    d.import_orders_json(&sample_json("WO-1")).unwrap();
    for e in [Event::Accept, Event::ContactCustomer { window: window(d) }, Event::Depart, Event::Arrive, Event::StartWork] {
        d.transition("WO-1", e, Actor::Engineer, None).unwrap();
    }
    d.start_checklist("WO-1", "onsite-repair").unwrap();
    d.walk_checklist_demo("WO-1").unwrap();
}

fn kinds(d: &Device, kind: &str) -> Vec<crate::evidence::journal::Body> {
    d.journal(None).unwrap().iter().map(|e| e.body().unwrap()).filter(|b| b.kind == kind).collect()
}

#[test]
fn the_hardware_key_signs_the_session_and_countersigns_consents_off_the_edit_path() {
    let dir = tempfile::tempdir().unwrap();
    let secret = crate::evidence::SoftwareSigner::generate().unwrap().secret();
    let hw = HardwareKey::new(&secret, false, false);
    let d = Device::open(crate::device::testkit::options(dir.path()).with_clock(clock()).with_signer(hw.clone())).unwrap();
    // The whole visit is answered while the secure element holds every countersignature back:
    // no answer waited for one.
    visit(&d);
    let consents = kinds(&d, "consent").len();
    assert!(consents >= 2, "{consents}");
    assert_eq!(hw.countersigns_done.load(std::sync::atomic::Ordering::SeqCst), 0);
    hw.open_gate();
    d.seal_journal("test").unwrap();
    assert_eq!(hw.countersigns_done.load(std::sync::atomic::Ordering::SeqCst), consents);
    let r = d.verify_journal().unwrap();
    assert!(r.sealed(), "{r:?}");
    assert_eq!(r.countersigned.len(), consents);
    assert_eq!(kinds(&d, "countersign").len(), consents);
    // One session and one countersignature per consent: nothing else touched the hardware key.
    assert_eq!(hw.signs.load(std::sync::atomic::Ordering::SeqCst), 1 + consents);
    let signed = d.journal(None).unwrap().iter().filter(|e| e.is_signed()).count();
    assert!(signed < d.journal(None).unwrap().len() / 3, "{signed}");
}

#[test]
fn a_killed_app_leaves_unsealed_entries_and_missing_countersignatures_the_next_open_completes_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let secret = crate::evidence::SoftwareSigner::generate().unwrap().secret();
    let d = Device::open(crate::device::testkit::options(dir.path()).with_clock(clock()).with_signer(HardwareKey::new(&secret, true, true))).unwrap();
    visit(&d);
    d.add_note("WO-1", "written just before the phone died").unwrap();
    d.countersigner.flush();
    let r = d.verify_journal().unwrap();
    let first_unsealed = r.unsealed_from.expect("the note is not sealed yet");
    assert!(r.ok() && r.countersigned.is_empty(), "{r:?}");
    let last = d.journal(None).unwrap().last().unwrap().seq;
    drop(d); // killed: nothing seals on the way out

    let hw = HardwareKey::new(&secret, false, true);
    let d = Device::open(crate::device::testkit::options(dir.path()).with_clock(clock()).with_signer(hw.clone())).unwrap();
    d.countersigner.flush();
    let sessions = kinds(&d, "session_open");
    assert_eq!(sessions.len(), 2);
    let open: crate::evidence::journal::SessionOpen = serde_json::from_value(sessions[1].payload.clone().unwrap()).unwrap();
    assert_eq!((open.unsealed_from, open.unsealed_to), (Some(first_unsealed), Some(last)), "the new session says what it sealed late");
    let reopen: Vec<_> = kinds(&d, "seal").into_iter().filter(|b| b.payload.as_ref().unwrap()["reason"] == "reopen").collect();
    assert_eq!(reopen.iter().map(|b| b.order.as_deref()).collect::<Vec<_>>(), [Some("WO-1")]);
    let late = kinds(&d, "countersign");
    assert!(!late.is_empty() && late.iter().all(|b| b.payload.as_ref().unwrap()["late"] == true), "{late:?}");
    assert_eq!(late.len(), kinds(&d, "consent").len());
    d.seal_journal("test").unwrap();
    let r = d.verify_journal().unwrap();
    assert!(r.sealed() && r.countersigned.len() == late.len(), "{r:?}");
    // Reopening a clean store writes nothing.
    let n = d.journal(None).unwrap().len();
    drop(d);
    let d = Device::open(crate::device::testkit::options(dir.path()).with_clock(clock()).with_signer(hw)).unwrap();
    d.countersigner.flush();
    assert_eq!(d.journal(None).unwrap().len(), n);
}

/// An edit edits the cached order in place: when it fails after changing it, nothing of the
/// change survives (not in reads, not under the next edit, not after reopening).
#[test]
fn a_failed_edit_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let d = device(dir.path(), clock());
    d.import_orders_json(&sample_json("WO-1")).unwrap();
    d.add_note("WO-1", "first").unwrap();
    let stamp = d.stamp();
    let failed: std::result::Result<((), order::WorkOrder), crate::Error> = d.store.edit(
        "WO-1",
        "note",
        stamp,
        |o| {
            o.notes.push(order::model::EngineerNote { at: Timestamp(1), text: "half-made".into(), device: "x".into() });
            o.status = Status::Completed;
            Err(order::Error::Invalid { field: "text".into(), reason: "refused after a change".into() }.into())
        },
        |o| d.summarize(o),
    );
    assert!(failed.is_err());
    let v = d.get("WO-1").unwrap();
    assert_eq!(v.order.notes.iter().map(|n| n.text.as_str()).collect::<Vec<_>>(), ["first"]);
    assert_eq!(v.order.status, Status::Assigned);
    // The next edit's own answer and the list's summary row see the true order too.
    let next = d.add_note("WO-1", "second").unwrap();
    assert_eq!(next.order.notes.iter().map(|n| n.text.as_str()).collect::<Vec<_>>(), ["first", "second"]);
    assert_eq!(next.order.status, Status::Assigned);
    let listed = d.list(&OrderFilter::default()).unwrap();
    assert_eq!(listed.iter().find(|s| s.id == "WO-1").map(|s| s.status), Some(Status::Assigned));
    drop(d);
    let d = device(dir.path(), clock());
    let v = d.get("WO-1").unwrap();
    assert_eq!(v.order.notes.iter().map(|n| n.text.as_str()).collect::<Vec<_>>(), ["first", "second"]);
    assert_eq!(v.order.status, Status::Assigned);
}

struct Provider(GpsFix);

impl crate::location::LocationSource for Provider {
    fn current_fix(&self) -> Option<GpsFix> {
        Some(self.0)
    }
}

/// The device records only fixes anyone can rely on: the caller's bad fix is a typed error
/// that records nothing; the platform's bad fix is recorded as no fix.
#[test]
fn a_fix_that_is_not_a_fix_is_refused_or_dropped_never_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let bad = GpsFix { lat: f64::NAN, lon: 116.4, accuracy_m: 8.0, source: LocationSource::Gps, mock: false };
    let options = crate::device::testkit::options(dir.path()).with_clock(clock()).with_location(Arc::new(Provider(bad)));
    let d = Device::open(options).unwrap();
    d.import_orders_json(&sample_json("WO-1")).unwrap();
    for f in [bad, GpsFix { lat: 12.0, lon: 190.0, ..bad }, GpsFix { lat: 12.0, lon: 1.0, accuracy_m: -3.0, ..bad }] {
        let e = d.transition("WO-1", Event::Accept, Actor::Engineer, Some(f)).unwrap_err();
        assert!(matches!(e, crate::Error::Order(order::Error::Invalid { ref field, .. }) if field.starts_with("fix.")), "{e:?}");
    }
    assert!(d.get("WO-1").unwrap().order.transitions.is_empty(), "nothing recorded");
    // No fix from the caller: the provider's NaN is dropped, the step goes through.
    let v = d.transition("WO-1", Event::Accept, Actor::Engineer, None).unwrap();
    assert_eq!(v.order.transitions[0].fix, None);
    let good = GpsFix { lat: -90.0, lon: 180.0, accuracy_m: 0.0, source: LocationSource::Fused, mock: true };
    let v = d.transition("WO-1", Event::ContactCustomer { window: window(&d) }, Actor::Engineer, Some(good)).unwrap();
    assert_eq!(v.order.transitions[1].fix, Some(good));
}
