//! Spare-part custody, expert help and the service record against a real `onsite-server`
//! on loopback: the borrow rule, stock that never goes negative, the clerk's records merged
//! through sync, close-out after the parts are back, a help request round trip, and a
//! service record that verifies, and fails once tampered with.

use std::sync::Arc;

use onsite_core::clock::ManualClock;
use onsite_core::device::SyncOptions;
use onsite_core::device::{HelpQuestion, MovementInput, PhotoSource};
use onsite_core::order::{Actor, Event, TimeWindow, Timestamp};
use onsite_core::parts::{self, Kind};
use onsite_core::receipt::{ChargeBasis, ChargeLine, CustomerDecision, Rating, ReceiptInput};
use onsite_core::Device;
use onsite_server::client::{sample_orders, ExpertClient};
use onsite_tests::net::{TestServer, PROVIDER};

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::at(chrono::DateTime::parse_from_rfc3339("2026-11-23T09:00:00+08:00").unwrap().with_timezone(&chrono::Utc)))
}

fn fast() -> SyncOptions {
    SyncOptions { base_backoff_ms: 1, max_backoff_ms: 5, max_attempts: 6, ..SyncOptions::default() }
}

fn receipt(rating: u8) -> ReceiptInput {
    ReceiptInput {
        diagnosis: "DC-in jack loose".into(),
        work_done: "replaced the DC-in board".into(),
        charges: vec![ChargeLine { description: "warranty repair".into(), amount_cents: 0, basis: ChargeBasis::Warranty }],
        currency: "CNY".into(),
        rating: Some(Rating { score: rating, comment: "ok".into() }),
        signer_name: "王女士".into(),
        decision: CustomerDecision::Signed { strokes: onsite_core::signature::sample_strokes() },
        correction_reason: None,
    }
}

/// Works an order through the seed-003 checklist (which borrows, fits and returns its part)
/// to a signed receipt and completion.
fn work(d: &Device, c: &ManualClock, id: &str, rating: u8) {
    let w = TimeWindow { start: Timestamp(d.now().0 + 3_600_000), end: Timestamp(d.now().0 + 7_200_000) };
    finish(d, c, id, rating, &[Event::Accept, Event::ContactCustomer { window: w }, Event::Depart, Event::Arrive, Event::StartWork]);
}

fn finish(d: &Device, c: &ManualClock, id: &str, rating: u8, events: &[Event]) {
    for e in events {
        c.advance(chrono::Duration::minutes(10));
        d.transition(id, e.clone(), Actor::Engineer, None).unwrap();
    }
    d.start_checklist(id, "onsite-repair").unwrap();
    c.advance(chrono::Duration::minutes(40));
    d.walk_checklist_demo(id).unwrap();
    d.transition(id, Event::RequestSignature, Actor::Engineer, None).unwrap();
    d.sign_receipt(id, &receipt(rating)).unwrap();
    d.transition(id, Event::Complete, Actor::Engineer, None).unwrap();
}

fn part(kind: Kind, pn: &str, serial: Option<&str>, qty: u32, order: Option<&str>) -> MovementInput {
    MovementInput {
        kind,
        part_number: pn.into(),
        serial: serial.map(String::from),
        quantity: qty,
        order_id: order.map(String::from),
        removed_serial: None,
        note: String::new(),
    }
}

#[test]
fn parts_custody_the_borrow_rule_the_clerk_and_close_out() {
    let s = TestServer::start();
    let ids = s.dispatcher.create_orders(&sample_orders(PROVIDER, "eng-1", "WO-P", 3)).unwrap();
    let c = clock();
    let dir = tempfile::tempdir().unwrap();
    let d = Device::open(onsite_tests::options(dir.path()).with_clock(c.clone())).unwrap();
    s.enrol(&d, "eng-1");
    let t = s.transport();
    d.sync(&t, &fast(), None).unwrap();

    // Order 1 through the checklist: borrow, install (old part out), return the old part.
    work(&d, &c, &ids[0], 5);
    let l = d.ledger().unwrap();
    assert!(l.held().is_empty(), "{l:?}");
    assert_eq!(l.pending_returns.len(), 1, "the faulty part waits for the clerk");
    let r = d.sync(&t, &fast(), None).unwrap();
    assert_eq!(r.movements_pushed, 3, "{r:?}");

    // The coordinator cannot close order 1 while the clerk has not received the old part.
    let refused = s.dispatcher.close(&ids[0], "coordinator").unwrap_err().to_string();
    assert!(refused.contains("409") && refused.contains("OLD-WO-P-0001"), "{refused}");
    // ... nor order 2, which is not completed.
    assert!(s.dispatcher.close(&ids[1], "coordinator").unwrap_err().to_string().contains("409"));

    // Order 2: a part borrowed at the desk; the clerk records the same hand-out.
    c.advance(chrono::Duration::minutes(5));
    d.record_part(part(Kind::Borrow, "FRU-5B20W77543", Some("SN-B"), 1, Some(&ids[1]))).unwrap();
    s.dispatcher
        .clerk(&serde_json::json!({ "kind": "issue", "engineer_id": "eng-1", "part_number": "FRU-5B20W77543", "serial": "SN-B", "order_id": ids[1], "clerk": "李" }))
        .unwrap();
    // 前件不还后件不借: no borrow for order 3 while SN-B (order 2) is out.
    match d.record_part(part(Kind::Borrow, "FRU-X", Some("SN-C"), 1, Some(&ids[2]))) {
        Err(onsite_core::Error::Store(onsite_core::store::Error::Parts(parts::Error::BorrowRefused { outstanding: 1, first }))) => {
            assert!(first.contains("SN-B"), "{first}")
        }
        other => panic!("{other:?}"),
    }
    // Stock never goes negative: 2 thermal pads borrowed, 3 fitted is refused; an unheld
    // serial cannot be returned.
    d.record_part(part(Kind::Borrow, "PAD", None, 2, Some(&ids[1]))).unwrap();
    assert!(matches!(
        d.record_part(part(Kind::Install, "PAD", None, 3, Some(&ids[1]))),
        Err(onsite_core::Error::Store(onsite_core::store::Error::Parts(parts::Error::Custody(_))))
    ));
    assert!(matches!(
        d.record_part(part(Kind::Return, "FRU-X", Some("NOPE"), 1, None)),
        Err(onsite_core::Error::Store(onsite_core::store::Error::Parts(parts::Error::Custody(_))))
    ));
    d.record_part(part(Kind::Install, "PAD", None, 2, Some(&ids[1]))).unwrap();
    // The refusals left nothing behind: 3 + 1 + 2 movements, all journaled.
    assert_eq!(d.part_movements().unwrap().len(), 6);
    assert!(d.verify_journal().unwrap().ok());

    // The clerk receives order 1's old part; the next sync merges both clerk records.
    s.dispatcher
        .clerk(&serde_json::json!({ "kind": "receive", "engineer_id": "eng-1", "part_number": "FRU-5B20W77543", "serial": "OLD-WO-P-0001", "order_id": ids[0], "clerk": "李" }))
        .unwrap();
    let r = d.sync(&t, &fast(), None).unwrap();
    assert_eq!((r.movements_pushed, r.movements_pulled), (3, 2), "{r:?}");
    let l = d.ledger().unwrap();
    assert!(l.anomalies.is_empty(), "{:?}", l.anomalies);
    assert!(l.pending_returns.is_empty());
    let held = l.held();
    assert_eq!(held.len(), 1, "the engineer's borrow and the clerk's issue are one part: {held:?}");
    assert!(held[0].clerk_confirmed);
    assert!(d.closeout(&ids[0]).unwrap().is_clear());
    assert!(!d.closeout(&ids[1]).unwrap().is_clear());
    let closed = s.dispatcher.close(&ids[0], "coordinator").unwrap();
    assert!(closed["closed_at"].as_i64().unwrap() > 0);
    // The server's fold agrees with the device's.
    let server = s.dispatcher.parts_ledger("eng-1").unwrap();
    assert_eq!(server["held"].as_array().unwrap().len(), 1);
    assert!(server["anomalies"].as_array().unwrap().is_empty());

    // A relaxed rule, set by the provider on the device, lets the borrow through.
    d.set_borrow_policy(parts::BorrowPolicy::Tolerance { max: 1 }).unwrap();
    d.record_part(part(Kind::Borrow, "FRU-X", Some("SN-C"), 1, Some(&ids[2]))).unwrap();
}

#[test]
fn a_help_request_round_trip_through_the_server() {
    let s = TestServer::start();
    let ids = s.dispatcher.create_orders(&sample_orders(PROVIDER, "eng-1", "WO-H", 1)).unwrap();
    let id = &ids[0];
    // Experts: a printer specialist, a laptop generalist, and the ThinkPad specialist.
    let add = |id: &str, cats: &[&str], brands: &[&str], fee: i64| {
        s.dispatcher.add_expert(&serde_json::json!({ "id": id, "name": format!("{id} 工"), "categories": cats, "brands": brands, "fee_cents": fee })).unwrap()
    };
    add("printer-1", &["printer"], &[], 3000);
    add("laptop-1", &["laptop"], &[], 4000);
    let token = add("thinkpad-1", &["laptop"], &["thinkpad"], 8000);
    let c = clock();
    let dir = tempfile::tempdir().unwrap();
    let d = Device::open(onsite_tests::options(dir.path()).with_clock(c.clone())).unwrap();
    s.enrol(&d, "eng-1");
    let t = s.transport();
    d.sync(&t, &fast(), None).unwrap();

    // Offline: a photo and the question, tied to a checklist step.
    d.transition(id, Event::Accept, Actor::Engineer, None).unwrap();
    d.start_checklist(id, "onsite-repair").unwrap();
    let jpeg = onsite_tests::noisy_jpeg(320, 240, 7);
    let photo = d.ingest_photo(id, None, PhotoSource::Bytes(&jpeg), None).unwrap();
    assert!(d.ask_help(id, &HelpQuestion { question: "".into(), ..Default::default() }).is_err());
    assert!(d.ask_help(id, &HelpQuestion { question: "x".into(), photos: vec!["ab".repeat(32)], ..Default::default() }).is_err(), "not a photo of this order");
    let q = HelpQuestion {
        question: "No display after replacing the DC-in board; which connector?".into(),
        step: Some("reproduce".into()),
        photos: vec![photo.sha256.clone()],
        include_fault: true,
        include_notes: false,
    };
    let req = d.ask_help(id, &q).unwrap();
    assert_eq!(d.help_threads(id).unwrap()[0].answers.len(), 0);

    // Sync: the request is routed to the ThinkPad specialist, and the device hears where
    // it went in the same pass.
    d.sync(&t, &fast(), None).unwrap();
    let threads = d.help_threads(id).unwrap();
    assert_eq!(threads[0].answers.len(), 1);
    assert_eq!(threads[0].answers[0].kind, "routed");
    assert_eq!(threads[0].answers[0].expert_id, "thinkpad-1");

    // The expert sees the shared evidence only, uploads a reference photo and answers.
    let e = ExpertClient::new(&s.url(), &token).unwrap();
    let inbox = e.requests().unwrap();
    assert_eq!(inbox.as_array().unwrap().len(), 1);
    let view = e.request(&req.id).unwrap();
    assert_eq!(view["photos"][0], photo.sha256.as_str());
    assert!(view["fault"].as_str().is_some_and(|f| !f.is_empty()));
    assert_eq!(view["notes"].as_array().unwrap().len(), 0, "notes were not shared");
    assert_eq!(s.dispatcher.blob(&photo.sha256).unwrap(), jpeg, "the shared photo reached the server");
    let reference = onsite_tests::noisy_jpeg(200, 150, 99);
    let sha = e.upload(&reference).unwrap();
    let other = ExpertClient::new(&s.url(), &add("laptop-2", &["laptop"], &[], 1)).unwrap();
    assert!(other.answer(&req.id, &serde_json::json!({ "text": "not mine" })).is_err(), "only the routed expert answers");
    e.answer(
        &req.id,
        &serde_json::json!({ "text": "Reseat the eDP cable at J3.", "suggested_steps": ["power off", "reseat eDP at J3"], "reference_photos": [sha] }),
    )
    .unwrap();

    // The answer arrives in the order with its step; the reference photo is downloaded.
    let on_server = s.dispatcher.order(id).unwrap();
    assert_eq!(on_server["help_answers"].as_array().map(|a| a.len()), Some(2), "{}", on_server["help_answers"]);
    let r = d.sync(&t, &fast(), None).unwrap();
    assert_eq!(r.photos_fetched, 1, "{r:?}");
    let threads = d.help_threads(id).unwrap();
    let answer = threads[0].answers.iter().find(|a| a.kind == "answer").unwrap();
    assert_eq!(answer.step.as_deref(), Some("reproduce"));
    assert_eq!(answer.suggested_steps.len(), 2);
    assert_eq!(d.blob(&sha).unwrap(), reference);
    let costs = d.help_costs().unwrap();
    assert_eq!(costs.len(), 1);
    assert_eq!(costs[0].cost_cents, 8000, "kept for reimbursement");
    let rows = s.dispatcher.help_requests().unwrap();
    assert_eq!(rows[0]["status"], "answered");
    assert_eq!(rows[0]["cost_cents"], 8000);
    // The engineer cannot write an answer in the expert's name: a forged push is refused.
    let mut doc = automerge::AutoCommit::load(&d.document_bytes(id).unwrap()).unwrap();
    let heads = doc.get_heads();
    let mut o: onsite_core::WorkOrder = autosurgeon::hydrate(&doc).unwrap();
    o.help_answers.push(onsite_core::order::HelpAnswer { cost_cents: 0, text: "self-approved".into(), ..answer.clone() });
    autosurgeon::reconcile(&mut doc, &o).unwrap();
    let push = onsite_core::sync::protocol::DocPush { id: id.clone(), changes: doc.save_after(&heads) };
    let body =
        onsite_core::sync::protocol::encode(&onsite_core::sync::protocol::SyncRequest { v: 1, cursor: 0, push: vec![push], ..Default::default() }).unwrap();
    let token = d.store().meta(onsite_core::store::MetaKey::SyncToken).unwrap().unwrap();
    use onsite_core::sync::transport::{Method, Request, Transport};
    let resp = t.send(&Request::new(Method::Post, "/v1/sync").header("authorization", format!("Bearer {token}")).body(body)).unwrap();
    assert_eq!(resp.status, 200);
    let answer = onsite_core::sync::protocol::decode_response(&resp.body).unwrap();
    assert_eq!(answer.rejected.len(), 1);
    assert_eq!(answer.rejected[0].field.as_deref(), Some("help_answers"));
    assert_eq!(s.dispatcher.order(id).unwrap()["help_answers"].as_array().unwrap().len(), 2, "nothing stored");
}

#[test]
fn the_service_record_verifies_and_tampering_is_caught() {
    let s = TestServer::start();
    let ids = s.dispatcher.create_orders(&sample_orders(PROVIDER, "eng-1", "WO-R", 3)).unwrap();
    let c = clock();
    let dir = tempfile::tempdir().unwrap();
    let d = Device::open(onsite_tests::options(dir.path()).with_clock(c.clone())).unwrap();
    s.enrol(&d, "eng-1");
    let t = s.transport();
    d.sync(&t, &fast(), None).unwrap();
    work(&d, &c, &ids[0], 5);
    work(&d, &c, &ids[1], 3);
    // Order 3 is rescheduled once before it is done: not a first-time fix.
    let w = TimeWindow { start: Timestamp(d.now().0 + 3_600_000), end: Timestamp(d.now().0 + 7_200_000) };
    for e in [Event::Accept, Event::ContactCustomer { window: w }, Event::Depart, Event::Arrive] {
        d.transition(&ids[2], e, Actor::Engineer, None).unwrap();
    }
    d.transition(&ids[2], Event::Reschedule { reason: "part missing".into(), window: w }, Actor::Engineer, None).unwrap();
    finish(&d, &c, &ids[2], 4, &[Event::Depart, Event::Arrive, Event::StartWork]);
    s.dispatcher.certify("eng-1", 3).unwrap();
    s.dispatcher.certify("eng-2", 5).unwrap();
    d.sync(&t, &fast(), None).unwrap();
    assert_eq!(d.certifications().unwrap().len(), 1, "only this engineer's certification");

    let rec = d.service_record().unwrap();
    assert_eq!(rec.aggregates.orders, 3);
    assert_eq!(rec.aggregates.first_time_fixes, 2);
    assert_eq!(rec.aggregates.first_time_fix_permille, 666);
    assert_eq!(rec.aggregates.rating_avg_centi, 400);
    assert_eq!(rec.aggregates.logged, 3, "every receipt is in the provider's log");
    let file = dir.path().join("record.json");
    d.export_service_record(&file).unwrap();
    if std::env::var_os("ONSITE_UPDATE_FUZZ_SEEDS").is_some() {
        let seeds = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../core/tests/fuzz-crashers/record");
        std::fs::create_dir_all(&seeds).unwrap();
        std::fs::copy(&file, seeds.join("valid.json")).unwrap();
        let text = std::fs::read_to_string(&file).unwrap();
        std::fs::write(seeds.join("truncated.json"), &text[..text.len() / 2]).unwrap();
        std::fs::write(seeds.join("rating-raised.json"), text.replacen("\"rating\":3", "\"rating\":5", 1)).unwrap();
    }
    let log_key = s.running.service.log_key();
    let opts =
        onsite_core::profile::VerifyOptions { device_key: Some(d.public_key()), log_key: Some(log_key.clone()), attestation_trust: None, witness_policy: None };
    let report = onsite_core::profile::verify_record(&std::fs::read(&file).unwrap(), &opts);
    assert!(report.ok, "{}", report.text);
    assert_eq!((report.orders, report.logged, report.level), (3, 3, Some(3)));

    // Tampering, each alone: a better rating, inflated figures, an invented order, a higher
    // certification, a re-signed record with a dropped reschedule.
    let original: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let check = |name: &str, f: &dyn Fn(&mut serde_json::Value)| {
        let mut v = original.clone();
        f(&mut v);
        let r = onsite_core::profile::verify_record(&serde_json::to_vec(&v).unwrap(), &opts);
        assert!(!r.ok, "{name} went unnoticed");
    };
    check("a better rating", &|v| v["record"]["orders"][1]["rating"] = 5.into());
    check("inflated figures", &|v| v["record"]["aggregates"]["first_time_fix_permille"] = 1000.into());
    check("an invented order", &|v| {
        let copy = v["record"]["orders"][0].clone();
        v["record"]["orders"].as_array_mut().unwrap().push(copy);
    });
    check("a higher level", &|v| {
        let b = v["record"]["certifications"][0]["body"].as_str().unwrap().replace("\"level\":3", "\"level\":5");
        v["record"]["certifications"][0]["body"] = b.into();
    });
    check("no signature", &|v| v["signature"] = "00".into());
    // Even re-signed with the device key, a record that drops the reschedule from the order's
    // journal or claims its first-time fix does not verify.
    let signer = onsite_core::evidence::SoftwareSigner::generate().unwrap();
    let mut forged: onsite_core::profile::SignedRecord = serde_json::from_value(original.clone()).unwrap();
    forged.record.orders[2].first_time_fix = true;
    forged.record.aggregates = onsite_core::profile::aggregate(&forged.record.orders);
    let forged = onsite_core::profile::sign_record(forged.record, &signer).unwrap();
    let r = onsite_core::profile::verify_record(&serde_json::to_vec(&forged).unwrap(), &opts);
    assert!(!r.ok);
    // The CLI verifies the same file (exit code 0 only when valid).
    let out = std::process::Command::new(onsite_tests::onsite_bin())
        .args(["verify", file.to_str().unwrap(), "--log-key", &onsite_core::hash::hex(&log_key)])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stdout).contains("VALID"));
    let bad = dir.path().join("tampered.json");
    let mut v = original.clone();
    v["record"]["orders"][1]["rating"] = 5.into();
    std::fs::write(&bad, serde_json::to_vec(&v).unwrap()).unwrap();
    let out = std::process::Command::new(onsite_tests::onsite_bin()).args(["verify", bad.to_str().unwrap()]).output().unwrap();
    assert!(!out.status.success());
}
