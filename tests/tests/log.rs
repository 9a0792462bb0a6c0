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

/// Reads the log the way standard tooling does, with an independent implementation of the
/// C2SP formats from crates.io (`signed_note`, `tlog_tiles`): the checkpoint note verifies
/// with the served verifier key, tiles fetched over HTTP authenticate against its root, and
/// record and tree proofs built from them check, as does the server's consistency proof.
#[test]
fn standard_tooling_reads_the_checkpoint_the_tiles_and_the_proofs() {
    use onsite_core::sync::transport::{Method, Request, Transport};
    use tlog_tiles::{Tile, TileHashReader, TileReader};

    let s = TestServer::start();
    let ids = s.dispatcher.create_orders(&sample_orders(PROVIDER, "eng-1", "WO-T", 3)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let device = Device::open(onsite_tests::options(dir.path())).unwrap();
    s.enrol(&device, "eng-1");
    device.sync(&s.transport(), &fast(), None).unwrap();
    let get = |path: &str| -> (u16, Vec<u8>) {
        let r = s.transport().send(&Request::new(Method::Get, path)).unwrap();
        (r.status, r.body)
    };
    let mut sizes = Vec::new();
    for round in 0..2 {
        for id in &ids {
            for n in 0..100 {
                device.add_note(id, &format!("round {round} note {n}")).unwrap();
            }
        }
        device.sync(&s.transport(), &fast(), None).unwrap();
        let (status, note) = get(&format!("/v1/log/{PROVIDER}/checkpoint"));
        assert_eq!(status, 200);
        sizes.push(note);
    }
    let (status, vkey) = get(&format!("/v1/log/{PROVIDER}/key"));
    assert_eq!(status, 200);
    let vkey = String::from_utf8(vkey).unwrap();
    let verifier = signed_note::StandardVerifier::new(vkey.trim()).unwrap();
    let verifiers = signed_note::VerifierList::new(vec![Box::new(verifier)]);
    let mut heads = Vec::new();
    for note in &sizes {
        let n = signed_note::Note::from_bytes(note).unwrap();
        n.verify(&verifiers).expect("the checkpoint verifies with the served key");
        let cp = tlog_tiles::Checkpoint::from_bytes(n.text()).unwrap();
        assert_eq!(cp.origin(), format!("onsite/{PROVIDER}"));
        heads.push((cp.size(), *cp.hash()));
    }
    let (size, root) = *heads.last().unwrap();
    assert!(size > 600, "{size} leaves: full and partial tiles at level 0, a partial one at level 1");
    // The same root as the JSON checkpoint the devices receive.
    let json: Checkpoint = serde_json::from_value(s.dispatcher.checkpoint().unwrap()).unwrap();
    assert_eq!((json.size, json.verify(None).unwrap()), (size, root.0));

    struct Http<'a>(&'a dyn Fn(&str) -> (u16, Vec<u8>));
    impl TileReader for Http<'_> {
        fn height(&self) -> u8 {
            8
        }
        fn read_tiles(&self, tiles: &[Tile]) -> Result<Vec<Vec<u8>>, tlog_tiles::Error> {
            Ok(tiles
                .iter()
                .map(|t| {
                    // C2SP paths have no height element: drop Go's `tile/8/`.
                    let path = t.path().replacen("tile/8/", "", 1);
                    let (status, body) = (self.0)(&format!("/v1/log/{PROVIDER}/tile/{path}"));
                    assert_eq!(status, 200, "{path}");
                    body
                })
                .collect())
        }
        fn save_tiles(&self, _tiles: &[Tile], _data: &[Vec<u8>]) {}
    }
    let http = Http(&get);
    let reader = TileHashReader::new(size, root, &http);
    assert_eq!(tlog_tiles::tree_hash(size, &reader).unwrap(), root);
    for index in [0, 255, 256, size / 2, size - 1] {
        let proof = tlog_tiles::prove_record(size, index, &reader).unwrap();
        let leaf = s.running.service.storage().log_leaves(PROVIDER).unwrap()[index as usize];
        tlog_tiles::check_record(&proof, size, root, index, tlog_tiles::Hash(leaf)).unwrap();
    }
    // The server's consistency proof between the two checkpoints checks with the other
    // implementation too.
    let (old_size, old_root) = heads[0];
    let served = s.dispatcher.consistency(old_size, Some(size)).unwrap();
    let proof: Vec<tlog_tiles::Hash> = hashes(&served).into_iter().map(tlog_tiles::Hash).collect();
    tlog_tiles::check_tree(&proof, size, root, old_size, old_root).unwrap();
    // Entry bundles: each entry is a journal entry hash whose record hash is the leaf.
    let (status, bundle) = get(&format!("/v1/log/{PROVIDER}/tile/entries/000"));
    assert_eq!(status, 200);
    let leaves = s.running.service.storage().log_leaves(PROVIDER).unwrap();
    let mut rest = bundle.as_slice();
    let mut k = 0;
    while !rest.is_empty() {
        let len = u16::from_be_bytes([rest[0], rest[1]]) as usize;
        assert_eq!(tlog_tiles::record_hash(&rest[2..2 + len]).0, leaves[k]);
        rest = &rest[2 + len..];
        k += 1;
    }
    assert_eq!(k, 256);
    // Past the log, malformed paths and unknown logs are 404s.
    for path in [
        format!("/v1/log/{PROVIDER}/tile/0/x001/000"),
        format!("/v1/log/{PROVIDER}/tile/1/000"),
        format!("/v1/log/{PROVIDER}/tile/0/00"),
        format!("/v1/log/{PROVIDER}/tile/0/x000/001"),
        format!("/v1/log/{PROVIDER}/tile/0/000.p/0"),
        format!("/v1/log/{PROVIDER}/tile/0/000.p/256"),
        format!("/v1/log/{PROVIDER}/tile/08/000"),
        "/v1/log/nobody/checkpoint".to_string(),
        "/v1/log/nobody/tile/0/000.p/1".to_string(),
    ] {
        assert_eq!(get(&path).0, 404, "{path}");
    }
}

/// The server's operator rewrites history in its SQLite file: the first leaf replaced, the
/// stored nodes dropped (the next append recomputes them from the rewritten leaves).
fn rewrite_first_leaf(db: &std::path::Path) {
    let c = rusqlite::Connection::open(db).unwrap();
    c.execute_batch(&format!(
        "DROP TRIGGER log_leaves_immutable; DROP TRIGGER log_nodes_undeletable; \
         UPDATE log_leaves SET leaf = zeroblob(32) WHERE provider = '{PROVIDER}' AND idx = 0; DELETE FROM log_nodes;"
    ))
    .unwrap();
}

/// The provider rewrites its log under its devices (the server's operator edits the file): a
/// device that saw the old history stops at its next sync, keeps both checkpoints as
/// evidence, and keeps refusing; the rewritten server cannot prove the old head a prefix.
#[test]
fn a_log_rewritten_under_a_device_stops_its_sync_and_is_kept_as_evidence() {
    let s = TestServer::start();
    if std::env::var("ONSITE_TEST_PG").is_ok() {
        return; // PostgreSQL under test: the rewrite below is SQLite's (the conformance suite covers both).
    }
    let db = s.dir.path().join("server").join(onsite_server::DB_FILE);
    assert!(db.exists(), "{}", db.display());
    let ids = s.dispatcher.create_orders(&sample_orders(PROVIDER, "eng-1", "WO-F", 1)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let device = Device::open(onsite_tests::options(dir.path())).unwrap();
    s.enrol(&device, "eng-1");
    device.sync(&s.transport(), &fast(), None).unwrap();
    for n in 0..5 {
        device.add_note(&ids[0], &format!("before {n}")).unwrap();
    }
    device.sync(&s.transport(), &fast(), None).unwrap();
    let seen: Checkpoint = serde_json::from_str(&device.log_checkpoint().unwrap().expect("a checkpoint was kept")).unwrap();
    assert!(seen.size > 0);
    // Growth is proved, so a second honest sync is accepted and moves the kept checkpoint.
    device.add_note(&ids[0], "honest growth").unwrap();
    device.sync(&s.transport(), &fast(), None).unwrap();
    let grown: Checkpoint = serde_json::from_str(&device.log_checkpoint().unwrap().unwrap()).unwrap();
    assert!(grown.size > seen.size);
    assert!(device.log_fork().unwrap().is_none());

    rewrite_first_leaf(&db);
    device.add_note(&ids[0], "after the rewrite").unwrap();
    for _ in 0..2 {
        let e = device.sync(&s.transport(), &fast(), None).unwrap_err();
        assert!(e.to_string().contains("not consistent with what this device saw"), "{e}");
    }
    let evidence: serde_json::Value = serde_json::from_str(&device.log_fork().unwrap().expect("evidence kept")).unwrap();
    assert_eq!(evidence["seen"]["root"], serde_json::json!(grown.root));
    assert!(evidence["reason"].as_str().unwrap().contains("not a prefix"), "{evidence}");
    assert!(!evidence["proof"].as_array().unwrap().is_empty());
    // The device still holds the last consistent checkpoint, not the forked one.
    let kept: Checkpoint = serde_json::from_str(&device.log_checkpoint().unwrap().unwrap()).unwrap();
    assert_eq!(kept, grown);
}

/// A witness beside the log: every new checkpoint is cosigned, the served checkpoint carries
/// the cosignature and satisfies a witness policy; a forked history signed with the log's own
/// key is refused by the witness (409 at the same size, 422 with a proof that does not hold)
/// and kept there as evidence.
#[test]
fn the_witness_cosigns_growth_and_refuses_a_split_view() {
    use onsite_core::evidence::log::note::{Note, NoteSigner};
    use onsite_core::evidence::log::witness::{AddCheckpoint, Policy, Witness};
    use onsite_core::sync::transport::{HttpTransport, Method, Request, Transport};

    let s = TestServer::start();
    let wdir = tempfile::tempdir().unwrap();
    let log_vkey = s.running.service.log_verifier_key(PROVIDER).unwrap();
    let witness = onsite_server::witness::spawn(&onsite_server::witness::WitnessConfig {
        data: wdir.path().to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        name: "witness.test/w1".into(),
        logs: vec![log_vkey.clone()],
    })
    .unwrap();
    let wkey = witness.witness.verifier_key();
    s.running.service.add_witness(onsite_server::service::WitnessEndpoint::parse(&format!("{}={wkey}", witness.url())).unwrap());
    let policy = Policy { witnesses: vec![Witness::parse(&wkey).unwrap()], quorum: 1 };

    let ids = s.dispatcher.create_orders(&sample_orders(PROVIDER, "eng-1", "WO-W", 1)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let device = Device::open(onsite_tests::options(dir.path())).unwrap();
    s.enrol(&device, "eng-1");
    device.sync(&s.transport(), &fast(), None).unwrap();
    let get_checkpoint = || {
        let r = s.transport().send(&Request::new(Method::Get, format!("/v1/log/{PROVIDER}/checkpoint"))).unwrap();
        String::from_utf8(r.body).unwrap()
    };
    let mut sizes = Vec::new();
    for round in 0..3 {
        device.add_note(&ids[0], &format!("round {round}")).unwrap();
        device.sync(&s.transport(), &fast(), None).unwrap();
        let note = Note::parse(&get_checkpoint()).unwrap();
        assert_eq!(policy.check(&note).unwrap(), ["witness.test/w1"], "round {round}");
        let body = onsite_core::evidence::log::note::CheckpointBody::parse(&note.text).unwrap();
        assert_eq!(witness.witness.latest(&format!("onsite/{PROVIDER}")).map(|l| l.0), Some(body.size), "the witness holds the newest");
        sizes.push(body);
    }
    // A split view: the log's key signs a different history of the size the witness holds,
    // and a longer one grown from it.
    // The provider runs the log and holds its key: it can sign any history it likes.
    let seed_hex = std::fs::read_to_string(s.dir.path().join("server").join("keys").join(format!("{}.key", onsite_server::service::LOG_NOTE_KEY))).unwrap();
    let seed = onsite_core::hash::unhex(seed_hex.trim()).unwrap();
    let signer = NoteSigner::from_seed(&format!("onsite/{PROVIDER}"), &seed).unwrap();
    assert_eq!(signer.verifier_key(), log_vkey);
    let held = sizes.last().unwrap().clone();
    let t = HttpTransport::new(&witness.url()).unwrap();
    let add = |req: &AddCheckpoint| {
        let r = t.send(&Request::new(Method::Post, "/add-checkpoint").body(req.to_body().into_bytes())).unwrap();
        (r.status, r.header("content-type").map(str::to_string), String::from_utf8(r.body).unwrap())
    };
    let mut forked = held.clone();
    forked.root[0] ^= 1;
    let (status, ctype, body) = add(&AddCheckpoint { old: held.size, proof: vec![], checkpoint: signer.sign(&forked.text()) });
    assert_eq!((status, ctype.as_deref(), body.trim()), (409, Some("text/x.tlog.size"), held.size.to_string().as_str()));
    let longer = onsite_core::evidence::log::note::CheckpointBody { size: held.size + 3, root: [7; 32], ..held.clone() };
    let (status, _, _) = add(&AddCheckpoint { old: held.size, proof: vec![[1; 32]; 3], checkpoint: signer.sign(&longer.text()) });
    assert_eq!(status, 422);
    // Stale old size, another log's key, garbage.
    let (status, _, body) = add(&AddCheckpoint { old: 1, proof: vec![], checkpoint: signer.sign(&longer.text()) });
    assert_eq!((status, body.trim()), (409, held.size.to_string().as_str()));
    let stranger = NoteSigner::from_seed(&format!("onsite/{PROVIDER}"), &[9; 32]).unwrap();
    assert_eq!(add(&AddCheckpoint { old: held.size, proof: vec![], checkpoint: stranger.sign(&held.text()) }).0, 403);
    let other = NoteSigner::from_seed("onsite/other", &seed).unwrap();
    assert_eq!(
        add(&AddCheckpoint { old: 0, proof: vec![], checkpoint: other.sign(&held.text().replacen(&format!("onsite/{PROVIDER}"), "onsite/other", 1)) }).0,
        404
    );
    assert_eq!(t.send(&Request::new(Method::Post, "/add-checkpoint").body(b"old 1\n".to_vec())).unwrap().status, 400);
    // Nothing of the fork was recorded; both refusals are kept as evidence.
    assert_eq!(witness.witness.latest(&format!("onsite/{PROVIDER}")).map(|l| l.0), Some(held.size));
    let refused = witness.witness.refused();
    assert!(refused.iter().any(|r| r.1 == 409) && refused.iter().any(|r| r.1 == 422), "{refused:?}");
    // The honest log keeps going and is still cosigned.
    device.add_note(&ids[0], "after the attempt").unwrap();
    device.sync(&s.transport(), &fast(), None).unwrap();
    assert!(policy.check(&Note::parse(&get_checkpoint()).unwrap()).is_ok());
}

/// A server with a witness beside it (the witness trusts the provider's log key).
fn witnessed_server() -> (TestServer, onsite_server::witness::RunningWitness, tempfile::TempDir, String) {
    let s = TestServer::start();
    let wdir = tempfile::tempdir().unwrap();
    let witness = onsite_server::witness::spawn(&onsite_server::witness::WitnessConfig {
        data: wdir.path().to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        name: "witness.test/w1".into(),
        logs: vec![s.running.service.log_verifier_key(PROVIDER).unwrap()],
    })
    .unwrap();
    let key = witness.witness.verifier_key();
    s.running.service.add_witness(onsite_server::service::WitnessEndpoint::parse(&format!("{}={key}", witness.url())).unwrap());
    (s, witness, wdir, key)
}

/// Works the sample order to a signed receipt and completion, syncs, exports its bundle.
fn synced_bundle(s: &TestServer, dir: &std::path::Path) -> std::path::PathBuf {
    let d = Device::open(onsite_tests::options(dir.join("device"))).unwrap();
    s.enrol(&d, "eng-1");
    let id = onsite_tests::complete_sample_order(&d);
    d.sync(&s.transport(), &fast(), None).unwrap();
    let out = dir.join("bundle.zip");
    d.export_bundle(id, &out, Default::default()).unwrap();
    d.export_service_record(&dir.join("record.json")).unwrap();
    out
}

/// Bundles carry the cosigned tree head with their log proofs; `verify` under a witness
/// policy names the witnesses that cosigned, and fails a bundle whose head the policy's
/// witnesses did not cosign (another witness, or a log without witnesses).
#[test]
fn bundles_carry_the_cosigned_tree_head_and_verify_checks_a_witness_policy() {
    use onsite_core::evidence::log::witness::{Cosigner, Policy, Witness};
    let (s, _witness, _wdir, key) = witnessed_server();
    let dir = tempfile::tempdir().unwrap();
    let bundle = synced_bundle(&s, dir.path());
    let policy = |keys: Vec<String>| onsite_core::bundle::verify::Options {
        witness_policy: Some(Policy { quorum: 1, witnesses: keys.iter().map(|k| Witness::parse(k).unwrap()).collect() }),
        ..Default::default()
    };
    let witnessed =
        |r: &onsite_core::bundle::Report| r.checks.iter().filter(|c| c.check == "log.witnessed").map(|c| (c.passed, c.detail.clone())).collect::<Vec<_>>();
    let r = onsite_core::bundle::verify_file(&bundle, &policy(vec![key.clone()]));
    assert!(r.ok, "{}", r.render_text());
    let w = witnessed(&r);
    assert!(!w.is_empty() && w.iter().all(|(ok, d)| *ok && d.contains("cosigned by witness.test/w1")), "{w:?}");
    // Without a policy the cosignatures are reported, not required.
    let r = onsite_core::bundle::verify_file(&bundle, &Default::default());
    assert!(r.ok && witnessed(&r).iter().all(|(ok, d)| *ok && d.contains("not checked")), "{}", r.render_text());
    // A policy of another witness: the head is not cosigned by it.
    let stranger = Cosigner::from_seed("witness.test/w2", &[3; 32]).unwrap().verifier_key();
    let r = onsite_core::bundle::verify_file(&bundle, &policy(vec![stranger.clone()]));
    assert!(!r.ok && witnessed(&r).iter().all(|(ok, _)| !ok), "{}", r.render_text());
    // The same from the command line.
    let cli = |keys: &[&str]| {
        let mut c = std::process::Command::new(onsite_tests::onsite_bin());
        c.arg("verify").arg(&bundle);
        for k in keys {
            c.args(["--witness", k]);
        }
        c.output().unwrap()
    };
    let ok = cli(&[&key]);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stdout));
    assert!(!cli(&[&stranger]).status.success());
    // The service record's proofs carry the cosigned head too.
    let record = dir.path().join("record.json");
    let record_opts = |k: &str| onsite_core::profile::VerifyOptions {
        witness_policy: Some(Policy { quorum: 1, witnesses: vec![Witness::parse(k).unwrap()] }),
        ..Default::default()
    };
    let r = onsite_core::profile::verify_record_file(&record, &record_opts(&key));
    assert!(r.ok && r.text.contains("cosigned by witness.test/w1"), "{}", r.text);
    assert!(!onsite_core::profile::verify_record_file(&record, &record_opts(&stranger)).ok);
    // A log without witnesses: its proofs carry no cosigned head, which a policy refuses.
    let plain = TestServer::start();
    let pdir = tempfile::tempdir().unwrap();
    let unwitnessed = synced_bundle(&plain, pdir.path());
    assert!(onsite_core::bundle::verify_file(&unwitnessed, &Default::default()).ok);
    let r = onsite_core::bundle::verify_file(&unwitnessed, &policy(vec![key]));
    assert!(witnessed(&r).iter().any(|(ok, d)| !ok && d.contains("no witness cosigned")), "{}", r.render_text());
}

/// A split view: the provider clones its server and runs the two copies as one log, device A
/// on one and device B on the other, so each sees its own history. The witness cosigns only
/// the first branch it is shown and refuses the other; at their next sync, each device is
/// shown the other branch and stops; B's bundle, proved against the branch the witness
/// refused, fails verification under a witness policy while A's passes.
#[test]
fn a_split_view_is_refused_by_the_witness_and_caught_by_both_devices() {
    use onsite_core::evidence::log::witness::{Policy, Witness};
    use onsite_core::sync::transport::HttpTransport;
    if std::env::var("ONSITE_TEST_PG").is_ok() {
        return; // Two databases from one: the copy below is of the embedded SQLite.
    }
    let root = tempfile::tempdir().unwrap();
    let (dir1, dir2) = (root.path().join("s1"), root.path().join("s2"));
    let start = |dir: &std::path::Path| {
        let mut c = onsite_server::Config::new(dir);
        c.admin_token = Some("admin-split".into());
        onsite_server::spawn(c).unwrap()
    };
    let s = start(&dir1);
    let token = onsite_server::client::create_provider(&s.url(), "admin-split", PROVIDER, "Split").unwrap();
    let dispatcher = onsite_server::client::DispatcherClient::new(&s.url(), &token).unwrap();
    let ids = dispatcher.create_orders(&sample_orders(PROVIDER, "eng-1", "WO-S", 2)).unwrap();
    let wdir = tempfile::tempdir().unwrap();
    let witness = onsite_server::witness::spawn(&onsite_server::witness::WitnessConfig {
        data: wdir.path().to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        name: "platform.test/witness".into(),
        logs: vec![s.service.log_verifier_key(PROVIDER).unwrap()],
    })
    .unwrap();
    let wkey = witness.witness.verifier_key();
    let endpoint = onsite_server::service::WitnessEndpoint::parse(&format!("{}={wkey}", witness.url())).unwrap();
    s.service.add_witness(endpoint.clone());
    let devices: Vec<(tempfile::TempDir, Device)> = (0..2)
        .map(|_| {
            let dir = tempfile::tempdir().unwrap();
            let d = Device::open(onsite_tests::options(dir.path())).unwrap();
            let code = dispatcher.enrolment_code("eng-1").unwrap();
            d.enrol(&HttpTransport::new(&s.url()).unwrap(), &s.url(), &code).unwrap();
            d.sync(&HttpTransport::new(&s.url()).unwrap(), &fast(), None).unwrap();
            (dir, d)
        })
        .collect();
    let (a, b) = (&devices[0].1, &devices[1].1);
    for d in [a, b] {
        d.add_note(&ids[0], "shared history").unwrap();
        d.sync(&HttpTransport::new(&s.url()).unwrap(), &fast(), None).unwrap();
    }
    // The provider clones the server: two copies of one log, same keys.
    s.stop();
    let copy = std::process::Command::new("cp").arg("-a").arg(&dir1).arg(&dir2).status().unwrap();
    assert!(copy.success());
    let (s1, s2) = (start(&dir1), start(&dir2));
    s1.service.add_witness(endpoint.clone());
    s2.service.add_witness(endpoint);
    let (t1, t2) = (HttpTransport::new(&s1.url()).unwrap(), HttpTransport::new(&s2.url()).unwrap());
    // A's branch reaches the witness first and is cosigned; B's is refused.
    a.add_note(&ids[0], "seen only by server 1").unwrap();
    a.sync(&t1, &fast(), None).unwrap();
    b.add_note(&ids[1], "seen only by server 2").unwrap();
    b.sync(&t2, &fast(), None).unwrap();
    let refused = witness.witness.refused();
    assert!(!refused.is_empty(), "the witness refused the second branch");
    let policy = onsite_core::bundle::verify::Options {
        witness_policy: Some(Policy { witnesses: vec![Witness::parse(&wkey).unwrap()], quorum: 1 }),
        ..Default::default()
    };
    let a_proof = a.log_proofs().unwrap().last().cloned().unwrap();
    let b_proof = b.log_proofs().unwrap().last().cloned().unwrap();
    assert!(a_proof.witnesses(policy.witness_policy.as_ref()).is_ok(), "A's head is cosigned");
    assert!(b_proof.witnesses(policy.witness_policy.as_ref()).is_err(), "B's head is not");
    // Next sync, each device meets the other branch, and stops with the evidence kept.
    for (d, t) in [(a, &t2), (b, &t1)] {
        d.add_note(&ids[0], "crossing over").unwrap();
        let e = d.sync(t, &fast(), None).unwrap_err();
        assert!(e.to_string().contains("not consistent with what this device saw"), "{e}");
        assert!(d.log_fork().unwrap().is_some());
    }
}

/// The binary: `onsite-server witness` prints its address and key, and cosigns the log it is
/// given (the command line parses: its flags do not clash with the server's global ones).
#[test]
fn the_witness_binary_cosigns_the_log_it_is_given() {
    use std::io::BufRead;
    let s = TestServer::start();
    let wdir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(onsite_tests::onsite_server_bin())
        .args(["witness", "--data"])
        .arg(wdir.path())
        .args(["--listen", "127.0.0.1:0", "--name", "witness.test/bin", "--log-key", &s.running.service.log_verifier_key(PROVIDER).unwrap()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let url = lines.next().unwrap().unwrap().rsplit(' ').next().unwrap().to_string();
    let key = lines.next().unwrap().unwrap().strip_prefix("witness key ").unwrap().to_string();
    s.running.service.add_witness(onsite_server::service::WitnessEndpoint::parse(&format!("{url}={key}")).unwrap());
    let ids = s.dispatcher.create_orders(&sample_orders(PROVIDER, "eng-1", "WO-B", 1)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let device = Device::open(onsite_tests::options(dir.path())).unwrap();
    s.enrol(&device, "eng-1");
    device.sync(&s.transport(), &fast(), None).unwrap();
    device.add_note(&ids[0], "witnessed").unwrap();
    device.sync(&s.transport(), &fast(), None).unwrap();
    let note = s.running.service.cosigned_checkpoint(PROVIDER).unwrap();
    let policy = onsite_core::evidence::log::witness::Policy { witnesses: vec![onsite_core::evidence::log::witness::Witness::parse(&key).unwrap()], quorum: 1 };
    assert_eq!(policy.check(&onsite_core::evidence::log::note::Note::parse(&note).unwrap()).unwrap(), ["witness.test/bin"]);
    let _ = child.kill();
    let _ = child.wait();
}

/// A server whose journal answers carry no consistency proof (one from before the proof
/// travelled in the answer): the device asks `GET /v1/log/consistency` instead, accepts honest
/// growth that way, and still catches a rewritten log.
#[test]
fn without_a_proof_in_the_answer_the_device_asks_for_one() {
    use onsite_core::sync::transport::{NetError, Request, Response, Transport};
    use std::sync::atomic::{AtomicUsize, Ordering};
    struct Older<'a> {
        inner: onsite_core::sync::transport::HttpTransport,
        asked: &'a AtomicUsize,
    }
    impl Transport for Older<'_> {
        fn send(&self, request: &Request) -> Result<Response, NetError> {
            let mut r = self.inner.send(request)?;
            if request.path.starts_with("/v1/log/consistency") {
                self.asked.fetch_add(1, Ordering::SeqCst);
            }
            if request.path == "/v1/journal" && r.status == 200 {
                let deflated = r.header("content-encoding") == Some("deflate");
                let body = if deflated { onsite_core::sync::protocol::inflate(&r.body, 1 << 26).unwrap() } else { r.body.clone() };
                let mut ack: serde_json::Value = serde_json::from_slice(&body).unwrap();
                ack.as_object_mut().unwrap().remove("consistency");
                r.headers.retain(|(n, _)| !n.eq_ignore_ascii_case("content-encoding"));
                r.body = serde_json::to_vec(&ack).unwrap();
            }
            Ok(r)
        }
    }
    if std::env::var("ONSITE_TEST_PG").is_ok() {
        return; // The rewrite below is of the embedded SQLite.
    }
    let s = TestServer::start();
    let asked = AtomicUsize::new(0);
    let older = Older { inner: s.transport(), asked: &asked };
    let ids = s.dispatcher.create_orders(&sample_orders(PROVIDER, "eng-1", "WO-O", 1)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let device = Device::open(onsite_tests::options(dir.path())).unwrap();
    s.enrol(&device, "eng-1");
    device.sync(&older, &fast(), None).unwrap();
    for n in 0..3 {
        device.add_note(&ids[0], &format!("note {n}")).unwrap();
        let r = device.sync(&older, &fast(), None).unwrap();
        assert!(r.complete(), "{r:?}");
    }
    assert!(asked.load(Ordering::SeqCst) >= 2, "growth was proved through the endpoint");
    rewrite_first_leaf(&s.dir.path().join("server").join(onsite_server::DB_FILE));
    device.add_note(&ids[0], "after the rewrite").unwrap();
    let e = device.sync(&older, &fast(), None).unwrap_err();
    assert!(e.to_string().contains("not consistent with what this device saw"), "{e}");
}
