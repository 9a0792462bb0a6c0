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
