//! Durability under SIGKILL: a child `onsite` appends notes in a loop and prints `ack N`
//! after each edit returned Ok; we kill it at random moments, many times, and check that
//! every acknowledged edit is in the store and the file passes SQLite's integrity check.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use onsite_core::{Device, DeviceOptions};
use onsite_tests::{onsite_bin, SAMPLE_ORDERS};
use rand::{Rng, SeedableRng};

const ROUNDS: usize = 40;

#[test]
fn acknowledged_edits_survive_sigkill() {
    let seed: u64 = std::env::var("ONSITE_KILL_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    eprintln!("kill test seed {seed} (rerun with ONSITE_KILL_SEED={seed})");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let bin = onsite_bin();
    // A subdirectory: the CLI keeps its key file beside it (`device.key`), inside the temp dir.
    let data_dir = dir.path().join("device");
    let data = data_dir.to_str().unwrap();
    let orders = dir.path().join("orders.json");
    std::fs::write(&orders, SAMPLE_ORDERS).unwrap();
    let st = Command::new(&bin).args(["--data", data, "orders", "import"]).arg(&orders).status().unwrap();
    assert!(st.success());

    let order = "WO-20261123-0001";
    let mut acked = BTreeSet::new();
    let mut next = 0u64;
    let mut killed_mid_run = 0;
    for round in 0..ROUNDS {
        let mut child = Command::new(&bin)
            .args(["--data", data, "edit-loop", order, "--start", &next.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(n) = line.strip_prefix("ack ").and_then(|n| n.parse::<u64>().ok()) {
                    if tx.send(n).is_err() {
                        break;
                    }
                }
            }
        });
        // Let it start (opening + first edits), then kill at a random moment.
        std::thread::sleep(Duration::from_millis(rng.gen_range(60..400)));
        child.kill().unwrap(); // SIGKILL on Unix
        let status = child.wait().unwrap();
        reader.join().unwrap();
        let got: Vec<u64> = rx.try_iter().collect();
        if status.code().is_none() {
            killed_mid_run += 1;
        }
        eprintln!("round {round}: {} acks", got.len());
        if let Some(&last) = got.last() {
            next = last + 1;
        }
        acked.extend(got);
        // The file must open cleanly after every kill.
        let device = Device::open(DeviceOptions::new(&data_dir)).expect("store opens after SIGKILL");
        device.store().check_integrity().expect("integrity after SIGKILL");
        // The killed run's unsealed entries were sealed by this open, which says so (ADR 0017).
        let journal = device.verify_journal().unwrap();
        assert!(journal.sealed(), "round {round}: {journal:?}");
    }
    assert!(killed_mid_run >= ROUNDS / 2, "the child must really be killed while editing");
    assert!(acked.len() > ROUNDS, "too few edits acknowledged ({}) to prove anything", acked.len());
    let device = Device::open(DeviceOptions::new(&data_dir)).unwrap();
    let present: BTreeSet<u64> =
        device.get(order).unwrap().order.notes.iter().filter_map(|n| n.text.strip_prefix("edit ").and_then(|n| n.parse().ok())).collect();
    let lost: Vec<&u64> = acked.difference(&present).collect();
    assert!(lost.is_empty(), "acknowledged edits lost after SIGKILL: {lost:?} (seed {seed})");
    eprintln!("{} acknowledged edits, all present; {} notes in total", acked.len(), present.len());
    let late: usize = device
        .journal(None)
        .unwrap()
        .iter()
        .filter_map(|e| e.body().ok())
        .filter(|b| b.kind == "session_open" && b.payload.as_ref().is_some_and(|p| p.get("unsealed_from").is_some()))
        .count();
    assert!(late >= ROUNDS / 2, "the opens after the kills sealed late and said so ({late})");
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// Whether a kill left the migration unfinished (a plain database, its temp copy, or a
/// blob file not yet encrypted).
fn unfinished(data: &std::path::Path) -> bool {
    let db = std::fs::read(data.join("onsite.sqlite3")).unwrap_or_default();
    if db.starts_with(b"SQLite format 3\0") || data.join("onsite.sqlite3.encrypting").exists() {
        return true;
    }
    let mut stack = vec![data.join("blobs/sha256")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else if !std::fs::read(e.path()).unwrap().starts_with(b"ONSBLOB1") {
                return true;
            }
        }
    }
    false
}

/// The plain-to-encrypted migration under SIGKILL: a plain store (orders, notes, photos) is
/// opened by the CLI, which encrypts it in place, and killed at random moments of that
/// migration; after every kill the store opens with its key and holds everything.
#[test]
fn the_encryption_migration_survives_sigkill() {
    const MIGRATION_ROUNDS: usize = 16;
    let seed: u64 = std::env::var("ONSITE_KILL_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    eprintln!("migration kill seed {seed} (rerun with ONSITE_KILL_SEED={seed})");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let root = tempfile::tempdir().unwrap();
    let template = root.path().join("plain");
    let (ids, photos) = {
        let d = Device::open(DeviceOptions::new(&template).with_encryption(onsite_core::crypt::Encryption::Plain)).unwrap();
        let orders: Vec<serde_json::Value> = (0..200)
            .map(|i| {
                let mut o: serde_json::Value = serde_json::from_str::<Vec<serde_json::Value>>(SAMPLE_ORDERS).unwrap()[0].clone();
                o["id"] = format!("WO-M{i:04}").into();
                o
            })
            .collect();
        let ids = d.import_orders_json(&serde_json::to_string(&orders).unwrap()).unwrap();
        for id in &ids {
            d.add_note(id, &format!("{id}: measured 12.1 V")).unwrap();
        }
        let photos: Vec<(String, Vec<u8>)> = (0..24)
            .map(|k| {
                let jpeg = onsite_tests::noisy_jpeg(640, 480, k);
                let r = d.ingest_photo(&ids[k as usize], None, onsite_core::device::PhotoSource::Bytes(&jpeg), None).unwrap();
                (r.sha256, jpeg)
            })
            .collect();
        (ids, photos)
    };
    let bin = onsite_bin();
    let run = |data: &std::path::Path| {
        Command::new(&bin).arg("--data").arg(data).args(["orders", "list", "--json"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap()
    };
    // How long an uninterrupted open-and-migrate takes: kills land inside that span.
    let t = std::time::Instant::now();
    let whole = root.path().join("whole/device");
    copy_dir(&template, &whole);
    assert!(run(&whole).wait().unwrap().success());
    let span = t.elapsed().as_millis() as u64;
    eprintln!("an uninterrupted migration run takes {span} ms");
    let mut interrupted = 0;
    for round in 0..MIGRATION_ROUNDS {
        let data = root.path().join(format!("r{round}/device"));
        copy_dir(&template, &data);
        let mut child = run(&data);
        std::thread::sleep(Duration::from_millis(rng.gen_range(0..span.max(2))));
        child.kill().unwrap();
        child.wait().unwrap();
        if unfinished(&data) {
            interrupted += 1;
        }
        let d = Device::open(DeviceOptions::new(&data)).unwrap_or_else(|e| panic!("round {round}: the store does not open after SIGKILL: {e}"));
        assert!(d.store().is_encrypted());
        d.store().check_integrity().unwrap();
        assert_eq!(d.list(&onsite_core::OrderFilter::default()).unwrap().len(), ids.len(), "round {round}");
        for id in ids.iter().step_by(37) {
            assert_eq!(d.get(id).unwrap().order.notes[0].text, format!("{id}: measured 12.1 V"), "round {round}");
        }
        for (sha, bytes) in &photos {
            assert_eq!(&d.blob(sha).unwrap(), bytes, "round {round}: photo {sha}");
        }
        assert!(d.verify_journal().unwrap().ok(), "round {round}");
        drop(d);
        assert!(!unfinished(&data), "round {round}: the open finished the migration");
        std::fs::remove_dir_all(root.path().join(format!("r{round}"))).unwrap();
    }
    eprintln!("{interrupted} of {MIGRATION_ROUNDS} kills landed mid-migration");
    assert!(interrupted >= MIGRATION_ROUNDS / 4, "too few kills interrupted the migration ({interrupted}) to prove anything");
}
