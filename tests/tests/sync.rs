//! Devices and a dispatcher against a real `onsite-server` on loopback: offline edits that
//! converge, faults between client and server, authorization.

use std::sync::Arc;

use onsite_core::clock::ManualClock;
use onsite_core::device::PhotoSource;
use onsite_core::device::SyncOptions;
use onsite_core::device::{RejectedOrder, SyncError};
use onsite_core::order::{Actor, Event, Priority, Status, TimeWindow, Timestamp};
use onsite_core::sync::transport::{Method, Request, Transport};
use onsite_core::{Device, WorkOrder};
use onsite_server::client::sample_orders;
use onsite_tests::net::{Fault, FaultyTransport, TestServer, PROVIDER};

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::at(chrono::DateTime::parse_from_rfc3339("2026-11-23T09:00:00+08:00").unwrap().with_timezone(&chrono::Utc)))
}

fn device(dir: &std::path::Path, clock: &Arc<ManualClock>) -> Device {
    Device::open(onsite_tests::options(dir).with_clock(clock.clone())).unwrap()
}

fn fast() -> SyncOptions {
    SyncOptions { base_backoff_ms: 1, max_backoff_ms: 5, max_attempts: 6, ..SyncOptions::default() }
}

fn server_order(s: &TestServer, id: &str) -> WorkOrder {
    s.running.service.order(PROVIDER, id).unwrap()
}

fn heads(d: &Device, id: &str) -> Vec<automerge::ChangeHash> {
    let mut doc = automerge::AutoCommit::load(&d.document_bytes(id).unwrap()).unwrap();
    let mut h = doc.get_heads();
    h.sort();
    h
}

/// `n` new orders of eng-1 (ids `prefix`-0001...) and a device of eng-1 that pulled them; the
/// directory lives as long as the device must.
fn synced_device(s: &TestServer, c: &Arc<ManualClock>, prefix: &str, n: usize) -> (Vec<String>, tempfile::TempDir, Device) {
    let ids = s.dispatcher.create_orders(&sample_orders(PROVIDER, "eng-1", prefix, n)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let a = device(dir.path(), c);
    s.enrol(&a, "eng-1");
    a.sync(&s.transport(), &fast(), None).unwrap();
    (ids, dir, a)
}

fn window(d: &Device) -> TimeWindow {
    TimeWindow { start: Timestamp(d.now().0 + 3_600_000), end: Timestamp(d.now().0 + 7_200_000) }
}

#[test]
fn two_devices_and_a_dispatcher_converge_after_offline_edits() {
    let s = TestServer::start();
    let ids = s.dispatcher.create_orders(&sample_orders(PROVIDER, "eng-1", "WO-C", 3)).unwrap();
    let c = clock();
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = (device(da.path(), &c), device(db.path(), &c));
    s.enrol(&a, "eng-1");
    s.enrol(&b, "eng-1");
    let t = s.transport();
    let ra = a.sync(&t, &fast(), None).unwrap();
    assert_eq!(ra.orders_pulled, 3, "{ra:?}");
    b.sync(&t, &fast(), None).unwrap();
    assert_eq!(b.list(&Default::default()).unwrap().len(), 3);

    // Offline: A works order 1, B (the engineer's tablet) adds notes, the dispatcher
    // changes the priority of order 1 and cancels order 3.
    let id = &ids[0];
    c.advance(chrono::Duration::minutes(5));
    a.transition(id, Event::Accept, Actor::Engineer, None).unwrap();
    a.transition(id, Event::ContactCustomer { window: window(&a) }, Actor::Engineer, None).unwrap();
    a.add_note(id, "customer says the fan is loud too").unwrap();
    b.add_note(id, "spare DC-in board in the van").unwrap();
    b.add_note(&ids[1], "call before 10:00").unwrap();
    s.dispatcher.set_priority(id, "low").unwrap();
    s.dispatcher.cancel(&ids[2], "customer withdrew").unwrap();

    for d in [&a, &b, &a] {
        let r = d.sync(&t, &fast(), None).unwrap();
        assert!(r.complete(), "{r:?}");
        assert!(r.orders_rejected.is_empty(), "{r:?}");
    }
    for id in &ids {
        let (oa, ob, os) = (a.get(id).unwrap().order, b.get(id).unwrap().order, server_order(&s, id));
        assert_eq!(oa, ob, "devices differ on {id}");
        assert_eq!(oa, os, "device and server differ on {id}");
        assert_eq!(heads(&a, id), heads(&b, id), "same history on {id}");
    }
    let o = a.get(id).unwrap().order;
    assert_eq!(o.priority, Priority::Low, "the dispatcher's edit arrived");
    assert_eq!(o.status, Status::CustomerContacted);
    let notes: Vec<&str> = o.notes.iter().map(|n| n.text.as_str()).collect();
    assert!(notes.contains(&"customer says the fan is loud too") && notes.contains(&"spare DC-in board in the van"), "{notes:?}");
    assert_eq!(a.get(&ids[2]).unwrap().order.status, Status::Cancelled);
    assert_eq!(b.get(&ids[2]).unwrap().order.status, Status::Cancelled);
    // The summary columns follow merges (list screens never load documents).
    let rows = b.list(&Default::default()).unwrap();
    assert_eq!(rows.iter().find(|r| &r.id == id).unwrap().status, Status::CustomerContacted);

    // Idle reconnect: one round trip, a few hundred bytes.
    let idle = a.sync(&t, &fast(), None).unwrap();
    assert_eq!(idle.round_trips, 1, "{idle:?}");
    assert!(idle.bytes_sent + idle.bytes_received < 2048, "{idle:?}");
    assert_eq!(idle.orders_pulled + idle.orders_pushed, 0);

    // Evidence went first: the server holds A's whole journal, verified and logged, and A
    // keeps an inclusion proof it can check against the pinned log key.
    let status = a.sync_status().unwrap();
    assert_eq!(status.pending_journal, 0, "{status:?}");
    assert_eq!(status.pending_orders, 0);
    assert!(status.last_success_at.is_some());
    let journal = a.journal(None).unwrap();
    assert!(journal.iter().any(|e| e.body().unwrap().kind == "time_ticket"), "a time ticket rode along with sync");
    let proofs = a.log_proofs().unwrap();
    let last = proofs.last().unwrap();
    let entry = journal.iter().find(|e| e.seq == last.seq).unwrap();
    last.verify(&entry.hash, Some(&s.running.service.log_key())).unwrap();
    assert!(last.verify(&journal[0].hash, Some(&s.running.service.log_key())).is_err(), "a proof proves one entry");

    // Concurrent lifecycle steps: A and B both contact the customer from `accepted`. The
    // status history must stay one legal path, so the second push (B's) is refused and B is
    // rebuilt on the server's order (journaled `sync_reset`); both end with A's window.
    c.advance(chrono::Duration::minutes(1));
    a.transition(&ids[1], Event::Accept, Actor::Engineer, None).unwrap();
    a.sync(&t, &fast(), None).unwrap();
    b.sync(&t, &fast(), None).unwrap();
    let w1 = window(&a);
    a.transition(&ids[1], Event::ContactCustomer { window: w1 }, Actor::Engineer, None).unwrap();
    let w2 = TimeWindow { start: Timestamp(w1.start.0 + 60_000), end: Timestamp(w1.end.0 + 60_000) };
    b.transition(&ids[1], Event::ContactCustomer { window: w2 }, Actor::Engineer, None).unwrap();
    b.add_note(&ids[1], "B's note survives the rebase").unwrap();
    a.sync(&t, &fast(), None).unwrap();
    let rb = b.sync(&t, &fast(), None).unwrap();
    assert_eq!(rb.orders_rejected, vec![RejectedOrder { id: ids[1].clone(), code: "forbidden_field".into(), field: Some("transitions".into()) }], "{rb:?}");
    assert_eq!(rb.orders_rebased, 1);
    for d in [&b, &a] {
        d.sync(&t, &fast(), None).unwrap();
    }
    let (oa, ob) = (a.get(&ids[1]).unwrap().order, b.get(&ids[1]).unwrap().order);
    assert_eq!(oa, ob);
    assert_eq!(oa.appointment, Some(w1));
    assert_eq!(oa.transitions.iter().filter(|t| t.to == Status::CustomerContacted).count(), 1);
    assert!(oa.notes.iter().any(|n| n.text == "B's note survives the rebase"));
    assert!(b.journal(Some(&ids[1])).unwrap().iter().any(|e| e.body().unwrap().kind == "sync_reset"));
}

/// Pushes `doc` (the device's document with hand-made changes) as device `d`, bypassing the
/// device's own checks: what a hostile client can send.
fn raw_push(s: &TestServer, d: &Device, id: &str, doc: &automerge::AutoCommit) -> onsite_core::sync::protocol::SyncResponse {
    raw_push_bytes(s, d, id, doc.clone().save())
}

/// `changes` pushed for `id` as a hand-made client would, with `d`'s token.
fn raw_push_bytes(s: &TestServer, d: &Device, id: &str, changes: Vec<u8>) -> onsite_core::sync::protocol::SyncResponse {
    let push = onsite_core::sync::protocol::DocPush { id: id.into(), changes };
    let body =
        onsite_core::sync::protocol::encode(&onsite_core::sync::protocol::SyncRequest { v: 1, cursor: 0, push: vec![push], ..Default::default() }).unwrap();
    let token = d.store().meta(onsite_core::store::MetaKey::SyncToken).unwrap().expect("enrolled");
    let req = Request::new(Method::Post, "/v1/sync").header("authorization", format!("Bearer {token}")).body(body);
    let resp = s.transport().send(&req).unwrap();
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    onsite_core::sync::protocol::decode_response(&resp.body).unwrap()
}

#[test]
fn authorization_is_enforced() {
    let s = TestServer::start();
    let ids = s.dispatcher.create_orders(&sample_orders(PROVIDER, "eng-1", "WO-A", 2)).unwrap();
    let other = s.dispatcher.create_orders(&sample_orders(PROVIDER, "eng-2", "WO-B", 1)).unwrap();
    let c = clock();
    let (da, dc) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, cdev) = (device(da.path(), &c), device(dc.path(), &c));
    s.enrol(&a, "eng-1");
    s.enrol(&cdev, "eng-2");
    let t = s.transport();
    a.sync(&t, &fast(), None).unwrap();
    cdev.sync(&t, &fast(), None).unwrap();
    let mut refused = 0;

    // Scope: each device only received its engineer's orders.
    assert_eq!(a.list(&Default::default()).unwrap().len(), 2);
    assert_eq!(cdev.list(&Default::default()).unwrap().iter().map(|r| r.id.clone()).collect::<Vec<_>>(), other);

    // Device C pushes A's order (it got the bytes some other way): refused, nothing stored.
    cdev.merge_document(&a.document_bytes(&ids[0]).unwrap()).unwrap();
    cdev.add_note(&ids[0], "not my order").unwrap();
    let r = cdev.sync(&t, &fast(), None).unwrap();
    assert_eq!(r.orders_rejected, vec![RejectedOrder { id: ids[0].clone(), code: "not_in_scope".into(), field: None }]);
    refused += 1;
    assert!(server_order(&s, &ids[0]).notes.is_empty());

    // Forged and missing tokens.
    for auth in ["Bearer dev_forged", "Bearer ", ""] {
        let mut req = Request::new(Method::Post, "/v1/sync")
            .body(onsite_core::sync::protocol::encode(&onsite_core::sync::protocol::SyncRequest { v: 1, ..Default::default() }).unwrap());
        if !auth.is_empty() {
            req = req.header("authorization", auth);
        }
        assert_eq!(t.send(&req).unwrap().status, 401, "{auth}");
        refused += 1;
    }
    // A device token is not a dispatcher token, and the reverse.
    let token = a.store().meta(onsite_core::store::MetaKey::SyncToken).unwrap().unwrap();
    let req = Request::new(Method::Get, "/v1/orders").header("authorization", format!("Bearer {token}"));
    assert_eq!(t.send(&req).unwrap().status, 401);
    refused += 1;

    // A forbidden field write (a tampered client changes the priority): refused, and the
    // device rebuilds the order on the server's version keeping its valid local work.
    let id = &ids[0];
    a.add_note(id, "valid local note").unwrap();
    a.transition(id, Event::Accept, Actor::Engineer, None).unwrap();
    let mut doc = automerge::AutoCommit::load(&a.document_bytes(id).unwrap()).unwrap();
    use automerge::transaction::Transactable;
    doc.put(automerge::ROOT, "priority", "Low").unwrap();
    doc.commit();
    a.store()
        .merge(
            &doc.save(),
            |o| onsite_core::OrderSummary {
                id: o.id.clone(),
                status: o.status,
                priority: "low".into(),
                customer: String::new(),
                site: String::new(),
                equipment: String::new(),
                engineer_id: o.engineer.id.clone(),
                reported_at: 0,
                appointment_start: None,
                appointment_end: None,
                sla_deadline: None,
                sla_kind: None,
                updated_at: 0,
                breached: false,
            },
            a.stamp(),
        )
        .unwrap();
    assert_eq!(a.get(id).unwrap().order.priority, Priority::Low);
    a.store().forget_synced(id).unwrap();
    let r = a.sync(&t, &fast(), None).unwrap();
    assert_eq!(r.orders_rejected, vec![RejectedOrder { id: id.clone(), code: "forbidden_field".into(), field: Some("priority".into()) }], "{r:?}");
    refused += 1;
    assert_eq!(r.orders_rebased, 1);
    let local = a.get(id).unwrap().order;
    assert_eq!(local.priority, Priority::Urgent, "the server's priority is back");
    assert!(local.notes.iter().any(|n| n.text == "valid local note"), "valid local work survives the reset");
    assert_eq!(local.status, Status::Accepted);
    assert!(a.journal(Some(id)).unwrap().iter().any(|e| e.body().unwrap().kind == "sync_reset"), "the reset is journaled");
    let r = a.sync(&t, &fast(), None).unwrap();
    assert!(r.orders_rejected.is_empty(), "{r:?}");
    let on_server = server_order(&s, id);
    assert_eq!(on_server.priority, Priority::Urgent);
    assert!(on_server.notes.iter().any(|n| n.text == "valid local note"));
    assert_eq!(on_server.status, Status::Accepted);
    assert_eq!(a.get(id).unwrap().order, on_server);

    // Cancelling is the dispatcher's: a device claiming it is refused.
    let mut doc = automerge::AutoCommit::load(&a.document_bytes(&ids[1]).unwrap()).unwrap();
    let mut o: WorkOrder = autosurgeon::hydrate(&doc).unwrap();
    o.transitions.push(onsite_core::order::TransitionRecord {
        from: o.status,
        to: Status::Cancelled,
        event: Event::Cancel { reason: "me".into() },
        at: Timestamp(1),
        monotonic_ms: 1,
        device: a.device_id().into(),
        fix: None,
    });
    o.status = Status::Cancelled;
    autosurgeon::reconcile(&mut doc, &o).unwrap();
    doc.commit();
    // The device refuses it as a peer document already (a crafted file cannot cancel)...
    assert!(matches!(a.merge_document(&doc.save()), Err(onsite_core::Error::Store(onsite_core::store::Error::Refused { .. }))));
    // ...and so does the server when it arrives as a push.
    let r = raw_push(&s, &a, &ids[1], &doc);
    assert_eq!(r.rejected.iter().map(|x| (x.id.clone(), x.field.clone())).collect::<Vec<_>>(), vec![(ids[1].clone(), Some("transitions".into()))]);
    refused += 1;
    assert_ne!(server_order(&s, &ids[1]).status, Status::Cancelled);

    // Reassignment moves access: A is told the order left, C receives it whole, and A's
    // later edits to it are refused.
    s.dispatcher.assign(&ids[1], "eng-2", "Zhang").unwrap();
    let r = a.sync(&t, &fast(), None).unwrap();
    assert_eq!(r.orders_removed, vec![ids[1].clone()]);
    assert!(!a.list(&Default::default()).unwrap().iter().any(|o| o.id == ids[1]), "a removed order leaves the list");
    assert!(a.get(&ids[1]).is_ok(), "and stays stored");
    let r = cdev.sync(&t, &fast(), None).unwrap();
    assert!(r.changed_orders.contains(&ids[1]), "{r:?}");
    assert_eq!(cdev.get(&ids[1]).unwrap().order.engineer.id, "eng-2");
    a.add_note(&ids[1], "still mine?").unwrap();
    a.store().set_doc_state(&ids[1], onsite_core::store::sync_store::DocState::Active, None).unwrap();
    let r = a.sync(&t, &fast(), None).unwrap();
    assert_eq!(r.orders_rejected.iter().map(|x| x.code.as_str()).collect::<Vec<_>>(), ["not_in_scope"]);
    refused += 1;
    assert!(!server_order(&s, &ids[1]).notes.iter().any(|n| n.text == "still mine?"));

    // Revocation: the device's next sync is refused and says so.
    s.dispatcher.revoke_device(cdev.device_id()).unwrap();
    match cdev.sync(&t, &fast(), None) {
        Err(onsite_core::Error::Sync(SyncError::Unauthorized(_))) => refused += 1,
        other => panic!("{other:?}"),
    }
    // An enrolment code works once.
    let code = s.dispatcher.enrolment_code("eng-3").unwrap();
    let dz = tempfile::tempdir().unwrap();
    let z = device(dz.path(), &c);
    z.enrol(&t, &s.url(), &code).unwrap();
    let dy = tempfile::tempdir().unwrap();
    let y = device(dy.path(), &c);
    assert!(matches!(y.enrol(&t, &s.url(), &code), Err(onsite_core::Error::Sync(SyncError::Refused(_)))));
    refused += 1;
    assert!(matches!(y.enrol(&t, &s.url(), "AAAA-BBBB-CCCC"), Err(onsite_core::Error::Sync(SyncError::Unauthorized(_)))));
    refused += 1;
    assert_eq!(refused, 11);
    eprintln!("authorization: {refused} forbidden requests refused");
}

/// Photos, journal and orders through a transport that drops, duplicates, reorders and
/// fails requests: everything converges, nothing is duplicated, nothing is lost.
#[test]
fn faults_between_client_and_server_converge() {
    let s = TestServer::start();
    let c = clock();
    let (ids, _dir, a) = synced_device(&s, &c, "WO-F", 4);
    // Work offline: transitions, notes, photos (one of them big enough for several chunks).
    let mut photos = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        a.transition(id, Event::Accept, Actor::Engineer, None).unwrap();
        a.add_note(id, &format!("note {i}")).unwrap();
        let (w, h) = if i == 0 { (1400, 1000) } else { (320, 240) };
        let r = a.ingest_photo(id, None, PhotoSource::Bytes(&onsite_tests::noisy_jpeg(w, h, i as u64)), None).unwrap();
        photos.push((r.sha256, r.size));
    }
    assert!(photos[0].1 > 3 * onsite_core::sync::protocol::BLOB_CHUNK as u64, "{}", photos[0].1);
    s.dispatcher.set_priority(&ids[1], "low").unwrap();

    use Fault::*;
    let plan = vec![
        Some(DropResponse), // journal: the server logged it, the device does not know
        Some(ReplayLater),  // journal again (now a duplicate) and stale after the next
        Some(Duplicate),    // sync
        Some(DropRequest),
        Some(Unavailable),
        None,
        Some(ReplayLater),
        Some(DropResponse),
        Some(BadGateway),
        Some(Duplicate),
        None,
        Some(DropResponse),
        Some(ReplayLater),
        Some(DropRequest),
        Some(Duplicate),
    ];
    let faulty = FaultyTransport::new(s.transport(), plan);
    let mut passes = 0;
    loop {
        passes += 1;
        c.advance(chrono::Duration::minutes(1));
        let r = a.sync(&faulty, &SyncOptions { max_attempts: 2, ..fast() }, None).unwrap();
        if r.complete() && a.sync_status().unwrap().pending_blobs == 0 {
            break;
        }
        assert!(passes < 12, "no convergence: {r:?}");
    }
    eprintln!("faults applied: {} over {} requests, {passes} passes", faulty.faults_applied(), faulty.log.lock().unwrap().len());
    assert!(faulty.faults_applied() >= 12);
    // One more clean pass to settle, then compare.
    a.sync(&s.transport(), &fast(), None).unwrap();
    let svc = &s.running.service;
    for id in &ids {
        assert_eq!(a.get(id).unwrap().order, server_order(&s, id));
    }
    assert_eq!(a.get(&ids[1]).unwrap().order.priority, Priority::Low);
    // No duplicate journal entries: the server's copy is exactly the device's.
    let device_journal = a.journal(None).unwrap();
    let devices = s.dispatcher.devices().unwrap();
    assert_eq!(devices[0]["journal_seq"].as_u64().unwrap(), device_journal.last().unwrap().seq);
    let leaves = svc.storage().log_leaves(PROVIDER).unwrap();
    assert_eq!(leaves.len() as u64, device_journal.last().unwrap().seq, "one log leaf per entry, no duplicates");
    // Blobs: each stored once, byte-exact.
    assert_eq!(svc.storage().blob_count(PROVIDER).unwrap(), photos.len() as u64);
    for (sha, size) in &photos {
        let bytes = s.dispatcher.blob(sha).unwrap();
        assert_eq!(bytes.len() as u64, *size);
        assert_eq!(onsite_core::hash::sha256_hex(&bytes), *sha);
    }
    // Notes were not duplicated by replays.
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(server_order(&s, id).notes.iter().filter(|n| n.text == format!("note {i}")).count(), 1);
    }
}

/// The server process is killed mid-upload and restarted; the app is closed mid-sync and
/// reopened. The photo upload resumes from the server's offset and completes once.
#[test]
#[allow(clippy::zombie_processes)] // every server started here is killed and waited for below
fn server_killed_mid_upload_and_app_restarted_resume() {
    use std::process::{Child, Command, Stdio};
    use std::sync::Mutex;

    let bin = onsite_tests::onsite_server_bin();
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}");
    let start = || -> Child {
        let child = Command::new(&bin)
            .args(["--data", dir.path().join("srv").to_str().unwrap(), "--listen", &format!("127.0.0.1:{port}"), "--admin-token", "adm", "--log", "warn"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        for _ in 0..200 {
            if onsite_core::sync::HttpTransport::new(&url).unwrap().send(&Request::new(Method::Get, "/health")).is_ok_and(|r| r.status == 200) {
                return child;
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        panic!("server did not start");
    };
    let server = Arc::new(Mutex::new(Some(start())));
    let token = onsite_server::client::create_provider(&url, "adm", PROVIDER, "P").unwrap();
    let dispatcher = onsite_server::client::DispatcherClient::new(&url, &token).unwrap();
    let ids = dispatcher.create_orders(&sample_orders(PROVIDER, "eng-1", "WO-K", 1)).unwrap();
    let c = clock();
    let da = tempfile::tempdir().unwrap();
    let sha;
    {
        let a = device(da.path(), &c);
        a.enrol(&onsite_core::sync::HttpTransport::new(&url).unwrap(), &url, &dispatcher.enrolment_code("eng-1").unwrap()).unwrap();
        a.sync(&onsite_core::sync::HttpTransport::new(&url).unwrap(), &fast(), None).unwrap();
        let r = a.ingest_photo(&ids[0], None, PhotoSource::Bytes(&onsite_tests::noisy_jpeg(1600, 1100, 9)), None).unwrap();
        sha = r.sha256;
        // The third chunk PUT kills the server: the pass ends with the photo pending.
        let puts = Arc::new(Mutex::new(0));
        let (p2, srv) = (puts.clone(), server.clone());
        let mut t = FaultyTransport::new(onsite_core::sync::HttpTransport::new(&url).unwrap(), vec![]);
        t.hook = Some(Arc::new(move |req: &Request| {
            if req.method == Method::Put {
                let mut n = p2.lock().unwrap();
                *n += 1;
                if *n == 3 {
                    if let Some(mut child) = srv.lock().unwrap().take() {
                        child.kill().unwrap();
                        child.wait().unwrap();
                    }
                }
            }
        }));
        let r = a.sync(&t, &SyncOptions { max_attempts: 2, ..fast() }, None).unwrap();
        assert!(!r.complete(), "the kill must interrupt the upload: {r:?}");
        assert_eq!(a.sync_status().unwrap().pending_blobs, 1);
        // The app is closed here (the device is dropped with the upload half done).
    }
    *server.lock().unwrap() = Some(start());
    let a = device(da.path(), &c);
    let t = onsite_core::sync::HttpTransport::new(&url).unwrap();
    // The photo was backed off; a later pass (the clock moved on) resumes it.
    c.advance(chrono::Duration::minutes(5));
    let r = a.sync(&t, &fast(), None).unwrap();
    assert!(r.complete(), "{r:?}");
    assert_eq!(r.blobs_uploaded, 1);
    let size = a.verify_blob(&sha).unwrap();
    assert!(r.blob_bytes < size, "resumed, not restarted: sent {} of {size}", r.blob_bytes);
    let bytes = dispatcher.blob(&sha).unwrap();
    assert_eq!(onsite_core::hash::sha256_hex(&bytes), sha);
    assert_eq!(a.sync_status().unwrap().pending_blobs, 0);
    let last = server.lock().unwrap().take();
    if let Some(mut child) = last {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// A photo whose local bytes were damaged can never upload: the device's decryption refuses
/// them, the outbox retries with backoff, then marks it wedged with the reason; other work goes on.
#[test]
fn a_damaged_photo_is_wedged_with_its_reason() {
    let s = TestServer::start();
    let ids = s.dispatcher.create_orders(&sample_orders(PROVIDER, "eng-1", "WO-W", 1)).unwrap();
    let c = clock();
    let da = tempfile::tempdir().unwrap();
    let a = device(da.path(), &c);
    s.enrol(&a, "eng-1");
    let t = s.transport();
    a.sync(&t, &fast(), None).unwrap();
    let good = a.ingest_photo(&ids[0], None, PhotoSource::Bytes(&onsite_tests::noisy_jpeg(200, 150, 1)), None).unwrap();
    let bad = a.ingest_photo(&ids[0], None, PhotoSource::Bytes(&onsite_tests::noisy_jpeg(200, 150, 2)), None).unwrap();
    let path = a.blob_path(&bad.sha256);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    a.add_note(&ids[0], "photos taken").unwrap();
    let mut wedged = None;
    for pass in 1..=5 {
        c.advance(chrono::Duration::minutes(10));
        let r = a.sync(&t, &fast(), None).unwrap();
        assert_eq!(r.errors.len(), if pass <= 3 { 1 } else { 0 }, "pass {pass}: {r:?}");
        let st = a.sync_status().unwrap();
        if !st.wedged.is_empty() {
            wedged = Some((pass, st));
            break;
        }
    }
    let (pass, st) = wedged.expect("the damaged photo is wedged");
    assert_eq!(pass, 3, "wedged after three permanent failures");
    assert_eq!(st.wedged.len(), 1);
    assert_eq!(st.wedged[0].0, bad.sha256);
    // The device's authenticated encryption catches the damage before any byte is sent
    // (a plain store's damage was caught by the server's hash check).
    assert!(st.wedged[0].1.contains("cannot be read") && st.wedged[0].1.contains("damaged"), "{:?}", st.wedged);
    assert_eq!(st.pending_blobs, 0, "wedged items are not pending");
    assert_eq!(st.pending_orders, 0, "the order and the good photo went through");
    assert!(s.running.service.storage().has_blob(PROVIDER, &good.sha256).unwrap());
    assert!(!s.running.service.storage().has_blob(PROVIDER, &bad.sha256).unwrap());
}

/// Many changes on one order make the server compact its history; a device that was away
/// gets the whole document and converges, and a new device of the engineer gets it too.
#[test]
fn server_compaction_keeps_devices_converging() {
    let s = TestServer::start();
    let ids = s.dispatcher.create_orders(&sample_orders(PROVIDER, "eng-1", "WO-M", 1)).unwrap();
    let id = &ids[0];
    let c = clock();
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = device(da.path(), &c);
    s.enrol(&a, "eng-1");
    let t = s.transport();
    a.sync(&t, &fast(), None).unwrap();
    for i in 0..(onsite_server::service::COMPACT_AFTER + 6) {
        a.add_note(id, &format!("n{i}")).unwrap();
        a.sync(&t, &fast(), None).unwrap();
        if i % 10 == 0 {
            s.dispatcher.set_priority(id, if i % 20 == 0 { "low" } else { "normal" }).unwrap();
        }
    }
    let row = s.running.service.storage().order(PROVIDER, id).unwrap().unwrap();
    assert!(row.compacted_seq > row.assigned_seq, "the server compacted: {row:?}");
    assert!(s.running.service.storage().change_rows(PROVIDER, id).unwrap() < onsite_server::service::COMPACT_AFTER);
    a.sync(&t, &fast(), None).unwrap();
    let b = device(db.path(), &c);
    s.enrol(&b, "eng-1");
    b.sync(&t, &fast(), None).unwrap();
    let on_server = server_order(&s, id);
    assert_eq!(a.get(id).unwrap().order, on_server);
    assert_eq!(b.get(id).unwrap().order, on_server);
    assert_eq!(on_server.notes.len() as u64, onsite_server::service::COMPACT_AFTER + 6);
}

/// An instance that died after storing a photo's last chunk (and even the blob) but before
/// recording it left an upload whose every byte is there. The device, asking where the
/// upload stands, hears "all of it" and sends nothing more: the server must finish and
/// record it then, or the photo is in the object store and missing from the evidence.
#[test]
fn an_upload_whose_every_byte_arrived_is_finished_when_asked_about() {
    let s = TestServer::start();
    let svc = &s.running.service;
    let store = svc.blob_store();
    for (k, with_blob) in [(1u64, false), (2, true)] {
        let bytes = onsite_tests::noisy_jpeg(64, 48, k);
        let sha = onsite_core::hash::sha256_hex(&bytes);
        let len = bytes.len();
        store.put(&format!("uploads/{PROVIDER}/{sha}/{len}/{:020}", 0), &bytes).unwrap();
        if with_blob {
            store.put(&format!("blobs/{PROVIDER}/{}/{sha}", &sha[..2]), &bytes).unwrap();
        }
        assert!(!svc.storage().has_blob(PROVIDER, &sha).unwrap());
        assert_eq!(svc.blob_state(PROVIDER, &sha).unwrap(), Some((len as u64, len as u64)));
        assert!(svc.storage().has_blob(PROVIDER, &sha).unwrap(), "the finished upload is recorded");
        assert_eq!(svc.blob_bytes(PROVIDER, &sha).unwrap(), bytes);
        assert!(store.list(&format!("uploads/{PROVIDER}/{sha}/")).unwrap().is_empty(), "no chunk is left");
    }
    // Bytes that do not hash to the name: discarded, and the device starts again.
    let sha = onsite_core::hash::sha256_hex(b"the real photo");
    store.put(&format!("uploads/{PROVIDER}/{sha}/5/{:020}", 0), b"other").unwrap();
    assert_eq!(svc.blob_state(PROVIDER, &sha).unwrap(), None);
    assert!(!svc.storage().has_blob(PROVIDER, &sha).unwrap());
}

#[derive(Default)]
struct Changes(std::sync::Mutex<Vec<(Vec<String>, onsite_core::ChangeOrigin)>>);

impl onsite_core::ChangeListener for Changes {
    fn orders_changed(&self, ids: &[String], origin: onsite_core::ChangeOrigin) {
        self.0.lock().unwrap().push((ids.to_vec(), origin));
    }
}

#[test]
fn screens_are_told_what_changed_locally_and_through_sync() {
    use onsite_core::ChangeOrigin::{Local, Remote};
    let s = TestServer::start();
    let ids = s.dispatcher.create_orders(&sample_orders(PROVIDER, "eng-1", "WO-N", 2)).unwrap();
    let c = clock();
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = (device(da.path(), &c), device(db.path(), &c));
    s.enrol(&a, "eng-1");
    s.enrol(&b, "eng-1");
    let seen = Arc::new(Changes::default());
    let sub = b.subscribe(seen.clone());
    let t = s.transport();

    // The first pull: both orders arrive as one remote notification.
    b.sync(&t, &fast(), None).unwrap();
    assert_eq!(seen.0.lock().unwrap().as_slice(), &[(ids.clone(), Remote)]);
    // A local edit on B names its order.
    b.add_note(&ids[0], "parts ordered").unwrap();
    assert_eq!(seen.0.lock().unwrap().last().unwrap(), &(vec![ids[0].clone()], Local));
    // A's edit and the dispatcher's arrive at B through sync, as remote changes.
    a.sync(&t, &fast(), None).unwrap();
    a.transition(&ids[1], Event::Accept, Actor::Engineer, None).unwrap();
    a.sync(&t, &fast(), None).unwrap();
    s.dispatcher.set_priority(&ids[0], "low").unwrap();
    let n = seen.0.lock().unwrap().len();
    b.sync(&t, &fast(), None).unwrap();
    let after = seen.0.lock().unwrap()[n..].to_vec();
    assert_eq!(after, vec![(ids.clone(), Remote)], "one notification per pass, both orders");
    // An idle pass tells nobody; a dropped subscription hears nothing more.
    b.sync(&t, &fast(), None).unwrap();
    assert_eq!(seen.0.lock().unwrap().len(), n + 1);
    drop(sub);
    b.add_note(&ids[1], "after unsubscribe").unwrap();
    assert_eq!(seen.0.lock().unwrap().len(), n + 1);
}

#[test]
fn a_cancelled_pass_stops_and_the_next_one_finishes_the_work() {
    let s = TestServer::start();
    let ids = s.dispatcher.create_orders(&sample_orders(PROVIDER, "eng-1", "WO-X", 2)).unwrap();
    let c = clock();
    let da = tempfile::tempdir().unwrap();
    let a = device(da.path(), &c);
    s.enrol(&a, "eng-1");
    let t = s.transport();
    a.sync(&t, &fast(), None).unwrap();
    a.add_note(&ids[0], "written before the cancel").unwrap();
    let cancel = onsite_core::Cancel::new();
    cancel.cancel();
    let opts = SyncOptions { cancel: cancel.clone(), ..fast() };
    assert!(matches!(a.sync(&t, &opts, None), Err(onsite_core::Error::Cancelled)));
    let st = a.sync_status().unwrap();
    assert!(st.pending_orders >= 1 && st.pending_journal >= 1, "nothing was sent: {st:?}");
    assert_eq!(st.last_error, None, "a cancel is not an error");
    a.sync(&t, &fast(), None).unwrap();
    assert_eq!(a.sync_status().unwrap().pending_orders, 0);
    assert!(server_order(&s, &ids[0]).notes.iter().any(|n| n.text == "written before the cancel"));
}

/// Found by the multi-instance test: an order reassigned away and back again must return to
/// the device's list, whether the device saw the removal or not, and whether the order changed
/// while it was away or not.
#[test]
fn an_order_reassigned_away_and_back_returns_to_the_device() {
    let s = TestServer::start();
    let ids = s.dispatcher.create_orders(&sample_orders(PROVIDER, "eng-1", "WO-B", 2)).unwrap();
    let c = clock();
    let da = tempfile::tempdir().unwrap();
    let a = device(da.path(), &c);
    s.enrol(&a, "eng-1");
    let t = s.transport();
    a.sync(&t, &fast(), None).unwrap();
    let listed = |d: &Device| -> Vec<String> { d.list(&Default::default()).unwrap().into_iter().map(|o| o.id).collect() };
    for (round, changed_while_away) in [(0, false), (1, true)] {
        let id = &ids[round];
        s.dispatcher.assign(id, "eng-2", "Zhang").unwrap();
        assert_eq!(a.sync(&t, &fast(), None).unwrap().orders_removed, vec![id.clone()]);
        assert!(!listed(&a).contains(id));
        if changed_while_away {
            s.dispatcher.set_priority(id, "urgent").unwrap();
        }
        s.dispatcher.assign(id, "eng-1", "Li").unwrap();
        let r = a.sync(&t, &fast(), None).unwrap();
        assert!(r.complete(), "{r:?}");
        assert!(listed(&a).contains(id), "round {round}: the order came back but the device still hides it");
        assert_eq!(a.sync_status().unwrap().removed_orders, 0, "round {round}");
        assert_eq!(heads(&a, id), {
            let mut h = automerge::AutoCommit::load(&s.running.service.storage().document(PROVIDER, id).unwrap().concat()).unwrap().get_heads();
            h.sort();
            h
        });
    }
}

/// `POST /v1/sync?wait_ms=N` with `token` and `cursor`: the answer and how long it took.
pub fn long_poll(url: &str, token: &str, cursor: u64, wait_ms: u64) -> (onsite_core::sync::protocol::SyncResponse, std::time::Duration) {
    use onsite_core::sync::protocol;
    let body = protocol::encode(&protocol::SyncRequest { v: protocol::VERSION, cursor, ..Default::default() }).unwrap();
    let req = Request::new(Method::Post, format!("/v1/sync?wait_ms={wait_ms}")).header("authorization", format!("Bearer {token}")).body(body);
    let started = std::time::Instant::now();
    let resp = onsite_core::sync::transport::HttpTransport::new(url).unwrap().send(&req).unwrap();
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    (protocol::decode_response(&resp.body).unwrap(), started.elapsed())
}

#[test]
fn an_idle_device_waiting_on_sync_hears_of_a_dispatcher_edit_at_once() {
    let s = TestServer::start();
    let ids = s.dispatcher.create_orders(&sample_orders(PROVIDER, "eng-1", "WO-L", 2)).unwrap();
    let other = s.dispatcher.create_orders(&sample_orders(PROVIDER, "eng-2", "WO-O", 1)).unwrap();
    let c = clock();
    let da = tempfile::tempdir().unwrap();
    let a = device(da.path(), &c);
    s.enrol(&a, "eng-1");
    a.sync(&s.transport(), &fast(), None).unwrap();
    let token = a.store().meta(onsite_core::store::MetaKey::SyncToken).unwrap().unwrap();
    let cursor = s.running.service.head().unwrap();
    // Nothing new: the wait runs to its end and answers empty with the same cursor.
    let (r, took) = long_poll(&s.url(), &token, cursor, 300);
    assert!(r.docs.is_empty() && r.cursor == cursor, "{r:?}");
    assert!(took >= std::time::Duration::from_millis(250), "an idle long-poll answered early ({took:?})");
    // Another engineer's order changing does not wake this device with an answer...
    let url = s.url();
    let waiter = std::thread::spawn(move || long_poll(&url, &token, cursor, 20_000));
    std::thread::sleep(std::time::Duration::from_millis(200));
    s.dispatcher.set_priority(&other[0], "low").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(!waiter.is_finished(), "a change outside the device's scope ended the wait");
    // ...its own order does, long before the 20 s deadline.
    s.dispatcher.set_priority(&ids[1], "low").unwrap();
    let (r, took) = waiter.join().unwrap();
    assert_eq!(r.docs.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), [ids[1].as_str()], "{r:?}");
    assert!(r.cursor > cursor);
    assert!(took < std::time::Duration::from_secs(10), "the edit did not wake the waiting sync ({took:?})");
}

/// SIGTERM drains: a device long-polling when the server is told to stop gets its (empty)
/// answer at once, not a cut connection 10 s later, and the process exits cleanly.
#[test]
fn sigterm_answers_a_waiting_long_poll_and_exits_cleanly() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(onsite_tests::onsite_server_bin())
        .arg("--data")
        .arg(dir.path().join("server"))
        .args(["--listen", "127.0.0.1:0", "--admin-token", "adm", "--log", "warn"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let url = line.trim().strip_prefix("onsite-server listening on ").unwrap().to_string();
    let token = onsite_server::client::create_provider(&url, "adm", PROVIDER, "P").unwrap();
    let d = onsite_server::client::DispatcherClient::new(&url, &token).unwrap();
    d.create_orders(&sample_orders(PROVIDER, "eng-1", "WO-T", 1)).unwrap();
    let c = clock();
    let da = tempfile::tempdir().unwrap();
    let a = device(da.path(), &c);
    let t = onsite_core::sync::transport::HttpTransport::new(&url).unwrap();
    a.enrol(&t, &url, &d.enrolment_code("eng-1").unwrap()).unwrap();
    a.sync(&t, &fast(), None).unwrap();
    let device_token = a.store().meta(onsite_core::store::MetaKey::SyncToken).unwrap().unwrap();
    // The server's head now; nothing changes after this.
    let head = long_poll(&url, &device_token, 0, 0).0.cursor;
    let u = url.clone();
    let waiter = std::thread::spawn(move || long_poll(&u, &device_token, head, 20_000));
    std::thread::sleep(std::time::Duration::from_millis(300));
    let started = std::time::Instant::now();
    assert!(std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    let (r, _) = waiter.join().unwrap();
    assert!(r.docs.is_empty() && r.cursor == head, "{r:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "the long-poll was held through the drain ({:?})", started.elapsed());
    assert!(child.wait().unwrap().success(), "the server exits 0 after draining");
}

/// Runs `edit` once, when the device's first journal upload goes out.
struct EditDuringJournal<'a, T: Transport> {
    inner: T,
    edit: Box<dyn Fn() + Send + Sync + 'a>,
    done: std::sync::atomic::AtomicBool,
}

impl<T: Transport> Transport for EditDuringJournal<'_, T> {
    fn send(&self, request: &Request) -> Result<onsite_core::sync::transport::Response, onsite_core::sync::transport::NetError> {
        if request.path == "/v1/journal" && !self.done.swap(true, std::sync::atomic::Ordering::SeqCst) {
            (self.edit)();
        }
        self.inner.send(request)
    }
}

/// An edit made while the journal uploads (the app stays usable during a sync) reaches the
/// server by the next pass at the latest, and nothing is left pending after it. Written when
/// the orders were read on a second thread during the upload (measured, not kept: ADR 0016),
/// where the edit could land between the read of an order's flag and of its changes.
#[test]
fn an_edit_made_while_the_journal_uploads_is_pushed() {
    let s = TestServer::start();
    let c = clock();
    let (ids, _dir, a) = synced_device(&s, &c, "WO-J", 6);
    for round in 0..3 {
        for id in &ids {
            a.add_note(id, &format!("offline {round}")).unwrap();
        }
        let during = format!("written while the journal uploaded {round}");
        let t = EditDuringJournal {
            inner: s.transport(),
            edit: Box::new(|| {
                for id in [&ids[0], &ids[5]] {
                    a.add_note(id, &during).unwrap();
                }
            }),
            done: Default::default(),
        };
        let first = a.sync(&t, &fast(), None).unwrap();
        assert!(first.complete(), "{first:?}");
        assert_eq!(first.orders_pushed, 6, "round {round}: {first:?}");
        a.sync(&s.transport(), &fast(), None).unwrap();
        assert_eq!(a.sync_status().unwrap().pending_orders, 0);
        for id in &ids {
            let notes = server_order(&s, id).notes;
            assert!(notes.iter().any(|n| n.text == format!("offline {round}")), "{id}");
        }
        for id in [&ids[0], &ids[5]] {
            assert!(server_order(&s, id).notes.iter().any(|n| n.text == during), "{id} round {round}");
            assert_eq!(server_order(&s, id), a.get(id).unwrap().order, "{id} round {round}");
        }
    }
}

/// An order edited after the pass read its flag but before it read its changes: the edit goes
/// with that push and the order stays flagged, with nothing left to send. The next pass must
/// settle it without a push; the server refused an empty push as invalid, which took the
/// order out of sync for good. Reproduced step by step with the store's own calls.
#[test]
fn an_order_flagged_with_nothing_left_to_send_is_settled_not_pushed() {
    let s = TestServer::start();
    let (ids, _dir, a) = synced_device(&s, &clock(), "WO-E", 1);
    let id = &ids[0];
    let t = s.transport();
    a.add_note(id, "first").unwrap();
    let store = a.store();
    let pending = store.pending_docs().unwrap();
    assert_eq!(pending.len(), 1);
    a.add_note(id, "after the flag was read").unwrap();
    let out = store.outgoing(id).unwrap();
    let push = |changes: Vec<u8>| raw_push_bytes(&s, &a, id, changes);
    assert!(push(out.changes).rejected.is_empty());
    store.mark_pushed(id, pending[0].gen, &out.heads, Some(out.through)).unwrap();
    assert_eq!(a.sync_status().unwrap().pending_orders, 1, "the flag stays: an edit came after it was read");

    let r = a.sync(&t, &fast(), None).unwrap();
    assert!(r.orders_rejected.is_empty(), "{r:?}");
    assert_eq!(r.orders_pushed, 0, "nothing to send, nothing pushed: {r:?}");
    assert_eq!(a.sync_status().unwrap().pending_orders, 0);
    // The order still syncs.
    a.add_note(id, "later").unwrap();
    assert_eq!(a.sync(&t, &fast(), None).unwrap().orders_pushed, 1);
    let notes: Vec<String> = server_order(&s, id).notes.into_iter().map(|n| n.text).collect();
    assert!(["first", "after the flag was read", "later"].iter().all(|n| notes.iter().any(|x| x == n)), "{notes:?}");

    // A server still answers an empty push (from a device before this fix) as no change.
    let before = server_order(&s, id);
    let answer = push(Vec::new());
    assert!(answer.rejected.is_empty(), "{:?}", answer.rejected);
    assert_eq!(server_order(&s, id), before);
}

/// The change hashes in `bytes` (concatenated change chunks).
fn change_hashes(bytes: &[u8]) -> std::collections::BTreeSet<automerge::ChangeHash> {
    let chunks = onsite_core::order::document::split_chunks(bytes).unwrap();
    chunks.into_iter().map(|(_, c)| automerge::Change::try_from(c).unwrap().hash()).collect()
}

/// A synced order's edits go up as the chunks the store wrote, with no document loaded, and
/// they are the same changes the document would give. Past the usual compaction limit the
/// unsent chunks wait for the push; the edit after it compacts and keeps only itself.
#[test]
fn a_push_sends_the_stored_chunks_the_server_lacks() {
    let s = TestServer::start();
    let (ids, _dir, a) = synced_device(&s, &clock(), "WO-M", 1);
    let (id, t, store) = (&ids[0], s.transport(), a.store());
    let same_as_document = |edits: usize| {
        let synced = store.pending_docs().unwrap()[0].synced_heads.clone();
        let loads = store.document_loads();
        let out = store.outgoing(id).unwrap();
        assert_eq!(store.document_loads(), loads, "read from the stored chunks, not the document");
        let (whole, heads) = store.changes_since(id, &synced).unwrap();
        assert_eq!(change_hashes(&out.changes), change_hashes(&whole));
        assert_eq!(change_hashes(&out.changes).len(), edits);
        assert_eq!(out.heads, heads);
    };
    for k in 0..3 {
        a.add_note(id, &format!("note {k}")).unwrap();
    }
    same_as_document(3);
    for k in 3..(onsite_core::store::COMPACT_CHUNKS as usize + 8) {
        a.add_note(id, &format!("note {k}")).unwrap();
    }
    same_as_document(onsite_core::store::COMPACT_CHUNKS as usize + 8);
    assert_eq!(a.sync(&t, &fast(), None).unwrap().orders_pushed, 1);
    assert_eq!(server_order(&s, id), a.get(id).unwrap().order);

    a.add_note(id, "after the push").unwrap();
    same_as_document(1);
    assert_eq!(a.sync(&t, &fast(), None).unwrap().orders_pushed, 1);
    assert_eq!(server_order(&s, id), a.get(id).unwrap().order, "the compacted document with its kept chunk loads the same");
    // A reopened store reads the same.
    drop(a);
    let a = device(_dir.path(), &clock());
    assert_eq!(server_order(&s, id), a.get(id).unwrap().order);
}

/// A push read before a compaction renumbered the chunks must not mark the chunks numbered
/// after it as sent: the edits after the read would never reach the server.
#[test]
fn a_push_read_before_a_compaction_marks_nothing_after_it() {
    let s = TestServer::start();
    let (ids, _dir, a) = synced_device(&s, &clock(), "WO-N", 1);
    let (id, t, store) = (&ids[0], s.transport(), a.store());
    for k in 0..(onsite_core::store::COMPACT_CHUNKS - 1) {
        a.add_note(id, &format!("note {k}")).unwrap();
    }
    assert_eq!(a.sync(&t, &fast(), None).unwrap().orders_pushed, 1);
    a.add_note(id, "read for the push").unwrap();
    let gen = store.pending_docs().unwrap()[0].gen;
    let out = store.outgoing(id).unwrap();
    assert!(raw_push_bytes(&s, &a, id, out.changes).rejected.is_empty());
    // Meanwhile the next edit goes over the chunk limit and compacts; one more after it.
    a.add_note(id, "compacted").unwrap();
    a.add_note(id, "after the compaction").unwrap();
    store.mark_pushed(id, gen, &out.heads, Some(out.through)).unwrap();

    let r = a.sync(&t, &fast(), None).unwrap();
    assert!(r.orders_rejected.is_empty(), "{r:?}");
    let notes: Vec<String> = server_order(&s, id).notes.into_iter().map(|n| n.text).collect();
    assert!(["read for the push", "compacted", "after the compaction"].iter().all(|n| notes.iter().any(|x| x == n)), "{notes:?}");
    assert_eq!(server_order(&s, id), a.get(id).unwrap().order);
}

/// Random interleavings on two orders of edits, syncs, dispatcher edits, pushes whose answer
/// was lost and long notes (over the compaction byte limits): after a last sync the server has
/// exactly the device's orders. Pushes come from the stored chunks whenever the mark allows.
#[test]
fn pushes_from_stored_chunks_converge_under_random_interleavings() {
    let s = TestServer::start();
    let (ids, dir, a) = synced_device(&s, &clock(), "WO-R", 2);
    let (t, store) = (s.transport(), a.store());
    for seed in [0x9e37_79b9_7f4a_7c15u64, 0x2545_f491_4f6c_dd1d] {
        let mut x = seed;
        let mut next = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        for step in 0..120 {
            let id = &ids[next(2) as usize];
            match next(20) {
                0..=11 => drop(a.add_note(id, &format!("{seed:x} step {step}")).unwrap()),
                12..=14 => {
                    let r = a.sync(&t, &fast(), None).unwrap();
                    assert!(r.orders_rejected.is_empty() && r.complete(), "{r:?}");
                }
                15 => drop(s.dispatcher.set_priority(id, if step % 2 == 0 { "low" } else { "normal" }).unwrap()),
                16..=17 => {
                    // A push whose answer never came back: the mark stays where it was.
                    let out = store.outgoing(id).unwrap();
                    if !out.changes.is_empty() {
                        assert!(raw_push_bytes(&s, &a, id, out.changes).rejected.is_empty());
                    }
                }
                _ => drop(a.add_note(id, &format!("{step}: {}", "长".repeat(3900))).unwrap()),
            }
        }
        for _ in 0..2 {
            assert!(a.sync(&t, &fast(), None).unwrap().complete());
        }
        for id in &ids {
            assert_eq!(server_order(&s, id), a.get(id).unwrap().order, "{id}, seed {seed:x}");
        }
    }
    drop(a);
    let a = device(dir.path(), &clock());
    for id in &ids {
        assert_eq!(server_order(&s, id), a.get(id).unwrap().order, "{id} after reopening");
    }
}
