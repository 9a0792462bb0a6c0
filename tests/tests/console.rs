//! The console's security at the HTTP level, against a real server on loopback (the browser
//! suite in tests/console/ drives the pages): sign-in limits, what a session cookie is bound
//! to, CSRF and Origin, the headers on every answer, photos never served as pages, an
//! expert's reach, and boards over rows written before the summary column existed.

use std::sync::Arc;

use onsite_core::clock::ManualClock;
use onsite_server::client::sample_orders;
use onsite_tests::net::{TestServer, PROVIDER};
use reqwest::blocking::{Client, Response};
use reqwest::redirect::Policy;

fn client() -> Client {
    Client::builder().redirect(Policy::none()).build().unwrap()
}

fn sign_in(s: &TestServer, token: &str) -> String {
    let r = client().post(format!("{}/console/signin", s.url())).form(&[("token", token)]).send().unwrap();
    assert_eq!(r.status(), 303, "{}", r.text().unwrap_or_default());
    let set = r.headers().get("set-cookie").unwrap().to_str().unwrap().to_string();
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Path=/console"), "{set}");
    set.split(';').next().unwrap().trim_start_matches("onsite_session=").to_string()
}

fn get(s: &TestServer, cookie: &str, path: &str) -> Response {
    client().get(format!("{}{path}", s.url())).header("cookie", format!("onsite_session={cookie}")).send().unwrap()
}

fn location(r: &Response) -> &str {
    r.headers().get("location").map(|v| v.to_str().unwrap()).unwrap_or("")
}

/// The CSRF token of the session's forms, read from a page as the browser would.
fn csrf(s: &TestServer, cookie: &str) -> String {
    let page = get(s, cookie, "/console/devices").text().unwrap();
    let at = page.find("name=\"_csrf\" value=\"").unwrap() + "name=\"_csrf\" value=\"".len();
    page[at..].split('"').next().unwrap().to_string()
}

fn post(s: &TestServer, cookie: &str, path: &str, form: &[(&str, &str)], origin: Option<&str>) -> Response {
    let mut req = client().post(format!("{}{path}", s.url())).header("cookie", format!("onsite_session={cookie}")).form(form);
    if let Some(o) = origin {
        req = req.header("origin", o);
    }
    req.send().unwrap()
}

#[test]
fn sign_in_failures_are_limited_per_address() {
    let s = TestServer::start();
    // A sign-in form posted from another site is refused, even with a good token.
    let r =
        client().post(format!("{}/console/signin", s.url())).header("origin", "http://evil.example").form(&[("token", s.dispatcher_token())]).send().unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.headers().get("set-cookie").is_none());
    for _ in 0..onsite_server::http::MAX_FAILURES {
        let r = client().post(format!("{}/console/signin", s.url())).form(&[("token", "dsp_wrong")]).send().unwrap();
        assert_eq!(r.status(), 401);
        assert!(r.headers().get("set-cookie").is_none());
    }
    // Past the limit even the right token waits for the window: guessing gains nothing.
    let r = client().post(format!("{}/console/signin", s.url())).form(&[("token", s.dispatcher_token())]).send().unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().get("set-cookie").is_none());
}

#[test]
fn a_session_holds_only_with_its_mac_before_expiry_and_while_its_token_opens_the_provider() {
    let clock = Arc::new(ManualClock::at(chrono::Utc::now()));
    let c = clock.clone();
    let s = TestServer::start_with(move |config| config.clock = c);
    let cookie = sign_in(&s, s.dispatcher_token());
    assert_eq!(get(&s, &cookie, "/console/").status(), 200);
    // Any change to the cookie's body breaks its MAC: back to the sign-in page.
    let (body, tag) = cookie.split_once('.').unwrap();
    let mut forged = body.as_bytes().to_vec();
    forged[10] ^= 1;
    let forged = format!("{}.{tag}", String::from_utf8(forged).unwrap());
    let r = get(&s, &forged, "/console/");
    assert_eq!((r.status().as_u16(), location(&r)), (303, "/console/signin"));
    // A cookie of another server (another key) opens nothing here.
    let other = TestServer::start();
    let foreign = sign_in(&other, other.dispatcher_token());
    assert_eq!(get(&s, &foreign, "/console/").status(), 303);
    // Twelve hours later the session has expired.
    clock.advance(chrono::Duration::hours(12) + chrono::Duration::seconds(1));
    assert_eq!(get(&s, &cookie, "/console/").status(), 303);
    // Signing out clears the cookie.
    let cookie = sign_in(&s, s.dispatcher_token());
    assert_eq!(get(&s, &cookie, "/console/").status(), 200);
    if std::env::var("ONSITE_TEST_PG").is_err() {
        // The provider's token is replaced (rotated by the operator): its sessions end at once.
        let db = rusqlite::Connection::open(s.dir.path().join("server").join(onsite_server::DB_FILE)).unwrap();
        let old: String = db.query_row("SELECT token_hash FROM providers WHERE id = ?1", [PROVIDER], |r| r.get(0)).unwrap();
        db.execute("UPDATE providers SET token_hash = 'rotated' WHERE id = ?1", [PROVIDER]).unwrap();
        assert_eq!(get(&s, &cookie, "/console/").status(), 303, "a session outlives no token");
        db.execute("UPDATE providers SET token_hash = ?1 WHERE id = ?2", [&old, PROVIDER]).unwrap();
    }
    let token = csrf(&s, &cookie);
    let r = post(&s, &cookie, "/console/signout", &[("_csrf", &token)], None);
    assert_eq!(r.status(), 303);
    assert!(r.headers().get("set-cookie").unwrap().to_str().unwrap().contains("Max-Age=0"));
}

#[test]
fn forms_need_the_sessions_csrf_token_and_this_origin() {
    let s = TestServer::start();
    let ids = s.dispatcher.create_orders(&sample_orders(PROVIDER, "eng-1", "WO-CS", 1)).unwrap();
    let path = format!("/console/orders/{}/priority", ids[0]);
    let a = sign_in(&s, s.dispatcher_token());
    let b = sign_in(&s, s.dispatcher_token());
    let (ta, tb) = (csrf(&s, &a), csrf(&s, &b));
    assert_ne!(ta, tb, "every sign-in has its own token");
    assert_eq!(post(&s, &a, &path, &[("_csrf", &tb), ("priority", "low")], None).status(), 403, "another session's token");
    assert_eq!(post(&s, &a, &path, &[("_csrf", "AAAA"), ("priority", "low")], None).status(), 403);
    assert_eq!(post(&s, &a, &path, &[("_csrf", &ta), ("priority", "low")], Some("http://evil.example")).status(), 403, "another origin");
    assert_eq!(post(&s, &a, &path, &[("_csrf", &ta), ("priority", "low")], Some("null")).status(), 403, "an opaque origin");
    assert_eq!(s.dispatcher.order(&ids[0]).unwrap()["priority"], "urgent", "nothing changed");
    let origin = s.url();
    let r = post(&s, &a, &path, &[("_csrf", &ta), ("priority", "low")], Some(&origin));
    assert_eq!(r.status(), 303);
    assert_eq!(s.dispatcher.order(&ids[0]).unwrap()["priority"], "low");
    // Without a session the form is not even read: to the sign-in page.
    let r = post(&s, "", &path, &[("_csrf", &ta), ("priority", "normal")], None);
    assert_eq!((r.status().as_u16(), location(&r)), (303, "/console/signin"));
}

#[test]
fn every_console_answer_carries_the_security_headers() {
    let s = TestServer::start();
    let cookie = sign_in(&s, s.dispatcher_token());
    for (path, with) in [
        ("/console/signin", ""),
        ("/console/", ""),
        ("/console/", cookie.as_str()),
        ("/console/orders/nope", cookie.as_str()),
        ("/console/assets/console.js", ""),
        ("/console/verify", ""),
        ("/console/blobs/zz", cookie.as_str()),
    ] {
        let r = get(&s, with, path);
        let h = |n: &str| r.headers().get(n).map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
        let csp = h("content-security-policy");
        assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe-inline"), "{path}: {csp}");
        assert_eq!(h("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(h("x-frame-options"), "DENY", "{path}");
    }
    let missing = get(&s, &cookie, "/console/orders/nope");
    assert_eq!(missing.status(), 404);
    assert!(missing.headers()["content-type"].to_str().unwrap().starts_with("text/html"), "a console error is a page");
}

#[test]
fn a_blob_is_an_image_of_its_own_type_or_an_attachment_never_a_page() {
    let s = TestServer::start();
    let cookie = sign_in(&s, s.dispatcher_token());
    let svc = &s.running.service;
    let html = b"<html><script>alert(1)</script></html>".to_vec();
    let jpeg = onsite_tests::noisy_jpeg(64, 48, 7);
    let other = onsite_server::client::create_provider(&s.url(), "admin-secret", "prov-other", "Other").unwrap();
    let theirs = sign_in(&s, &other);
    for (bytes, want_type, attachment) in [(&html, "application/octet-stream", true), (&jpeg, "image/jpeg", false)] {
        let sha = onsite_core::hash::sha256_hex(bytes);
        svc.blob_put(PROVIDER, &sha, 0, bytes.len() as u64, bytes).unwrap();
        let r = get(&s, &cookie, &format!("/console/blobs/{sha}"));
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], want_type);
        assert_eq!(r.headers().get("content-disposition").is_some(), attachment);
        // Another provider's dispatcher does not get it.
        assert_eq!(get(&s, &theirs, &format!("/console/blobs/{sha}")).status(), 404);
    }
}

#[test]
fn an_expert_session_reaches_its_inbox_and_nothing_of_the_dispatchers() {
    let s = TestServer::start();
    let ids = s.dispatcher.create_orders(&sample_orders(PROVIDER, "eng-1", "WO-EX", 1)).unwrap();
    let token = s.dispatcher.add_expert(&serde_json::json!({"id": "exp-1", "name": "E", "fee_cents": 100})).unwrap();
    let e = sign_in(&s, &token);
    let r = get(&s, &e, "/console/");
    assert_eq!((r.status().as_u16(), location(&r)), (303, "/console/help"));
    assert_eq!(get(&s, &e, "/console/help").status(), 200);
    for path in ["/console/board/rows", &format!("/console/orders/{}", ids[0]), "/console/devices", "/console/events"] {
        assert_eq!(get(&s, &e, path).status(), 403, "{path}");
    }
    let page = get(&s, &e, "/console/help").text().unwrap();
    let at = page.find("name=\"_csrf\" value=\"").unwrap() + 20;
    let t = page[at..].split('"').next().unwrap();
    let r = post(&s, &e, &format!("/console/orders/{}/cancel", ids[0]), &[("_csrf", t), ("reason", "x")], None);
    assert_eq!(r.status(), 403);
    assert_eq!(s.dispatcher.order(&ids[0]).unwrap()["status"], "assigned");
}

#[test]
fn rows_stored_before_the_summary_column_still_show_on_the_board() {
    let s = TestServer::start();
    let ids = s.dispatcher.create_orders(&sample_orders(PROVIDER, "eng-1", "WO-OLD", 2)).unwrap();
    if std::env::var("ONSITE_TEST_PG").is_err() {
        let db = rusqlite::Connection::open(s.dir.path().join("server").join(onsite_server::DB_FILE)).unwrap();
        assert_eq!(db.execute("UPDATE orders SET summary = ''", []).unwrap(), 2);
    }
    let cookie = sign_in(&s, s.dispatcher_token());
    let rows = get(&s, &cookie, "/console/board/rows").text().unwrap();
    for id in &ids {
        assert!(rows.contains(&format!("data-order=\"{id}\"")), "{rows}");
    }
    assert!(rows.contains("data-deadline="), "the SLA clock is computed from the document");
    assert!(rows.contains("PF3XK9Z1"), "and the serial");
}

#[test]
fn the_order_page_shows_fields_two_writers_changed_concurrently() {
    use automerge::transaction::Transactable;
    let s = TestServer::start();
    // An order whose document holds a conflict: two devices set the priority concurrently.
    let json = sample_orders(PROVIDER, "eng-1", "WO-CF", 1);
    let order = onsite_core::order::import::parse_orders(&json, onsite_core::order::Timestamp(0)).unwrap().remove(0);
    let mut a = onsite_core::order::document::create(&order, automerge::ActorId::from(vec![0xaa; 16]), "dispatch", 0).unwrap();
    let mut b = a.fork().with_actor(automerge::ActorId::from(vec![0xbb; 16]));
    a.put(automerge::ROOT, "priority", "Low").unwrap();
    b.put(automerge::ROOT, "priority", "Normal").unwrap();
    a.merge(&mut b).unwrap();
    let row = onsite_server::storage::OrderRow {
        provider: PROVIDER.into(),
        id: order.id.clone(),
        engineer_id: "eng-1".into(),
        status: "assigned".into(),
        priority: "low".into(),
        customer: order.customer.company.clone(),
        updated_seq: 0,
        assigned_seq: 0,
        compacted_seq: 0,
        summary: String::new(),
    };
    s.running.service.storage().create_order(&row, &a.save()).unwrap();
    let cookie = sign_in(&s, s.dispatcher_token());
    let page = get(&s, &cookie, &format!("/console/orders/{}", order.id)).text().unwrap();
    let at = page.find("data-field=\"priority\"").unwrap_or_else(|| panic!("the conflict on priority is listed: {}", &page[page.find("<main").unwrap_or(0)..]));
    let item = &page[at..at + page[at..].find("</li>").unwrap()];
    assert!(item.contains("&quot;Low&quot;") && item.contains("&quot;Normal&quot;"), "both values are shown: {item}");
    assert!(item.contains("(aaaaaaaa)") && item.contains("(bbbbbbbb)"), "with their authors: {item}");
}

/// The board's event stream says "change" when this provider's orders change, and stays quiet
/// when another provider's do (their activity is neither shown nor a cost here).
#[test]
fn the_board_stream_wakes_for_this_providers_orders_only() {
    use std::io::{BufRead, BufReader};
    let s = TestServer::start();
    let other = onsite_server::client::create_provider(&s.url(), "admin-secret", "prov-quiet", "Other").unwrap();
    let other_client = onsite_server::client::DispatcherClient::new(&s.url(), &other).unwrap();
    let cookie = sign_in(&s, s.dispatcher_token());
    let resp = Client::builder()
        .redirect(Policy::none())
        .timeout(None)
        .build()
        .unwrap()
        .get(format!("{}/console/events", s.url()))
        .header("cookie", format!("onsite_session={cookie}"))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(resp).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let event_within = |ms: u64| -> bool {
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(ms);
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match rx.recv_timeout(left) {
                Ok(line) if line == "event: change" => return true,
                Ok(_) => continue,
                Err(_) => return false,
            }
        }
        false
    };
    other_client.create_orders(&sample_orders("prov-quiet", "eng-1", "WO-Q", 2)).unwrap();
    assert!(!event_within(1_000), "another provider's orders wake no one here");
    s.dispatcher.create_orders(&sample_orders(PROVIDER, "eng-1", "WO-L", 1)).unwrap();
    assert!(event_within(5_000), "this provider's new order is announced");
}
