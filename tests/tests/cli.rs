//! The `onsite` binary as a user runs it.

use std::process::Command;

use onsite_tests::{onsite_bin, SAMPLE_ORDERS};

fn onsite(data: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(onsite_bin()).arg("--data").arg(data).args(args).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

#[test]
fn import_list_show_transition() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("orders.json");
    std::fs::write(&file, SAMPLE_ORDERS).unwrap();
    let data = dir.path().join("device");
    let (ok, out, err) = onsite(&data, &["orders", "import", file.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(out.contains("imported 3 order(s)"), "{out}");
    let (ok, out, _) = onsite(&data, &["orders", "list", "--json"]);
    assert!(ok);
    let rows: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 3);
    let (ok, out, err) = onsite(&data, &["orders", "transition", "WO-20261123-0002", "accept", "--lat", "39.98", "--lon", "116.31"]);
    assert!(ok, "{err}");
    assert!(out.contains("accepted"), "{out}");
    let (ok, _, err) = onsite(&data, &["orders", "transition", "WO-20261123-0002", "arrive"]);
    assert!(!ok);
    assert!(err.contains("not allowed while the order is accepted"), "{err}");
    let (ok, _, err) = onsite(&data, &["orders", "transition", "WO-20261123-0002", "cancel", "--reason", "dup"]);
    assert!(!ok && err.contains("may not be raised"), "{err}");
    let (ok, out, _) = onsite(&data, &["orders", "show", "WO-20261123-0002", "--json"]);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["order"]["status"], "accepted");
    assert_eq!(v["order"]["transitions"][0]["fix"]["lat"], 39.98);
    let (ok, out, _) = onsite(&data, &["orders", "list", "--status", "accepted"]);
    assert!(ok && out.contains("WO-20261123-0002") && !out.contains("WO-20261123-0001"), "{out}");
}

#[test]
fn bad_input_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.json");
    std::fs::write(&file, SAMPLE_ORDERS.replace("\"distance_km\": 17.9", "\"distance_km\": \"far\"")).unwrap();
    let data = dir.path().join("device");
    let (ok, _, err) = onsite(&data, &["orders", "import", file.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("[1].site.distance_km"), "{err}");
    let (ok, out, _) = onsite(&data, &["orders", "list"]);
    assert!(ok && !out.contains("WO-"), "nothing of a refused file is imported: {out}");
    let (ok, _, err) = onsite(&data, &["orders", "list", "--status", "flying"]);
    assert!(!ok && err.contains("unknown status"), "{err}");
    // A file where the data directory should be: not writable as a directory.
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, b"x").unwrap();
    let (ok, _, err) = onsite(&blocker, &["orders", "list"]);
    assert!(!ok && err.contains("cannot open"), "{err}");
}

#[test]
fn demo_runs_and_keeps_its_data_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, out, err) = onsite(dir.path(), &["demo"]);
    assert!(ok, "{err}");
    assert!(out.contains("completed"), "{out}");
    assert!(out.contains("refused as expected"), "{out}");
    assert!(dir.path().join("onsite.sqlite3").exists());
    // A second run continues with the next open order of the same store.
    let (ok, out, err) = onsite(dir.path(), &["demo"]);
    assert!(ok, "{err}");
    assert!(out.contains("working WO-20261123-0002 offline"), "{out}");
    assert!(out.contains("pending after sync: 0 journal, 0 orders, 0 photos"), "{out}");
}

#[test]
fn checklist_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("orders.json");
    std::fs::write(&file, SAMPLE_ORDERS).unwrap();
    let data = dir.path().join("device");
    assert!(onsite(&data, &["orders", "import", file.to_str().unwrap()]).0);
    let id = "WO-20261123-0001";
    let (ok, out, err) = onsite(&data, &["checklist", "start", id]);
    assert!(ok, "{err}");
    assert!(out.contains("onsite-repair v2"), "{out}");
    let (ok, out, _) = onsite(&data, &["checklist", "blockers", id]);
    assert!(ok && out.contains("dress_badge: not confirmed yet"), "{out}");
    let (ok, out, err) = onsite(&data, &["checklist", "answer", id, "dress_badge", "--confirm"]);
    assert!(ok, "{err}");
    assert!(out.contains("arrive_on_time"), "the next step opens: {out}");
    let (ok, _, err) = onsite(&data, &["checklist", "answer", id, "farewell", "--confirm"]);
    assert!(!ok && err.contains("not open yet"), "{err}");
    let (ok, _, err) = onsite(&data, &["checklist", "answer", id, "borrow_parts", "--text", "x"]);
    assert!(!ok && err.contains("takes a parts answer"), "{err}");
    let (ok, _, err) = onsite(&data, &["checklist", "answer", id, "borrow_parts", "--part", "FRU-1:SN-9:1"]);
    assert!(ok, "{err}");
    let (ok, _, err) = onsite(&data, &["checklist", "answer", id, "borrow_parts", "--no-parts"]);
    assert!(ok, "{err}");
    let (ok, out, _) = onsite(&data, &["checklist", "history", id, "borrow_parts"]);
    assert!(ok && out.lines().count() == 2, "both answers kept: {out}");
    let (ok, out, _) = onsite(&data, &["checklist", "show", id, "--json"]);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["pinned"]["id"], "onsite-repair");
    let (ok, out, err) = onsite(&data, &["templates", "list"]);
    assert!(ok && out.contains("workshop-intake"), "{out}{err}");
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "id = \"x\"\nversion = 1\ntitle = { zh = \"x\", en = \"x\" }\n[[steps]]\nid = \"a\"\nkind = \"hologram\"\nlabel = { zh = \"a\", en = \"a\" }\n",
    )
    .unwrap();
    let (ok, _, err) = onsite(&data, &["templates", "publish", bad.to_str().unwrap()]);
    assert!(!ok && err.contains("bad.toml: step `a`: field `kind`: unknown step kind `hologram`"), "{err}");
}

#[test]
fn evidence_and_journal_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("orders.json");
    std::fs::write(&file, SAMPLE_ORDERS).unwrap();
    let data = dir.path().join("device");
    assert!(onsite(&data, &["orders", "import", file.to_str().unwrap()]).0);
    let photo = dir.path().join("p.jpg");
    let mut jpeg = Vec::new();
    let rgb: Vec<u8> = (0..(320 * 240 * 3)).map(|i| (i % 251) as u8).collect();
    image::codecs::jpeg::JpegEncoder::new(&mut jpeg).encode(&rgb, 320, 240, image::ExtendedColorType::Rgb8).unwrap();
    std::fs::write(&photo, &jpeg).unwrap();
    let (ok, out, err) = onsite(&data, &["evidence", "add", "--order", "WO-20261123-0001", "--step", "repair_photo", photo.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(out.contains("stored ") && out.contains("thumbnail 320x240"), "{out}");
    let (ok, out, _) = onsite(&data, &["evidence", "add", "--order", "WO-20261123-0002", photo.to_str().unwrap()]);
    assert!(ok && out.contains("WARNING: the same photo already used on order WO-20261123-0001"), "{out}");
    let (ok, out, _) = onsite(&data, &["evidence", "list", "--order", "WO-20261123-0001"]);
    assert!(ok && out.contains("repair_photo"), "{out}");
    let empty = dir.path().join("empty.jpg");
    std::fs::write(&empty, b"").unwrap();
    let (ok, _, err) = onsite(&data, &["evidence", "add", "--order", "WO-20261123-0001", empty.to_str().unwrap()]);
    assert!(!ok && err.contains("empty"), "{err}");
    let (ok, out, _) = onsite(&data, &["journal", "verify"]);
    // Three imports and two photos; each process opened a session (device key), and the
    // imports were sealed when the next process opened, each photo at once (ADR 0017).
    assert!(ok && out.contains("journal OK: 13 entries") && out.contains("every entry sealed"), "{out}");
    let (ok, out, _) = onsite(&data, &["journal", "show"]);
    assert!(ok);
    let kinds = |k: &str| out.lines().filter(|l| l.split_whitespace().nth(2) == Some(k)).count();
    assert_eq!((kinds("import"), kinds("photo"), kinds("session_open"), kinds("seal")), (3, 2, 3, 5), "{out}");
    let (ok, out, _) = onsite(&data, &["journal", "show", "--order", "WO-20261123-0001"]);
    assert!(ok && out.contains("photo"), "{out}");
}

#[test]
fn receipts_bundles_and_verify_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("device");
    // The demo signs WO-...0001's receipt and exports its bundle.
    let (ok, out, err) = onsite(&data, &["demo"]);
    assert!(ok, "{err}");
    assert!(out.contains("VERDICT: VALID"), "{out}");
    let zip = data.join("exports/WO-20261123-0001.zip");
    let zs = zip.to_str().unwrap();
    let (ok, out, _) = onsite(&data, &["verify", zs]);
    assert!(ok, "{out}");
    assert!(out.contains("VERDICT: VALID") && out.contains("Who:") && out.contains("When:"), "{out}");
    assert!(out.contains("(UTC+08:00) = 2026-"), "local time beside UTC: {out}");
    assert!(out.contains("m from the site"), "the arrival fix's distance from the site: {out}");
    let (ok, out, _) = onsite(&data, &["verify", "--json", zs]);
    assert!(ok);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["ok"], true);
    assert_eq!(report["summary"]["order"], "WO-20261123-0001");
    // The demo synced before exporting: the bundle carries the server's inclusion proofs.
    let logged: Vec<&serde_json::Value> = report["checks"].as_array().unwrap().iter().filter(|c| c["check"] == "log.inclusion").collect();
    assert!(!logged.is_empty() && logged.iter().all(|c| c["passed"] == true), "{logged:?}");
    assert!(report["summary"]["logged"].as_str().is_some_and(|l| l.contains("onsite/prov-bj-chaoyang")), "{}", report["summary"]);
    let log_key = {
        let d = onsite_core::Device::open(onsite_core::DeviceOptions::new(&data)).unwrap();
        (d.store().meta(onsite_core::store::MetaKey::SyncLogKey).unwrap().unwrap(), onsite_core::hash::hex(&d.public_key()))
    };
    let (ok, _, _) = onsite(&data, &["verify", "--log-key", &log_key.0, zs]);
    assert!(ok, "the pinned log key holds");
    let (ok, out, _) = onsite(&data, &["verify", "--log-key", &log_key.1, zs]);
    assert!(!ok && out.contains("log.inclusion"), "a checkpoint signed by another key is refused: {out}");

    // One flipped byte anywhere in the receipt member: exit code 1 and the failure named.
    let bytes = std::fs::read(&zip).unwrap();
    let at = bytes.windows(b"\"work_done\"".len()).position(|w| w == b"\"work_done\"");
    // The receipt is deflated in the zip, so flip a byte inside its compressed data instead:
    // find the local header of receipt/r1.json and flip a byte after it.
    let name = b"receipt/r1.json";
    let hdr = bytes.windows(name.len()).position(|w| w == name).unwrap();
    let mut bad = bytes.clone();
    bad[hdr + name.len() + 40] ^= 0x01;
    assert!(at.is_none(), "receipt JSON is compressed in the archive");
    let tampered = dir.path().join("tampered.zip");
    std::fs::write(&tampered, &bad).unwrap();
    let (ok, out, _) = onsite(&data, &["verify", tampered.to_str().unwrap()]);
    assert!(!ok, "{out}");
    assert!(out.contains("VERDICT: INVALID") && out.contains("FAIL") && out.contains("receipt/r1.json"), "{out}");
    let (ok, _, _) = onsite(&data, &["verify", dir.path().join("missing.zip").to_str().unwrap()]);
    assert!(!ok);

    // Receipts on the command line: list, show (canonical JSON), customer copy, a correction.
    let (ok, out, err) = onsite(&data, &["receipt", "list", "--order", "WO-20261123-0001"]);
    assert!(ok && out.contains("r1") && out.contains("verified"), "{out}{err}");
    let (ok, out, _) = onsite(&data, &["receipt", "show", "--order", "WO-20261123-0001"]);
    assert!(ok);
    let r: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(r["kind"], "onsite.receipt");
    let html = dir.path().join("copy.html");
    let (ok, _, err) = onsite(&data, &["receipt", "html", "--order", "WO-20261123-0001", html.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(std::fs::read_to_string(&html).unwrap().contains("维修服务回执单"));
    let (ok, _, err) =
        onsite(&data, &["receipt", "sign", "--order", "WO-20261123-0001", "--diagnosis", "d", "--work-done", "w", "--signer", "王女士", "--sample-signature"]);
    assert!(!ok && err.contains("correction_reason"), "{err}");
    let (ok, out, err) = onsite(
        &data,
        &[
            "receipt",
            "sign",
            "--order",
            "WO-20261123-0001",
            "--diagnosis",
            "d",
            "--work-done",
            "w",
            "--signer",
            "王女士",
            "--sample-signature",
            "--charge",
            "上门费=80",
            "--correction",
            "fee added",
        ],
    );
    assert!(ok && out.contains("receipt r2"), "{out}{err}");
    let (ok, _, err) =
        onsite(&data, &["receipt", "sign", "--order", "WO-20261123-0002", "--diagnosis", "d", "--work-done", "w", "--signer", "x", "--refused", "too early"]);
    assert!(!ok && err.contains("awaits signature"), "{err}");

    // Export again (two revisions), thumbnails only; extract it; verify it.
    let small = dir.path().join("small.zip");
    let (ok, out, err) = onsite(&data, &["bundle", "export", "--order", "WO-20261123-0001", "--thumbnails-only", small.to_str().unwrap()]);
    assert!(ok && out.contains("2 receipts"), "{out}{err}");
    let (ok, out, _) = onsite(&data, &["verify", small.to_str().unwrap()]);
    assert!(ok && out.contains("revision 2 of 2"), "{out}");
    let x = dir.path().join("extracted");
    let (ok, out, err) = onsite(&data, &["bundle", "extract", small.to_str().unwrap(), x.to_str().unwrap()]);
    assert!(ok && out.contains("files extracted"), "{err}");
    assert!(x.join("manifest.json").exists() && x.join("receipt/r2.json").exists());
    let (ok, _, err) = onsite(&data, &["bundle", "extract", small.to_str().unwrap(), x.to_str().unwrap()]);
    assert!(!ok, "never overwrites: {err}");
}

#[test]
fn dispatch_enrol_and_sync_from_the_command_line() {
    let server = onsite_tests::net::TestServer::start();
    let url = server.url();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("device");
    let file = dir.path().join("orders.json");
    std::fs::write(&file, SAMPLE_ORDERS).unwrap();
    let dispatch = |args: &[&str]| {
        let out = Command::new(onsite_bin()).args(["dispatch", "--server", &url, "--token", server.dispatcher_token()]).args(args).output().unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stdout).trim().to_string(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (ok, ids, err) =
        dispatch(&["orders", file.to_str().unwrap(), "--provider", onsite_tests::net::PROVIDER, "--engineer", "eng-cli", "--id-prefix", "WO-CLI"]);
    assert!(ok, "{err}");
    assert_eq!(ids, "WO-CLI-0001 WO-CLI-0002 WO-CLI-0003");
    let (ok, code, err) = dispatch(&["code", "eng-cli"]);
    assert!(ok && code.len() == 14, "{code} {err}");
    let (ok, out, err) = onsite(&data, &["sync", "status"]);
    assert!(ok && out.contains("(not enrolled)"), "{out}{err}");
    let (ok, _, err) = onsite(&data, &["sync", "now"]);
    assert!(!ok && err.contains("not enrolled"), "{err}");
    let (ok, out, err) = onsite(&data, &["sync", "enrol", "--server", &url, &code]);
    assert!(ok && out.contains("engineer eng-cli"), "{out}{err}");
    let (ok, out, err) = onsite(&data, &["sync", "now"]);
    assert!(ok && out.contains("pulled 3"), "{out}{err}");
    let (ok, _, err) = onsite(&data, &["orders", "note", "WO-CLI-0002", "parts in the van"]);
    assert!(ok, "{err}");
    let (ok, out, _) = onsite(&data, &["sync", "status", "--json"]);
    assert!(ok);
    let status: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status["pending_orders"], 1);
    let (ok, out, err) = onsite(&data, &["sync", "now", "--json"]);
    assert!(ok, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["orders_pushed"], 1);
    let (ok, out, _) = dispatch(&["show", "WO-CLI-0002"]);
    assert!(ok && out.contains("parts in the van"), "{out}");
    // A reused code is refused with a clear message and a failing exit code.
    let other = dir.path().join("other");
    let (ok, _, err) = onsite(&other, &["sync", "enrol", "--server", &url, &code]);
    assert!(!ok && err.contains("already used"), "{err}");
}

#[test]
fn a_second_process_opening_the_store_leaves_an_ingest_in_progress_alone() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("device");
    let (ok, _, err) = onsite(&data, &["orders", "import", onsite_tests::samples_path().to_str().unwrap()]);
    assert!(ok, "{err}");
    // This process streams a blob slowly into the device's blob store...
    let store = onsite_core::evidence::blob::BlobStore::open(&data.join("blobs")).unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    struct Slow(std::sync::mpsc::Receiver<()>, u32);
    impl std::io::Read for Slow {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.1 == 0 {
                return Ok(0);
            }
            if self.1 == 2 {
                let _ = self.0.recv(); // wait here while the other process runs
            }
            self.1 -= 1;
            let n = buf.len().min(64 * 1024);
            buf[..n].fill(self.1 as u8);
            Ok(n)
        }
    }
    let writer = std::thread::spawn(move || store.put(Slow(rx, 4)));
    std::thread::sleep(std::time::Duration::from_millis(300));
    // ...while another process opens the same data directory, more than once.
    for _ in 0..2 {
        let (ok, _, err) = onsite(&data, &["orders", "list"]);
        assert!(ok, "{err}");
    }
    tx.send(()).unwrap();
    let stored = writer.join().unwrap().expect("the ingest survives the other process");
    assert!(stored.new && stored.size > 0);
}

#[test]
fn charges_are_exact_decimal_amounts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("device");
    let (ok, _, err) = onsite(&data, &["demo"]);
    assert!(ok, "{err}");
    let (ok, _, err) = onsite(
        &data,
        &[
            "receipt",
            "sign",
            "--order",
            "WO-20261123-0002",
            "--diagnosis",
            "d",
            "--work-done",
            "w",
            "--signer",
            "王女士",
            "--sample-signature",
            "--charge",
            "a=0.005",
        ],
    );
    assert!(!ok && err.contains("two decimals"), "sub-分 input is refused: {err}");
}
