//! Many devices of one engineer syncing in parallel against a real server that compacts
//! often: every device must end with exactly the server's history (issue: devices silently
//! missed changes when a sync raced a compaction, and the feed head went backwards).

use std::sync::{Arc, Barrier};

use onsite_core::clock::ManualClock;
use onsite_core::device::SyncOptions;
use onsite_core::Device;
use onsite_server::client::sample_orders;
use onsite_tests::net::PROVIDER;

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::at(chrono::DateTime::parse_from_rfc3339("2026-11-23T09:00:00+08:00").unwrap().with_timezone(&chrono::Utc)))
}

fn sorted_heads(bytes: &[u8]) -> Vec<automerge::ChangeHash> {
    let mut doc = automerge::AutoCommit::load(bytes).unwrap();
    let mut h = doc.get_heads();
    h.sort();
    h
}

fn health_seq(url: &str) -> u64 {
    let t = onsite_core::sync::transport::HttpTransport::new(url).unwrap();
    let r =
        onsite_core::sync::transport::Transport::send(&t, &onsite_core::sync::transport::Request::new(onsite_core::sync::transport::Method::Get, "/health"))
            .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    v["feed_seq"].as_u64().unwrap()
}

/// One run: `devices` devices, `rounds` rounds each of (note on one of three shared orders,
/// sync), all in parallel; the server compacts every `compact_after` change rows.
fn run(devices: usize, rounds: usize, compact_after: u64) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let mut config = onsite_server::Config::new(dir.path().join("server"));
    config.admin_token = Some("admin-secret".into());
    config.compact_after = compact_after;
    let running = onsite_server::spawn(config).unwrap();
    let url = running.url();
    let token = onsite_server::client::create_provider(&url, "admin-secret", PROVIDER, "Test provider").unwrap();
    let dispatcher = onsite_server::client::DispatcherClient::new(&url, &token).unwrap();
    let ids = dispatcher.create_orders(&sample_orders(PROVIDER, "eng-1", "WO-P", 3)).unwrap();
    let c = clock();
    let options = SyncOptions { base_backoff_ms: 1, max_backoff_ms: 20, max_attempts: 8, ..SyncOptions::default() };
    let mut dirs = Vec::new();
    let mut devs = Vec::new();
    for _ in 0..devices {
        let d = tempfile::tempdir().unwrap();
        let device = Device::open(onsite_tests::options(d.path()).with_clock(c.clone())).unwrap();
        let code = dispatcher.enrolment_code("eng-1").unwrap();
        let t = onsite_core::sync::transport::HttpTransport::new(&url).unwrap();
        device.enrol(&t, &url, &code).unwrap();
        device.sync(&t, &options, None).unwrap();
        dirs.push(d);
        devs.push(Arc::new(device));
    }
    // A watcher: the feed head handed out never goes backwards.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let (url, stop) = (url.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut last = 0;
            let mut backwards = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let s = health_seq(&url);
                if s < last {
                    backwards.push(format!("feed head went back from {last} to {s}"));
                }
                last = last.max(s);
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            backwards
        })
    };
    let barrier = Arc::new(Barrier::new(devices));
    let threads: Vec<_> = devs
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let (d, ids, url, barrier, options) = (d.clone(), ids.clone(), url.clone(), barrier.clone(), options.clone());
            std::thread::spawn(move || {
                let t = onsite_core::sync::transport::HttpTransport::new(&url).unwrap();
                barrier.wait();
                let mut odd = Vec::new();
                for r in 0..rounds {
                    d.add_note(&ids[(i + r) % ids.len()], &format!("device {i} round {r}")).unwrap();
                    let rep = d.sync(&t, &options, None).unwrap();
                    if !rep.orders_rejected.is_empty() || !rep.errors.is_empty() || rep.orders_rebased > 0 {
                        odd.push(format!("device {i} round {r}: rejected {:?} errors {:?}", rep.orders_rejected, rep.errors));
                    }
                }
                odd
            })
        })
        .collect();
    let mut odd = Vec::new();
    for t in threads {
        odd.extend(t.join().unwrap());
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut problems = watcher.join().unwrap();
    // Quiet now: two more passes each must bring every device to the server's heads.
    let t = onsite_core::sync::transport::HttpTransport::new(&url).unwrap();
    for _ in 0..2 {
        for d in &devs {
            d.sync(&t, &options, None).unwrap();
        }
    }
    for id in &ids {
        let chunks = running.service.storage().document(PROVIDER, id).unwrap();
        let server = sorted_heads(&chunks.concat());
        let notes = running.service.order(PROVIDER, id).unwrap().notes.len();
        for (i, d) in devs.iter().enumerate() {
            let local = sorted_heads(&d.document_bytes(id).unwrap());
            if local != server {
                let mine = d.get(id).unwrap().order.notes;
                let all = running.service.order(PROVIDER, id).unwrap().notes;
                let missing: Vec<&str> = all.iter().filter(|n| !mine.contains(n)).map(|n| n.text.as_str()).collect();
                let row = running.service.storage().order(PROVIDER, id).unwrap().unwrap();
                problems.push(format!(
                    "device {i} ({}) differs on {id}: {} of {notes} notes, missing {missing:?}; cursor {:?}, head {}, compacted_seq {}",
                    &d.device_id()[..6],
                    mine.len(),
                    d.store().meta(onsite_core::store::MetaKey::SyncCursor).unwrap(),
                    running.service.storage().max_seq().unwrap(),
                    row.compacted_seq
                ));
                d.store().set_meta(onsite_core::store::MetaKey::SyncCursor, "0").unwrap();
                d.sync(&t, &options, None).unwrap();
                let again = sorted_heads(&d.document_bytes(id).unwrap()) == server;
                problems.push(format!("after a sync from cursor 0 the device {} the server", if again { "matches" } else { "still differs from" }));
            }
        }
    }
    drop(dirs);
    if !problems.is_empty() {
        problems.extend(odd);
    }
    problems
}

#[test]
fn parallel_devices_converge_across_compactions() {
    // 24 devices x 4 rounds = 96 pushes over 3 orders, compacting every 8 change rows:
    // about a dozen compactions per order while syncs are in flight.
    let runs: usize = std::env::var("ONSITE_CONVERGENCE_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(2);
    let mut failures = Vec::new();
    for run_no in 0..runs {
        let problems = run(24, 4, 8);
        if !problems.is_empty() {
            failures.push(format!("run {run_no}: {} problems: {:#?}", problems.len(), problems));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
