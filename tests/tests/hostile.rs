//! Hostile clients against a real `onsite-server` on loopback: forged lifecycles, malformed
//! requests, unauthenticated bodies, credential guessing, and the error format of every
//! refusal. Each test names the class it covers.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use onsite_core::clock::ManualClock;
use onsite_core::device::SyncOptions;
use onsite_core::order::{Actor, Event, GpsFix, Status, Timestamp, TransitionRecord};
use onsite_core::sync::protocol::{self, DocPush, SyncRequest};
use onsite_core::{Device, WorkOrder};
use onsite_server::client::sample_orders;
use onsite_tests::net::{TestServer, PROVIDER};

/// One raw HTTP/1.1 exchange (`Connection: close`): status and body.
fn raw(s: &TestServer, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, Vec<u8>) {
    let mut c = TcpStream::connect(s.running.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: {}\r\n", body.len());
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    c.write_all(head.as_bytes()).unwrap();
    let _ = c.write_all(body); // the server may close early on a refused body
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = out.windows(4).position(|w| w == b"\r\n\r\n").map(|i| out[i + 4..].to_vec()).unwrap_or_default();
    (status, body)
}

/// The body is the documented `{error, reason}` JSON (chunked bodies are de-chunked first).
fn error_json(body: &[u8]) -> serde_json::Value {
    let text = String::from_utf8_lossy(body);
    let start = text.find('{').unwrap_or_else(|| panic!("no JSON in {text:?}"));
    let end = text.rfind('}').unwrap();
    let v: serde_json::Value = serde_json::from_str(&text[start..=end]).unwrap();
    assert!(v["error"].is_string() && v["reason"].is_string(), "{v}");
    v
}

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::at(chrono::DateTime::parse_from_rfc3339("2026-11-23T09:00:00+08:00").unwrap().with_timezone(&chrono::Utc)))
}

fn fast() -> SyncOptions {
    SyncOptions { base_backoff_ms: 1, max_backoff_ms: 5, max_attempts: 3, ..SyncOptions::default() }
}

struct Field {
    s: TestServer,
    device: Device,
    ids: Vec<String>,
    _dir: tempfile::TempDir,
}

fn field() -> Field {
    let s = TestServer::start();
    let ids = s.dispatcher.create_orders(&sample_orders(PROVIDER, "eng-1", "WO-H", 2)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let device = Device::open(onsite_tests::options(dir.path()).with_clock(clock())).unwrap();
    s.enrol(&device, "eng-1");
    device.sync(&s.transport(), &fast(), None).unwrap();
    Field { s, device, ids, _dir: dir }
}

fn token(d: &Device) -> String {
    d.store().meta(onsite_core::store::MetaKey::SyncToken).unwrap().unwrap()
}

fn post_sync(f: &Field, req: &SyncRequest) -> (u16, Vec<u8>) {
    let t = format!("Bearer {}", token(&f.device));
    raw(&f.s, "POST", "/v1/sync", &[("authorization", &t), ("content-type", "application/cbor")], &protocol::encode(req).unwrap())
}

/// A push of `o` written over the device's document: what a hand-made client can send.
fn forged_push(f: &Field, id: &str, edit: impl FnOnce(&mut WorkOrder)) -> protocol::SyncResponse {
    let mut doc = automerge::AutoCommit::load(&f.device.document_bytes(id).unwrap()).unwrap();
    let heads = doc.get_heads();
    let mut o: WorkOrder = autosurgeon::hydrate(&doc).unwrap();
    edit(&mut o);
    autosurgeon::reconcile(&mut doc, &o).unwrap();
    let changes = doc.save_after(&heads);
    let (status, body) = post_sync(f, &SyncRequest { v: 1, cursor: 0, push: vec![DocPush { id: id.into(), changes }], ..Default::default() });
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    protocol::decode_response(&body).unwrap()
}

#[test]
fn a_device_cannot_write_the_lifecycle_without_the_lifecycle() {
    let f = field();
    let id = f.ids[0].clone();
    let me = f.device.device_id().to_string();
    // Status written directly, to cancelled and to completed.
    for forged in [Status::Cancelled, Status::Completed] {
        let r = forged_push(&f, &id, |o| o.status = forged);
        assert_eq!(r.rejected.len(), 1, "{forged}: {r:?}");
        assert_eq!(r.rejected[0].field.as_deref(), Some("status"));
    }
    // A "completed" path of legal-looking steps but without a delivered receipt.
    let r = forged_push(&f, &id, |o| {
        let steps = [
            (Status::Assigned, Event::Accept, Status::Accepted),
            (
                Status::Accepted,
                Event::ContactCustomer { window: onsite_core::order::TimeWindow { start: Timestamp(1), end: Timestamp(2) } },
                Status::CustomerContacted,
            ),
            (Status::CustomerContacted, Event::Depart, Status::EnRoute),
            (Status::EnRoute, Event::Arrive, Status::OnSite),
            (Status::OnSite, Event::StartWork, Status::InProgress),
            (Status::InProgress, Event::RequestSignature, Status::AwaitingSignature),
            (Status::AwaitingSignature, Event::Complete, Status::Completed),
        ];
        for (from, event, to) in steps {
            o.transitions.push(TransitionRecord { from, to, event, at: Timestamp(3), monotonic_ms: 1, device: me.clone(), fix: None });
        }
        o.status = Status::Completed;
        o.receipts.push(onsite_core::order::ReceiptRef {
            revision: 1,
            sha256: "cd".repeat(32),
            decision: "signed".into(),
            signed_at: Timestamp(3),
            device: me.clone(),
        });
    });
    assert_eq!(r.rejected.len(), 1, "{r:?}");
    assert!(r.rejected[0].reason.contains("receipt"), "{r:?}");
    // A jump that is not an edge.
    let r = forged_push(&f, &id, |o| {
        o.transitions.push(TransitionRecord {
            from: Status::Assigned,
            to: Status::OnSite,
            event: Event::Arrive,
            at: Timestamp(3),
            monotonic_ms: 1,
            device: me.clone(),
            fix: None,
        });
        o.status = Status::OnSite;
    });
    assert_eq!(r.rejected[0].field.as_deref(), Some("transitions"));
    // The server's order is untouched: the dispatcher still assigns and cancels.
    let order = f.s.running.service.order(PROVIDER, &id).unwrap();
    assert_eq!((order.status, order.transitions.len()), (Status::Assigned, 0));
    f.s.dispatcher.assign(&id, "eng-1", "Li").unwrap();
    f.s.dispatcher.cancel(&id, "customer withdrew").unwrap();
    assert!(f.s.dispatcher.close(&id, "coordinator").is_err(), "a cancelled order without work is not closed out as done");
    // The device's own lifecycle still works.
    f.device.transition(&f.ids[1], Event::Accept, Actor::Engineer, None).unwrap();
    let r = f.device.sync(&f.s.transport(), &fast(), None).unwrap();
    assert!(r.orders_rejected.is_empty(), "{r:?}");
}

/// A hand-made client cannot put a NaN or out-of-range fix into the record (an arrival "NaN m
/// from the site" passes for a distance nobody can check), nor a NaN measurement.
#[test]
fn a_pushed_step_with_a_fix_that_is_not_a_fix_is_refused() {
    let f = field();
    let id = f.ids[0].clone();
    let me = f.device.device_id().to_string();
    let step = |fix: Option<GpsFix>| TransitionRecord {
        from: Status::Assigned,
        to: Status::Accepted,
        event: Event::Accept,
        at: Timestamp(3),
        monotonic_ms: 1,
        device: me.clone(),
        fix,
    };
    let fix = |lat: f64, lon: f64| Some(GpsFix { lat, lon, accuracy_m: 5.0, source: onsite_core::order::LocationSource::Gps, mock: false });
    for bad in [fix(f64::NAN, 116.4), fix(39.9, f64::NAN), fix(391.0, 116.4), fix(39.9, -1e9)] {
        let r = forged_push(&f, &id, |o| {
            o.transitions.push(step(bad));
            o.status = Status::Accepted;
        });
        assert_eq!(r.rejected.len(), 1, "{bad:?}: {r:?}");
        assert_eq!(r.rejected[0].field.as_deref(), Some("transitions"), "{r:?}");
        assert!(r.rejected[0].reason.contains("fix."), "{r:?}");
    }
    let r = forged_push(&f, &id, |o| {
        o.checklist.answers.push(onsite_core::order::checklist::AnswerRecord {
            step: "measure".into(),
            value: onsite_core::order::checklist::Answer::Measurement { value: f64::NAN },
            at: Timestamp(3),
            monotonic_ms: 1,
            device: me.clone(),
        });
    });
    assert_eq!(r.rejected.len(), 1, "{r:?}");
    assert_eq!(r.rejected[0].field.as_deref(), Some("checklist.answers"), "{r:?}");
    let order = f.s.running.service.order(PROVIDER, &id).unwrap();
    assert!(order.transitions.is_empty() && order.checklist.answers.is_empty(), "nothing was stored");
    // The same step with a real fix goes through.
    let r = forged_push(&f, &id, |o| {
        o.transitions.push(step(fix(39.9, 116.4)));
        o.status = Status::Accepted;
    });
    assert!(r.rejected.is_empty(), "{r:?}");
}

/// A refused push leaves nothing behind for the next push to merge into (a server that kept
/// merged documents in memory could: ADR 0016 measured one and left it out).
#[test]
fn a_refused_push_leaves_nothing_in_the_document_the_next_push_merges_into() {
    let f = field();
    let id = f.ids[0].clone();
    let original = f.s.running.service.order(PROVIDER, &id).unwrap();
    f.device.add_note(&id, "first visit note").unwrap();
    let r = f.device.sync(&f.s.transport(), &fast(), None).unwrap();
    assert!(r.orders_rejected.is_empty(), "{r:?}");
    let r = forged_push(&f, &id, |o| {
        o.customer.company = "forged company".into();
        o.notes.push(onsite_core::order::EngineerNote { text: "riding along".into(), ..o.notes[0].clone() });
    });
    assert_eq!(r.rejected.len(), 1, "{r:?}");
    assert_eq!(r.rejected[0].field.as_deref(), Some("customer"), "{r:?}");
    f.device.add_note(&id, "second visit note").unwrap();
    let r = f.device.sync(&f.s.transport(), &fast(), None).unwrap();
    assert!(r.orders_rejected.is_empty(), "{r:?}");
    let on_server = f.s.running.service.order(PROVIDER, &id).unwrap();
    assert_eq!(on_server.customer, original.customer, "the refused change is not in the stored document");
    let texts: Vec<&str> = on_server.notes.iter().map(|n| n.text.as_str()).collect();
    assert_eq!(texts, ["first visit note", "second visit note"]);
    assert_eq!(on_server, f.device.get(&id).unwrap().order, "server and device agree");
    // And a second merge on the server after that one still starts from the stored state.
    f.device.add_note(&id, "third visit note").unwrap();
    f.device.sync(&f.s.transport(), &fast(), None).unwrap();
    let stored = f.s.running.service.storage().document(PROVIDER, &id).unwrap();
    let from_storage = onsite_core::order::document::hydrate(&onsite_core::order::document::load_stored(&stored).unwrap()).unwrap();
    assert_eq!(from_storage, f.device.get(&id).unwrap().order);
}

#[test]
fn nested_unknown_keys_oversized_values_and_foreign_conflicts_are_refused() {
    let f = field();
    let id = f.ids[0].clone();
    let mut doc = automerge::AutoCommit::load(&f.device.document_bytes(&id).unwrap()).unwrap();
    let heads = doc.get_heads();
    use automerge::transaction::Transactable;
    use automerge::ReadDoc;
    let customer = doc.get(automerge::ROOT, "customer").unwrap().unwrap().1;
    doc.put(&customer, "shadow", "not in the schema").unwrap();
    let push = |changes: Vec<u8>| {
        let (status, body) = post_sync(&f, &SyncRequest { v: 1, cursor: 0, push: vec![DocPush { id: id.clone(), changes }], ..Default::default() });
        assert_eq!(status, 200);
        protocol::decode_response(&body).unwrap()
    };
    let r = push(doc.save_after(&heads));
    assert_eq!(r.rejected[0].field.as_deref(), Some("customer.shadow"), "{r:?}");

    let mut doc = automerge::AutoCommit::load(&f.device.document_bytes(&id).unwrap()).unwrap();
    let heads = doc.get_heads();
    let site = doc.get(automerge::ROOT, "site").unwrap().unwrap().1;
    doc.put(&site, "address", "x".repeat(2 * 1024 * 1024)).unwrap();
    let r = push(doc.save_after(&heads));
    assert_eq!(r.rejected[0].field.as_deref(), Some("site.address"), "{r:?}");

    // An unrelated history that sets `priority` and `id` to the values they already win with:
    // the hydrated winner is unchanged, but the field now has conflicting values.
    let mut other = automerge::AutoCommit::new();
    let o: WorkOrder = f.s.running.service.order(PROVIDER, &id).unwrap();
    autosurgeon::reconcile(&mut other, &o).unwrap();
    let r = push(other.save());
    assert_eq!(r.rejected.len(), 1, "{r:?}");
    assert_eq!(f.s.running.service.order(PROVIDER, &id).unwrap(), o, "nothing stored");
}

#[test]
fn requests_are_validated_whole_before_any_part_is_applied() {
    let f = field();
    let id = f.ids[0].clone();
    // Garbage as changes: `invalid`, not silently nothing.
    let (status, body) = post_sync(
        &f,
        &SyncRequest { v: 1, cursor: 0, push: vec![DocPush { id: id.clone(), changes: b"garbage, not automerge".to_vec() }], ..Default::default() },
    );
    assert_eq!(status, 200);
    let r = protocol::decode_response(&body).unwrap();
    assert_eq!(r.rejected.iter().map(|x| x.code).collect::<Vec<_>>(), vec![protocol::RejectCode::Invalid]);
    // A valid push with an invalid ticket nonce: 400, and the push is not stored.
    f.device.add_note(&id, "must not land").unwrap();
    let (changes, _) = f.device.store().changes_since(&id, &[]).unwrap();
    let req = SyncRequest { v: 1, cursor: 0, push: vec![DocPush { id: id.clone(), changes }], ticket_nonce: Some("n".repeat(65)), ..Default::default() };
    let (status, body) = post_sync(&f, &req);
    assert_eq!(status, 400);
    error_json(&body);
    assert!(f.s.running.service.order(PROVIDER, &id).unwrap().notes.is_empty(), "nothing of a refused request is applied");
    // A cursor past i64::MAX is refused instead of wrapping.
    let (status, body) = post_sync(&f, &SyncRequest { v: 1, cursor: u64::MAX, ..Default::default() });
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    // Code lifetimes out of range are refused, not wrapped or clamped.
    let t = format!("Bearer {}", f.s.dispatcher_token());
    for ttl in ["0", "-5", "9223372036854775807", "43201"] {
        let body = format!("{{\"engineer_id\":\"eng-1\",\"ttl_minutes\":{ttl}}}");
        let (status, resp) = raw(&f.s, "POST", "/v1/enrolment-codes", &[("authorization", &t), ("content-type", "application/json")], body.as_bytes());
        assert_eq!(status, 400, "ttl {ttl}: {}", String::from_utf8_lossy(&resp));
    }
    let (status, _) = raw(&f.s, "POST", "/v1/enrolment-codes", &[("authorization", &t)], br#"{"engineer_id":"eng-1","ttl_minutes":1}"#);
    assert_eq!(status, 200);
}

#[test]
fn credentials_come_before_bodies_and_enrolment_has_no_oracle() {
    let f = field();
    // A device token on a dispatcher route with a malformed body: 401, not 400.
    let t = format!("Bearer {}", token(&f.device));
    let (status, body) = raw(&f.s, "POST", "/v1/experts", &[("authorization", &t)], b"{ not json");
    assert_eq!(status, 401);
    error_json(&body);
    // No token and a huge declared body: refused without reading it.
    let started = Instant::now();
    let mut c = TcpStream::connect(f.s.running.addr).unwrap();
    c.write_all(b"POST /v1/sync HTTP/1.1\r\nhost: x\r\ncontent-length: 47000000\r\n\r\n").unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut out = vec![0u8; 512];
    let n = c.read(&mut out).unwrap();
    assert!(String::from_utf8_lossy(&out[..n]).starts_with("HTTP/1.1 401"), "{}", String::from_utf8_lossy(&out[..n]));
    assert!(started.elapsed() < Duration::from_secs(5));
    // Enrolment bodies are small.
    let (status, body) = raw(&f.s, "POST", "/v1/enrol", &[], &vec![b' '; 64 * 1024]);
    assert_eq!(status, 413);
    assert_eq!(error_json(&body)["error"], "too_large");
    // Upper-case device ids are refused (they would enrol the same device twice).
    let code = f.s.dispatcher.enrolment_code("eng-1").unwrap();
    let key = onsite_core::evidence::signer::SoftwareSigner::generate().unwrap();
    let pk = onsite_core::hash::hex(&onsite_core::evidence::signer::Signer::public_key(&key));
    let upper = f.device.device_id().to_uppercase();
    let sig = onsite_core::hash::hex(&onsite_core::evidence::signer::Signer::sign(&key, protocol::enrol_message(&code, &upper, &pk).as_bytes()).unwrap());
    let body = serde_json::json!({ "code": code, "device_id": upper, "public_key": pk, "signature": sig }).to_string();
    let (status, _) = raw(&f.s, "POST", "/v1/enrol", &[("content-type", "application/json")], body.as_bytes());
    assert_eq!(status, 400);
    // The same id with another key: one answer that does not say where the id is enrolled.
    let lower = f.device.device_id().to_string();
    let sig = onsite_core::hash::hex(&onsite_core::evidence::signer::Signer::sign(&key, protocol::enrol_message(&code, &lower, &pk).as_bytes()).unwrap());
    let body = serde_json::json!({ "code": code, "device_id": lower, "public_key": pk, "signature": sig }).to_string();
    let (status, resp) = raw(&f.s, "POST", "/v1/enrol", &[("content-type", "application/json")], body.as_bytes());
    assert_eq!(status, 409);
    let reason = error_json(&resp)["reason"].as_str().unwrap().to_string();
    assert!(!reason.contains("provider"), "{reason}");
}

#[test]
fn failed_credentials_are_rate_limited_per_address() {
    let f = field();
    let mut statuses = Vec::new();
    for i in 0..30 {
        let t = format!("Bearer dev_wrong{i}");
        statuses.push(raw(&f.s, "GET", "/v1/devices", &[("authorization", &t)], b"").0);
    }
    assert!(statuses[..onsite_server::http::MAX_FAILURES as usize].iter().all(|s| *s == 401), "{statuses:?}");
    assert!(statuses[onsite_server::http::MAX_FAILURES as usize..].iter().all(|s| *s == 429), "{statuses:?}");
    // Even the right token waits out the window from that address.
    let t = format!("Bearer {}", f.s.dispatcher_token());
    let (status, body) = raw(&f.s, "GET", "/v1/devices", &[("authorization", &t)], b"");
    assert_eq!(status, 429);
    assert_eq!(error_json(&body)["error"], "too_many_requests");
}

#[test]
fn every_refusal_is_json_and_slow_clients_are_cut_off() {
    let f = field();
    for (method, path) in [("GET", "/nope"), ("DELETE", "/v1/sync"), ("GET", "/v1/orders/x/assign")] {
        let (status, body) = raw(&f.s, method, path, &[], b"");
        assert!(status == 404 || status == 405, "{method} {path}: {status}");
        error_json(&body);
    }
    let t = format!("Bearer {}", f.s.dispatcher_token());
    let (status, body) = raw(&f.s, "GET", "/v1/parts/ledger", &[("authorization", &t)], b"");
    assert_eq!(status, 400, "a missing query parameter");
    error_json(&body);
    // A deflate body that inflates past the limit stops at the limit.
    let bomb = protocol::deflate(&vec![0u8; 40 * 1024 * 1024]).unwrap();
    let dt = format!("Bearer {}", token(&f.device));
    let (status, body) = raw(&f.s, "POST", "/v1/sync", &[("authorization", &dt), ("content-encoding", "deflate")], &bomb);
    assert_eq!(status, 413, "{}", String::from_utf8_lossy(&body));
    // Headers that never finish: the connection is closed after the header timeout.
    let mut c = TcpStream::connect(f.s.running.addr).unwrap();
    c.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n").unwrap();
    c.set_read_timeout(Some(onsite_server::serve::HEADER_TIMEOUT + Duration::from_secs(10))).unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 64];
    let n = c.read(&mut buf).unwrap_or(0);
    assert!(n == 0 || String::from_utf8_lossy(&buf[..n]).contains("408"), "{}", String::from_utf8_lossy(&buf[..n]));
    assert!(started.elapsed() <= onsite_server::serve::HEADER_TIMEOUT + Duration::from_secs(5));
}

#[test]
fn private_keys_live_outside_the_database_in_private_files() {
    use std::os::unix::fs::PermissionsExt;
    let s = TestServer::start();
    let data = s.dir.path().join("server");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    for key in [onsite_server::storage::MetaKey::LogKey, onsite_server::storage::MetaKey::TimeAuthorityKey] {
        let name = key.as_str();
        let f = data.join("keys").join(format!("{name}.key"));
        assert_eq!(mode(&f), 0o600, "{name}");
        assert_eq!(s.running.service.storage().meta(key).unwrap().as_deref().unwrap_or(""), "", "{name} is not in the database");
    }
    assert_eq!(mode(&data.join("keys")), 0o700);
    assert_eq!(mode(&data.join("server.sqlite3")), 0o600);
    assert_eq!(mode(&data), 0o700);
    // A restart keeps the same keys.
    let key = s.running.service.log_key();
    let TestServer { running, dir, .. } = s;
    running.stop();
    let mut config = onsite_server::Config::new(dir.path().join("server"));
    config.admin_token = Some("admin-secret".into());
    let again = onsite_server::spawn(config).unwrap();
    assert_eq!(again.service.log_key(), key);
}

#[test]
fn the_served_openapi_description_matches_the_routes_the_server_has() {
    let s = TestServer::start();
    let (status, body) = raw(&s, "GET", "/v1/openapi.json", &[], b"");
    assert_eq!(status, 200);
    let text = String::from_utf8_lossy(&body);
    let doc: serde_json::Value = serde_json::from_str(&text[text.find('{').unwrap()..=text.rfind('}').unwrap()]).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    let mut operations = 0;
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            operations += 1;
            assert!(op["responses"].as_object().unwrap().keys().any(|k| k.starts_with('2')), "{method} {path}");
            // Every described operation is routed: not the fallback's 404 and not 405.
            let concrete = path.replace("{sha}", &"a".repeat(64)).replace("{id}", "X-1");
            let (status, body) = raw(&s, &method.to_uppercase(), &concrete, &[], b"");
            assert_ne!(status, 405, "{method} {path} is described but not routed");
            if status == 404 && method != "head" {
                assert!(!String::from_utf8_lossy(&body).contains("no such route"), "{method} {path} is described but not routed");
            }
        }
    }
    assert_eq!(operations, onsite_server::routes::endpoints().len());
    // And a method the description does not list for a path is not served.
    for (path, item) in paths {
        for method in ["get", "post", "put", "delete"] {
            if item.get(method).is_none() && !(method == "get" && item.get("head").is_some()) {
                let concrete = path.replace("{sha}", &"a".repeat(64)).replace("{id}", "X-1");
                let (status, _) = raw(&s, &method.to_uppercase(), &concrete, &[], b"");
                assert_eq!(status, 405, "{method} {path} is served but not described");
            }
        }
    }
}

#[test]
fn connections_are_capped_and_idle_ones_closed() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = onsite_server::Config::new(dir.path().join("server"));
    config.admin_token = Some("admin-secret".into());
    config.limits = onsite_server::serve::Limits { max_connections: 2, header_timeout: Duration::from_secs(10), idle_timeout: Duration::from_millis(2500) };
    let running = onsite_server::spawn(config).unwrap();
    let health = |c: &mut TcpStream| -> bool {
        c.set_read_timeout(Some(Duration::from_millis(700))).unwrap();
        if c.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n").is_err() {
            return false;
        }
        let mut buf = [0u8; 512];
        matches!(c.read(&mut buf), Ok(n) if n > 0 && buf.starts_with(b"HTTP/1.1 200"))
    };
    // Two kept-alive connections hold both slots: a third is not served meanwhile.
    let mut a = TcpStream::connect(running.addr).unwrap();
    let mut b = TcpStream::connect(running.addr).unwrap();
    assert!(health(&mut a) && health(&mut b));
    let mut c = TcpStream::connect(running.addr).unwrap();
    assert!(!health(&mut c), "a third connection waits while two are open");
    // Idle connections are closed after the idle timeout, which frees the slots.
    std::thread::sleep(Duration::from_millis(2500));
    let mut buf = [0u8; 16];
    a.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    assert_eq!(a.read(&mut buf).unwrap_or(0), 0, "the idle connection was closed by the server");
    let mut d = TcpStream::connect(running.addr).unwrap();
    assert!(health(&mut d), "a new connection is served once idle ones are gone");
}

/// A key file lost after the keys moved out of the database stops the server: a silently
/// new log key would make every enrolled device refuse the provider's checkpoints.
#[test]
fn a_lost_key_file_stops_the_server_instead_of_rotating_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = onsite_server::Config::new(dir.path().join("srv"));
    config.admin_token = Some("adm".into());
    let first = onsite_server::spawn(config.clone()).unwrap();
    let key = first.service.log_key();
    first.stop();
    let again = onsite_server::spawn(config.clone()).unwrap();
    assert_eq!(again.service.log_key(), key, "a restart keeps the key");
    again.stop();
    std::fs::remove_file(dir.path().join("srv").join(onsite_server::KEYS_DIR).join("log_key.key")).unwrap();
    match onsite_server::spawn(config) {
        Err(e) => assert!(e.to_string().contains("log_key key is missing"), "{e}"),
        Ok(r) => panic!("the server started with a new log key {:?} (was {key:?})", r.service.log_key()),
    }
}

/// Behind a load balancer every request arrives from the proxy's address: one client's wrong
/// tokens must not lock every other client out, and a client talking to the server directly
/// must not escape the limit by writing its own `X-Forwarded-For`.
#[test]
fn behind_a_trusted_proxy_failures_count_per_client_and_the_header_is_not_trusted_from_others() {
    use onsite_core::sync::transport::{HttpTransport, Method, Request, Transport};
    let dir = tempfile::tempdir().unwrap();
    let mut config = onsite_server::Config::new(dir.path().join("server"));
    config.admin_token = Some("adm".into());
    config.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    let proxied = onsite_server::spawn(config).unwrap();
    let token = onsite_server::client::create_provider(&proxied.url(), "adm", "prov", "P").unwrap();
    let get = |url: &str, bearer: &str, xff: Option<&str>| {
        let mut req = Request::new(Method::Get, "/v1/devices").header("authorization", format!("Bearer {bearer}"));
        if let Some(x) = xff {
            req = req.header("x-forwarded-for", x);
        }
        HttpTransport::new(url).unwrap().send(&req).unwrap().status
    };
    // The attacker behind the proxy uses up its failures...
    for i in 0..onsite_server::http::MAX_FAILURES {
        assert_eq!(get(&proxied.url(), &format!("dev_wrong{i}"), Some("203.0.113.9")), 401);
    }
    assert_eq!(get(&proxied.url(), "dev_wrong", Some("203.0.113.9")), 429);
    // ...a spoofed hop to the left of the proxy's entry does not help it...
    assert_eq!(get(&proxied.url(), &token, Some("198.51.100.1, 203.0.113.9")), 429);
    // ...and the dispatcher behind the same proxy is not locked out.
    assert_eq!(get(&proxied.url(), &token, Some("203.0.113.10")), 200);

    // Without a trusted proxy the header is ignored: the limit holds for the socket's address.
    let f = field();
    for i in 0..onsite_server::http::MAX_FAILURES {
        assert_eq!(get(&f.s.url(), &format!("dev_wrong{i}"), Some(&format!("192.0.2.{i}"))), 401);
    }
    assert_eq!(get(&f.s.url(), f.s.dispatcher_token(), Some("192.0.2.200")), 429);
}
