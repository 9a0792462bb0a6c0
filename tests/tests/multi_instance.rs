//! Three `onsite-server` processes on one PostgreSQL database and one S3 gateway, 20 devices
//! (threads, each its own store) syncing through randomly chosen instances while the
//! dispatcher edits and reassigns through another; one instance is SIGKILLed mid-run and
//! restarted. Afterwards every device agrees with the server, nothing accepted is missing,
//! the log holds each journal entry exactly once, each blob is stored once and byte-exact, and
//! every entry's inclusion proof verifies against the latest checkpoint.
//!
//! Needs `ONSITE_TEST_PG` and `ONSITE_TEST_S3` (the `postgres` suite of `scripts/test`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use onsite_core::device::{PhotoSource, SyncOptions};
use onsite_core::evidence::log::{self, Checkpoint};
use onsite_core::sync::transport::HttpTransport;
use onsite_core::Device;
use onsite_server::client::{create_provider, sample_orders, DispatcherClient};
use onsite_tests::pg::{s3_url, TempDatabase};
use rand::Rng;

const ADMIN: &str = "admin-multi";
const PROVIDER: &str = "prov-multi";
const ENGINEERS: usize = 10;
const DEVICES_PER_ENGINEER: usize = 2;

struct Instance {
    child: Child,
    url: String,
}

struct Cluster {
    db_url: String,
    blobs: String,
    keys: std::path::PathBuf,
    root: tempfile::TempDir,
    instances: Vec<Mutex<Instance>>,
}

impl Cluster {
    fn start_one(&self, n: usize) -> Instance {
        let data = self.root.path().join(format!("i{n}"));
        let mut child = Command::new(onsite_tests::onsite_server_bin())
            .args(["--data", data.to_str().unwrap(), "--listen", "127.0.0.1:0", "--database", &self.db_url, "--blobs", &self.blobs])
            .args(["--keys", self.keys.to_str().unwrap(), "--admin-token", ADMIN, "--compact-after", "8", "--log", "warn"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let url = line.trim().strip_prefix("onsite-server listening on ").unwrap_or_else(|| panic!("instance {n} said {line:?}")).to_string();
        Instance { child, url }
    }

    fn url(&self, n: usize) -> String {
        self.instances[n].lock().unwrap().url.clone()
    }

    fn random_url(&self) -> String {
        self.url(rand::thread_rng().gen_range(0..self.instances.len()))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in &self.instances {
            let mut i = i.lock().unwrap_or_else(|p| p.into_inner());
            let _ = i.child.kill();
            let _ = i.child.wait();
        }
    }
}

fn heads(bytes: &[u8]) -> Vec<automerge::ChangeHash> {
    let mut h = automerge::AutoCommit::load(bytes).unwrap().get_heads();
    h.sort();
    h
}

fn fast() -> SyncOptions {
    SyncOptions { base_backoff_ms: 5, max_backoff_ms: 50, max_attempts: 3, ..SyncOptions::default() }
}

#[test]
#[ignore = "needs PostgreSQL and S3 (ONSITE_TEST_PG, ONSITE_TEST_S3); run by the postgres suite"]
fn three_instances_twenty_devices_one_killed_and_everything_converges() {
    let (_db, db_url) = TempDatabase::new();
    let blobs = s3_url().expect("ONSITE_TEST_S3");
    let root = tempfile::tempdir().unwrap();
    let keys = root.path().join("keys");
    let mut cluster = Cluster { db_url, blobs: blobs.clone(), keys, root, instances: Vec::new() };
    // The first instance creates the schema and the keys; the others start on them.
    for n in 0..3 {
        let i = cluster.start_one(n);
        cluster.instances.push(Mutex::new(i));
    }
    let cluster = Arc::new(cluster);
    let token = create_provider(&cluster.url(0), ADMIN, PROVIDER, "Multi").unwrap();
    let admin_d = DispatcherClient::new(&cluster.url(1), &token).unwrap();
    // Each engineer: orders A and B the devices edit, order P the dispatcher moves around.
    let mut edited: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut pool = Vec::new();
    for e in 0..ENGINEERS {
        let eng = format!("eng-{e}");
        let ids = admin_d.create_orders(&sample_orders(PROVIDER, &eng, &format!("WO-{e}-"), 3)).unwrap();
        edited.insert(eng.clone(), ids[..2].to_vec());
        pool.push(ids[2].clone());
    }
    let dirs: Vec<tempfile::TempDir> = (0..ENGINEERS * DEVICES_PER_ENGINEER).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut devices = Vec::new();
    for (k, dir) in dirs.iter().enumerate() {
        let eng = format!("eng-{}", k / DEVICES_PER_ENGINEER);
        let d = Device::open(onsite_tests::options(dir.path())).unwrap();
        let url = cluster.random_url();
        let code = admin_d.enrolment_code(&eng).unwrap();
        d.enrol(&HttpTransport::new(&url).unwrap(), &url, &code).unwrap();
        devices.push((eng, Arc::new(d)));
    }

    let stop = Arc::new(AtomicBool::new(false));
    let written: Arc<Mutex<BTreeMap<String, BTreeSet<String>>>> = Arc::default();
    let failed_syncs = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();
    for (k, (eng, d)) in devices.iter().enumerate() {
        let (eng, d, cluster, stop, written, failed) = (eng.clone(), d.clone(), cluster.clone(), stop.clone(), written.clone(), failed_syncs.clone());
        let mine = edited[&eng].clone();
        threads.push(std::thread::spawn(move || {
            let mut rng = rand::thread_rng();
            let mut round = 0u64;
            let mut photo_taken = false;
            while !stop.load(Ordering::Relaxed) {
                round += 1;
                let t = HttpTransport::new(&cluster.random_url()).unwrap();
                if d.list(&Default::default()).unwrap().iter().any(|o| o.id == mine[0]) {
                    let id = &mine[rng.gen_range(0..mine.len())];
                    let note = format!("device {k} round {round}");
                    d.add_note(id, &note).unwrap();
                    written.lock().unwrap().entry(id.clone()).or_default().insert(note);
                    if !photo_taken {
                        d.ingest_photo(id, None, PhotoSource::Bytes(&onsite_tests::noisy_jpeg(320, 240, k as u64)), None).unwrap();
                        photo_taken = true;
                    }
                }
                match d.sync(&t, &fast(), None) {
                    Ok(r) if r.complete() => {}
                    _ => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
                std::thread::sleep(Duration::from_millis(rng.gen_range(5..40)));
            }
        }));
    }
    // The dispatcher: priorities on every order, and the pool orders reassigned around.
    let dispatcher = {
        let (cluster, stop, token, edited, pool) = (cluster.clone(), stop.clone(), token.clone(), edited.clone(), pool.clone());
        std::thread::spawn(move || {
            let mut rng = rand::thread_rng();
            let all: Vec<String> = edited.values().flatten().chain(pool.iter()).cloned().collect();
            let mut moves = 0;
            while !stop.load(Ordering::Relaxed) {
                let Ok(c) = DispatcherClient::new(&cluster.random_url(), &token) else { continue };
                let id = &all[rng.gen_range(0..all.len())];
                let _ = c.set_priority(id, ["urgent", "normal", "low"][rng.gen_range(0..3)]);
                let p = &pool[rng.gen_range(0..pool.len())];
                if c.assign(p, &format!("eng-{}", rng.gen_range(0..ENGINEERS)), "Engineer").is_ok() {
                    moves += 1;
                }
                std::thread::sleep(Duration::from_millis(rng.gen_range(10..60)));
            }
            moves
        })
    };
    // Mid-run: instance 2 is SIGKILLed (no drain, no goodbye) and restarted.
    std::thread::sleep(Duration::from_secs(4));
    {
        let mut i = cluster.instances[2].lock().unwrap();
        i.child.kill().unwrap();
        i.child.wait().unwrap();
    }
    std::thread::sleep(Duration::from_millis(800));
    let restarted = cluster.start_one(2);
    *cluster.instances[2].lock().unwrap() = restarted;
    std::thread::sleep(Duration::from_secs(4));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let moves = dispatcher.join().unwrap();
    assert!(moves > 0, "the dispatcher reassigned nothing");

    // Quiet: every device syncs until a pass completes, through any instance.
    let deadline = Instant::now() + Duration::from_secs(120);
    for (_, d) in &devices {
        for pass in 0.. {
            let r = d.sync(&HttpTransport::new(&cluster.random_url()).unwrap(), &fast(), None).unwrap();
            if r.complete() && r.orders_pushed == 0 && r.orders_pulled == 0 && pass > 0 {
                break;
            }
            assert!(Instant::now() < deadline, "devices did not settle: {r:?}");
        }
    }
    // One more pass each, so every device has what the others pushed last.
    for (_, d) in &devices {
        assert!(d.sync(&HttpTransport::new(&cluster.random_url()).unwrap(), &fast(), None).unwrap().complete());
    }

    let storage = onsite_server::storage::PostgresStorage::open(&cluster.db_url).unwrap();
    use onsite_server::storage::Storage as _;
    // Same heads as the server for every order in each device's scope, and nothing else held.
    for (eng, d) in &devices {
        let scope: BTreeSet<String> = storage.orders(PROVIDER, Some(eng)).unwrap().into_iter().map(|o| o.id).collect();
        let held: BTreeSet<String> = d.list(&Default::default()).unwrap().into_iter().map(|o| o.id).collect();
        if held != scope {
            let mut pg = postgres::Client::connect(&cluster.db_url, postgres::NoTls).unwrap();
            for id in scope.symmetric_difference(&held) {
                let rows = pg.query("SELECT seq, kind, origin, engineer_id FROM feed WHERE order_id = $1 AND kind <> 'change' ORDER BY seq", &[id]).unwrap();
                let rows: Vec<(i64, String, String, Option<String>)> = rows.iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get(3))).collect();
                eprintln!("{id}: {rows:?}");
            }
            eprintln!("status {:?}", d.sync_status());
        }
        assert_eq!(held, scope, "{eng}: the device holds exactly the orders in its scope");
        for id in &scope {
            let server = automerge::AutoCommit::load(&storage.document(PROVIDER, id).unwrap().concat()).unwrap().save();
            assert_eq!(heads(&d.document_bytes(id).unwrap()), heads(&server), "{eng} differs from the server on {id}");
        }
    }
    // No note a device wrote is missing on the server.
    let written = written.lock().unwrap();
    let total_notes: usize = written.values().map(|n| n.len()).sum();
    for (id, notes) in written.iter() {
        let doc = automerge::AutoCommit::load(&storage.document(PROVIDER, id).unwrap().concat()).unwrap();
        let order: onsite_core::WorkOrder = autosurgeon::hydrate(&doc).unwrap();
        let on_server: BTreeSet<String> = order.notes.iter().map(|n| n.text.clone()).collect();
        let missing: Vec<&String> = notes.difference(&on_server).collect();
        assert!(missing.is_empty(), "{id}: notes lost: {missing:?}");
    }
    // The log: each accepted journal entry exactly once, no gaps, and every instance signs
    // the same checkpoint; every device entry's inclusion proof verifies against it.
    let mut pg = postgres::Client::connect(&cluster.db_url, postgres::NoTls).unwrap();
    let journal: i64 = pg.query_one("SELECT count(*) FROM journal", &[]).unwrap().get(0);
    let leaves: i64 = pg.query_one("SELECT count(*) FROM log_leaves WHERE provider = $1", &[&PROVIDER]).unwrap().get(0);
    let distinct: i64 = pg.query_one("SELECT count(DISTINCT (device_id, seq)) FROM log_leaves", &[]).unwrap().get(0);
    let max_idx: Option<i64> = pg.query_one("SELECT max(idx) FROM log_leaves WHERE provider = $1", &[&PROVIDER]).unwrap().get(0);
    assert_eq!((leaves, distinct), (journal, journal), "log leaves equal the accepted journal entries exactly");
    assert_eq!(max_idx, Some(leaves - 1), "leaf indexes have no gaps");
    let device_entries: usize = devices.iter().map(|(_, d)| d.journal(None).unwrap().len()).sum();
    assert_eq!(device_entries as i64, journal, "every device's journal reached the log");
    let checkpoints: Vec<Checkpoint> =
        (0..3).map(|n| serde_json::from_value(DispatcherClient::new(&cluster.url(n), &token).unwrap().checkpoint().unwrap()).unwrap()).collect();
    for c in &checkpoints {
        assert_eq!((c.size, &c.root), (checkpoints[0].size, &checkpoints[0].root), "instances agree on the log");
    }
    let all_leaves = storage.log_leaves(PROVIDER).unwrap();
    let latest = &checkpoints[0];
    let mut proofs = 0;
    for (_, d) in &devices {
        let root = latest.verify(d.log_key().unwrap().as_deref()).unwrap();
        for e in d.journal(None).unwrap() {
            let idx: i64 = pg.query_one("SELECT idx FROM log_leaves WHERE device_id = $1 AND seq = $2", &[&d.device_id(), &(e.seq as i64)]).unwrap().get(0);
            let path = log::inclusion_proof(idx as u64, &all_leaves[..latest.size as usize]).unwrap();
            log::verify_inclusion(idx as u64, latest.size, &all_leaves[idx as usize], &path, &root).unwrap();
            proofs += 1;
        }
    }
    // Blobs: each stored once, byte-exact, no upload left behind.
    let store = onsite_server::blobs::open_store(&blobs).unwrap();
    let objects = store.list("blobs/").unwrap();
    let recorded: i64 = pg.query_one("SELECT count(*) FROM blobs", &[]).unwrap().get(0);
    assert_eq!(objects.len() as i64, recorded, "one object per recorded blob");
    for o in &objects {
        let bytes = store.get(&o.key).unwrap().unwrap();
        assert_eq!(onsite_core::hash::sha256_hex(&bytes), o.key.rsplit('/').next().unwrap(), "{} is byte-exact", o.key);
    }
    assert!(recorded >= devices.len() as i64, "every device's photo arrived ({recorded})");
    assert!(store.list("uploads/").unwrap().is_empty(), "no partial upload is left");
    eprintln!(
        "multi-instance: {} devices, {total_notes} notes, {moves} reassignments, {} failed syncs during the run, {journal} journal entries, {proofs} proofs, {recorded} blobs",
        devices.len(),
        failed_syncs.load(Ordering::Relaxed)
    );
}
