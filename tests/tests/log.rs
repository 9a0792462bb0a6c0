//! The provider's evidence log over HTTP: checkpoints and consistency proofs computed from
//! the stored tree nodes agree with the whole list of leaves, every older checkpoint is
//! proved a prefix of the newer one, and a forked history is not (ADR 0020).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use onsite_core::clock::ManualClock;
use onsite_core::device::SyncOptions;
use onsite_core::evidence::log::{self, tree, Checkpoint, Hash};
use onsite_core::Device;
use onsite_server::client::sample_orders;
use onsite_tests::net::{TestServer, PROVIDER};

fn fast() -> SyncOptions {
    SyncOptions { base_backoff_ms: 1, max_backoff_ms: 5, max_attempts: 3, ..SyncOptions::default() }
}

fn hashes(v: &serde_json::Value) -> Vec<Hash> {
    v["path"].as_array().unwrap().iter().map(|h| onsite_core::hash::unhex(h.as_str().unwrap()).unwrap().try_into().unwrap()).collect()
}

#[test]
fn every_checkpoint_is_proved_a_prefix_of_the_next_and_a_fork_is_not() {
    let s = TestServer::start();
    let ids = s.dispatcher.create_orders(&sample_orders(PROVIDER, "eng-1", "WO-L", 3)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let device = Device::open(
        onsite_tests::options(dir.path())
            .with_clock(Arc::new(ManualClock::at(chrono::DateTime::parse_from_rfc3339("2026-11-23T09:00:00+08:00").unwrap().with_timezone(&chrono::Utc)))),
    )
    .unwrap();
    s.enrol(&device, "eng-1");
    device.sync(&s.transport(), &fast(), None).unwrap();
    let mut checkpoints: Vec<Checkpoint> = Vec::new();
    for round in 0..6 {
        for (k, id) in ids.iter().enumerate() {
            for n in 0..=round + k {
                device.add_note(id, &format!("round {round} note {n}")).unwrap();
            }
        }
        device.sync(&s.transport(), &fast(), None).unwrap();
        let cp: Checkpoint = serde_json::from_value(s.dispatcher.checkpoint().unwrap()).unwrap();
        let root = cp.verify(Some(&s.running.service.log_key())).unwrap();
        // The root from the stored nodes is the root of every leaf.
        let leaves = s.running.service.storage().log_leaves(PROVIDER).unwrap();
        assert_eq!(leaves.len() as u64, cp.size);
        assert_eq!(root, log::root(&leaves));
        checkpoints.push(cp);
    }
    let latest = checkpoints.last().unwrap().clone();
    let latest_root = latest.verify(None).unwrap();
    for old in &checkpoints {
        let old_root = old.verify(None).unwrap();
        for (to, to_root) in [(None, latest_root), (Some(latest.size), latest_root), (Some(old.size), old_root)] {
            let p = s.dispatcher.consistency(old.size, to).unwrap();
            assert_eq!(p["from"], old.size);
            tree::verify_consistency(old.size, to.unwrap_or(latest.size), &old_root, &to_root, &hashes(&p)).unwrap();
        }
        // A split view: a checkpoint of the same size over other leaves is not a prefix.
        let mut forked = s.running.service.storage().log_leaves(PROVIDER).unwrap()[..old.size as usize].to_vec();
        *forked.last_mut().unwrap() = log::leaf_hash(b"another history");
        let p = s.dispatcher.consistency(old.size, None).unwrap();
        if old.size < latest.size {
            assert!(tree::verify_consistency(old.size, latest.size, &log::root(&forked), &latest_root, &hashes(&p)).is_err());
        }
    }
    // Sizes the log does not have are a clear 400, not a made-up proof.
    for (from, to) in [(0, None), (latest.size + 1, None), (2, Some(1)), (1, Some(latest.size + 1))] {
        let e = s.dispatcher.consistency(from, to).unwrap_err();
        assert!(e.to_string().contains("400") || e.to_string().contains("no consistency proof"), "{from}..{to:?}: {e}");
    }
}
