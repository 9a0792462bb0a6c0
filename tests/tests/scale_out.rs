//! Moving to PostgreSQL + S3 and running several instances: `onsite-server migrate` copies an
//! embedded deployment and proves the copy (and a rerun duplicates nothing); a long-polling
//! device on one instance hears of an edit made through another (LISTEN/NOTIFY), and a
//! revocation through one instance holds on the other at once.
//!
//! Needs `ONSITE_TEST_PG` and `ONSITE_TEST_S3` (the `postgres` suite of `scripts/test`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use onsite_core::device::{PhotoSource, SyncOptions};
use onsite_core::sync::transport::HttpTransport;
use onsite_core::Device;
use onsite_server::client::{create_provider, sample_orders, DispatcherClient};
use onsite_server::storage::PostgresStorage;
use onsite_tests::pg::{s3_url, TempDatabase};

fn fast() -> SyncOptions {
    SyncOptions { base_backoff_ms: 1, max_backoff_ms: 5, max_attempts: 6, ..SyncOptions::default() }
}

#[test]
#[ignore = "needs PostgreSQL and S3 (ONSITE_TEST_PG, ONSITE_TEST_S3); run by the postgres suite"]
fn migrate_copies_and_verifies_and_a_rerun_after_an_interruption_adds_no_duplicates() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("embedded");
    // An embedded deployment with orders, a device, its journal, a photo.
    let mut config = onsite_server::Config::new(&data);
    config.admin_token = Some("adm".into());
    config.compact_after = 4;
    let server = onsite_server::spawn(config).unwrap();
    let token = create_provider(&server.url(), "adm", "prov", "P").unwrap();
    let d = DispatcherClient::new(&server.url(), &token).unwrap();
    let ids = d.create_orders(&sample_orders("prov", "eng-1", "WO-G", 3)).unwrap();
    let dev_dir = tempfile::tempdir().unwrap();
    let dev = Device::open(onsite_tests::options(dev_dir.path())).unwrap();
    let t = HttpTransport::new(&server.url()).unwrap();
    dev.enrol(&t, &server.url(), &d.enrolment_code("eng-1").unwrap()).unwrap();
    assert!(dev.sync(&t, &fast(), None).unwrap().complete());
    for i in 0..6 {
        dev.add_note(&ids[i % 3], &format!("note {i}")).unwrap();
    }
    dev.ingest_photo(&ids[0], None, PhotoSource::Bytes(&onsite_tests::noisy_jpeg(400, 300, 3)), None).unwrap();
    assert!(dev.sync(&t, &fast(), None).unwrap().complete());
    d.set_priority(&ids[1], "low").unwrap();
    assert!(dev.sync(&t, &fast(), None).unwrap().complete());
    let head = server.service.head().unwrap();
    let leaves = server.service.storage().log_leaves("prov").unwrap().len();
    server.stop();

    let (_db, pg) = TempDatabase::new();
    let s3 = s3_url().expect("ONSITE_TEST_S3");
    let from_blobs = onsite_server::blobs::Blobs::open(&data).unwrap();
    let to_blobs = onsite_server::blobs::Blobs::open_url(&s3).unwrap();
    let db_file = data.join(onsite_server::DB_FILE);
    let first = onsite_server::migrate::run(&db_file, &pg, Some(&from_blobs), Some(&to_blobs)).unwrap();
    let rows = |r: &onsite_server::migrate::Report, t: &str| r.tables.iter().find(|x| x.0 == t).map(|x| (x.1, x.2)).unwrap();
    assert_eq!(rows(&first, "feed").0, head, "every feed row");
    assert_eq!(rows(&first, "log_leaves"), (leaves as u64, leaves as u64));
    assert!(first.blobs_copied >= 1 && first.blobs_present == first.blobs_copied, "{first:?}");
    assert_eq!(first.logs.len(), 1);

    // An interruption: the destination lost the tail of the copy (a run killed mid-table
    // commits nothing of that table; one killed between tables leaves later tables empty).
    let mut c = postgres::Client::connect(&pg, postgres::NoTls).unwrap();
    let lost = c.execute("DELETE FROM feed WHERE seq > $1", &[&((head / 2) as i64)]).unwrap();
    c.execute("DELETE FROM help_requests", &[]).unwrap();
    c.execute("DELETE FROM docs", &[]).unwrap();
    let second = onsite_server::migrate::run(&db_file, &pg, Some(&from_blobs), Some(&to_blobs)).unwrap();
    assert_eq!(rows(&second, "feed"), (head, lost), "the rerun fills exactly what was lost");
    assert_eq!(rows(&second, "log_leaves").1, 0, "nothing is duplicated");
    assert_eq!(second.blobs_copied, 0);
    // Tampering at the destination is caught by the verification, not copied over.
    c.execute("UPDATE orders SET customer = 'someone else' WHERE id = $1", &[&ids[2]]).unwrap();
    let e = onsite_server::migrate::run(&db_file, &pg, Some(&from_blobs), Some(&to_blobs)).unwrap_err();
    assert!(e.to_string().contains("orders"), "{e}");
    // The same through the binary: a non-zero exit naming the table.
    let out = std::process::Command::new(onsite_tests::onsite_server_bin())
        .arg("--data")
        .arg(&data)
        .args(["migrate", "--to", &pg, "--blobs-to", &s3])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("orders: the rows differ"), "{}", String::from_utf8_lossy(&out.stderr));
    drop(c);

    // The moved deployment serves the same device: same keys, same cursor, same log.
    let mut config = onsite_server::Config::new(root.path().join("scaled"));
    config.admin_token = Some("adm".into());
    config.keys = Some(data.join(onsite_server::KEYS_DIR));
    config.storage = Some(Arc::new(PostgresStorage::open(&pg).unwrap()));
    config.blobs = Some(onsite_server::blobs::open_store(&s3).unwrap());
    let scaled = onsite_server::spawn(config).unwrap();
    let t = HttpTransport::new(&scaled.url()).unwrap();
    dev.add_note(&ids[0], "after the move").unwrap();
    let r = dev.sync(&t, &fast(), None).unwrap();
    assert!(r.complete() && r.orders_rejected.is_empty(), "{r:?}");
    assert!(scaled.service.order("prov", &ids[0]).unwrap().notes.iter().any(|n| n.text == "after the move"));
    assert_eq!(scaled.service.storage().log_leaves("prov").unwrap().len(), leaves + r.journal_uploaded as usize);
    assert!(!scaled.service.blob_bytes("prov", &dev.photos(&ids[0]).unwrap()[0].sha256).unwrap().is_empty(), "the photo reads back from S3");
}

#[test]
#[ignore = "needs PostgreSQL (ONSITE_TEST_PG); run by the postgres suite"]
fn a_long_poll_on_one_instance_wakes_for_an_edit_through_another() {
    let (_db, url) = TempDatabase::new();
    let dir = tempfile::tempdir().unwrap();
    let instance = || {
        let mut config = onsite_server::Config::new(dir.path().join("shared"));
        config.admin_token = Some("adm".into());
        config.storage = Some(Arc::new(PostgresStorage::open(&url).unwrap()));
        onsite_server::spawn(config).unwrap()
    };
    let (one, two) = (instance(), instance());
    let token = create_provider(&one.url(), "adm", "prov", "P").unwrap();
    let d2 = DispatcherClient::new(&two.url(), &token).unwrap();
    let ids = d2.create_orders(&sample_orders("prov", "eng-1", "WO-N", 1)).unwrap();
    let dev_dir = tempfile::tempdir().unwrap();
    let dev = Device::open(onsite_tests::options(dev_dir.path())).unwrap();
    let t = HttpTransport::new(&one.url()).unwrap();
    dev.enrol(&t, &one.url(), &d2.enrolment_code("eng-1").unwrap()).unwrap();
    dev.sync(&t, &fast(), None).unwrap();
    let device_token = dev.store().meta(onsite_core::store::MetaKey::SyncToken).unwrap().unwrap();
    let cursor = two.service.head().unwrap();
    let url_one = one.url();
    let waiter = std::thread::spawn(move || {
        use onsite_core::sync::{protocol, transport::Method, transport::Request, transport::Transport};
        let body = protocol::encode(&protocol::SyncRequest { v: protocol::VERSION, cursor, ..Default::default() }).unwrap();
        let req = Request::new(Method::Post, "/v1/sync?wait_ms=20000").header("authorization", format!("Bearer {device_token}")).body(body);
        let started = std::time::Instant::now();
        let resp = HttpTransport::new(&url_one).unwrap().send(&req).unwrap();
        (protocol::decode_response(&resp.body).unwrap(), started.elapsed())
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(!waiter.is_finished());
    // The edit goes through instance two; the device waits on instance one.
    d2.set_priority(&ids[0], "low").unwrap();
    let (r, took) = waiter.join().unwrap();
    assert_eq!(r.docs.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), [ids[0].as_str()], "{r:?}");
    assert!(took < std::time::Duration::from_secs(5), "NOTIFY did not reach the other instance ({took:?})");
    // Revocation through instance two holds on instance one at once (no cache of credentials).
    d2.revoke_device(dev.device_id()).unwrap();
    match dev.sync(&t, &fast(), None) {
        Err(onsite_core::Error::Sync(onsite_core::device::SyncError::Unauthorized(_))) => {}
        other => panic!("a device revoked through another instance was served: {other:?}"),
    }
}
