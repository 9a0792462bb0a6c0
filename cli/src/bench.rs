//! `onsite bench <suite>`: figures as `bench <suite>.<figure> <value> <unit>`, each with its
//! baseline measured in the same run. Build with --release.

use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Result};
use automerge::transaction::{CommitOptions, Transactable};
use automerge::{AutoCommit, ObjType, ReadDoc, ROOT};
use onsite_core::order::{LocationSource, TimeWindow, Timestamp};
use onsite_core::{Actor, Device, Event, GpsFix, OrderFilter};

pub fn run(suite: &str, orders: usize, file: Option<&Path>) -> Result<()> {
    if cfg!(debug_assertions) {
        eprintln!("warning: debug build; figures are only meaningful with --release");
    }
    match suite {
        "store" => store(orders.max(10)),
        "sop" => sop_bench(),
        "photo" => photo_bench(),
        "receipt" => receipt_bench(orders.clamp(5, 40)),
        "sync" => crate::bench_sync::sync_bench(orders.max(10)),
        "rest" => crate::bench_rest::store_figures(orders),
        "log" => crate::bench_log::log_bench(),
        "ingest-rss" => ingest_rss(file.ok_or_else(|| anyhow::anyhow!("--file needed"))?),
        other => bail!("unknown bench suite `{other}` (known: store, sop, photo, receipt, sync, load, rest, log)"),
    }
}

pub(crate) fn emit(name: &str, value: f64, unit: &str) {
    println!("bench {name} {value:.4} {unit}");
}

pub(crate) fn percentile(samples: &mut [f64], p: f64) -> f64 {
    samples.sort_by(|a, b| a.total_cmp(b));
    let idx = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[idx.min(samples.len() - 1)]
}

fn ms_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

/// `n` dispatcher orders as one JSON array, ids `BENCH-00000`...
pub fn orders_json(n: usize) -> String {
    let template: serde_json::Value = serde_json::from_str(crate::demo::SAMPLE_ORDERS).unwrap_or_default();
    let samples = template.as_array().cloned().unwrap_or_default();
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let mut o = samples[i % samples.len().max(1)].clone();
        o["id"] = serde_json::Value::String(format!("BENCH-{i:05}"));
        o["equipment"]["serial"] = serde_json::Value::String(format!("SN{i:08}"));
        out.push(o);
    }
    serde_json::Value::Array(out).to_string()
}

/// The bench's device: encrypted, as every device store is (its key file stays inside the
/// bench's temp directory).
fn open(dir: &Path) -> Result<Device> {
    crate::bench_rest::open(&dir.join("store"), true)
}

fn store(n: usize) -> Result<()> {
    const EDITS: usize = 2000;
    const ORDERS_EDITED: usize = 10;
    let dir = tempfile::tempdir()?;
    let device = open(dir.path())?;
    device.import_orders_json(&orders_json(n))?;

    // Edits as an engineer makes them: on the order at hand, one after another.
    let mut ours = Vec::with_capacity(EDITS);
    for i in 0..EDITS {
        let id = format!("BENCH-{:05}", i / (EDITS / ORDERS_EDITED));
        let t = Instant::now();
        device.add_note(&id, &format!("reading {i}: 12.1 V on the DC-in rail"))?;
        ours.push(ms_since(t));
    }
    // The first edit of an order not touched for a while (document loaded from SQLite).
    let mut cold = Vec::new();
    for i in 0..200 {
        let id = format!("BENCH-{:05}", (ORDERS_EDITED + i) % n);
        let t = Instant::now();
        device.add_note(&id, "first edit after a while")?;
        cold.push(ms_since(t));
    }

    // Baseline: the same edit with plain automerge + rusqlite, same pragmas, no model; once
    // on the same SQLCipher settings and key as the device's store (the like-for-like
    // figure), once on an unencrypted file (what encryption adds is its own figure:
    // `store.encrypted_vs_plain_edit_p95`, ADR 0018).
    let key = onsite_core::crypt::KeySource::store_key(&onsite_core::crypt::KeyFile::new(dir.path().join("store").with_extension("key")))?;
    let doc = device.document_bytes("BENCH-00000")?;
    let raw = raw_edits(&dir.path().join("raw-encrypted.sqlite3"), Some(&key), EDITS, &doc)?;
    let raw_plain = raw_edits(&dir.path().join("raw-plain.sqlite3"), None, EDITS, &doc)?;
    emit("store.edit_append_p95_ms", percentile(&mut ours, 0.95), "ms");
    emit("store.edit_append_p50_ms", percentile(&mut ours, 0.50), "ms");
    emit("store.raw_edit_append_p95_ms", percentile(&mut raw.clone(), 0.95), "ms");
    emit("store.edit_vs_raw_p95_ratio", percentile(&mut ours, 0.95) / percentile(&mut raw.clone(), 0.95), "x");
    emit("store.raw_plain_edit_append_p95_ms", percentile(&mut raw_plain.clone(), 0.95), "ms");
    emit("store.edit_vs_raw_plain_p95_ratio", percentile(&mut ours, 0.95) / percentile(&mut raw_plain.clone(), 0.95), "x");
    emit("store.edit_cold_p95_ms", percentile(&mut cold, 0.95), "ms");
    // What the signed journal adds to every edit: one ES256 signature over a ~400-byte body.
    let signer = onsite_core::evidence::SoftwareSigner::generate()?;
    let body = vec![b'x'; 400];
    let mut sign = Vec::with_capacity(500);
    for _ in 0..500 {
        let t = Instant::now();
        std::hint::black_box(onsite_core::evidence::Signer::sign(&signer, &body)?);
        sign.push(t.elapsed().as_secs_f64() * 1e6);
    }
    emit("store.journal_sign_p50_us", percentile(&mut sign, 0.5), "us");
    drop(device);

    // Cold-ish opens: a new Device (new connections, empty caches) per sample.
    let mut list = Vec::new();
    let mut one = Vec::new();
    for _ in 0..41 {
        let t = Instant::now();
        let d = open(dir.path())?;
        let rows = d.list(&OrderFilter::default())?;
        list.push(ms_since(t));
        if rows.len() != n {
            bail!("listed {} of {n} orders", rows.len());
        }
        drop(d);
        let t = Instant::now();
        let d = open(dir.path())?;
        let v = d.get("BENCH-00042")?;
        one.push(ms_since(t));
        if v.order.id != "BENCH-00042" {
            bail!("opened the wrong order");
        }
    }
    emit(&format!("store.list{n}_cold_ms"), percentile(&mut list, 0.5), "ms");
    emit("store.open_one_ms", percentile(&mut one, 0.5), "ms");

    // Footprint after a typical visit: full lifecycle with GPS fixes and a few notes.
    let visit_dir = tempfile::tempdir()?;
    let d = open(visit_dir.path())?;
    d.import_orders_json(&orders_json(n))?;
    let fix = GpsFix { lat: 39.90871, lon: 116.46023, accuracy_m: 6.5, source: LocationSource::Gps, mock: false };
    let now = d.now().0;
    let window = TimeWindow { start: Timestamp(now + 3_600_000), end: Timestamp(now + 10_800_000) };
    for i in 0..n {
        let id = format!("BENCH-{i:05}");
        for e in [Event::Accept, Event::ContactCustomer { window }, Event::Depart, Event::Arrive, Event::StartWork] {
            d.transition(&id, e, Actor::Engineer, Some(fix))?;
        }
        d.start_checklist(&id, "onsite-repair")?;
        d.walk_checklist_demo(&id)?;
        for k in 0..3 {
            d.add_note(&id, &format!("note {k}: checked, photographed, customer informed"))?;
        }
        d.transition(&id, Event::RequestSignature, Actor::Engineer, Some(fix))?;
        d.sign_receipt(&id, &crate::demo::receipt_input("王女士"))?;
        d.transition(&id, Event::Complete, Actor::Engineer, Some(fix))?;
    }
    let (f, _) = d.footprint()?;
    emit("store.bytes_per_order", f.bytes as f64 / f.orders as f64, "bytes");
    let plain = serde_json::to_vec(&d.get("BENCH-00000")?.order)?.len();
    emit("store.json_bytes_per_order_baseline", plain as f64, "bytes");
    crate::bench_visit::visit_figures()?;
    crate::bench_rest::store_figures(n)
}

/// The baseline edit: put a note map into a list, commit, save the increment, append it to
/// SQLite in a transaction. No typing, no summary, no cache management. `key`: the file is
/// SQLCipher with the store's settings.
fn raw_edits(db: &Path, key: Option<&onsite_core::crypt::StoreKey>, edits: usize, doc_bytes: &[u8]) -> Result<Vec<f64>> {
    let conn = onsite_core::store::cipher::open_connection(db, key)?;
    conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
    conn.execute_batch(
        "PRAGMA synchronous = NORMAL;
         CREATE TABLE changes (doc TEXT NOT NULL, seq INTEGER NOT NULL, bytes BLOB NOT NULL, PRIMARY KEY (doc, seq)) WITHOUT ROWID;",
    )?;
    let mut doc = AutoCommit::load(doc_bytes)?;
    let notes = match doc.get(ROOT, "notes")? {
        Some((_, id)) => id,
        None => doc.put_object(ROOT, "notes", ObjType::List)?,
    };
    let mut samples = Vec::with_capacity(edits);
    for i in 0..edits {
        let t = Instant::now();
        let heads = doc.get_heads();
        let len = doc.length(&notes);
        let note = doc.insert_object(&notes, len, ObjType::Map)?;
        doc.put(&note, "at", 1_795_000_000_000i64 + i as i64)?;
        doc.put(&note, "device", "0123456789abcdef0123456789abcdef")?;
        doc.put(&note, "text", format!("reading {i}: 12.1 V on the DC-in rail"))?;
        doc.commit_with(CommitOptions::default().with_time(1_795_000_000));
        let chunk = doc.save_after(&heads);
        let tx = conn.unchecked_transaction()?;
        tx.execute("INSERT INTO changes (doc, seq, bytes) VALUES ('d', ?1, ?2)", rusqlite::params![i as i64, chunk])?;
        tx.commit()?;
        samples.push(ms_since(t));
    }
    Ok(samples)
}

/// A 60-step template: a chain of mixed kinds with a choice that switches a branch on and
/// off, so evaluation exercises dependencies and conditions.
pub fn sixty_step_template() -> String {
    let mut t = String::from("id = \"bench-60\"\nversion = 1\ntitle = { zh = \"六十步\", en = \"Sixty steps\" }\n");
    for i in 0..60 {
        let label = format!("label = {{ zh = \"步骤 {i}\", en = \"Step {i}\" }}\n");
        let after = if i == 0 { String::new() } else { format!("after = [\"s{}\"]\n", i - 1) };
        let (kind, extra) = match i % 6 {
            0 => ("confirmation", String::new()),
            1 => ("measurement", "unit = \"V\"\nmin = 11.4\nmax = 12.6\n".to_string()),
            2 => {
                ("choice", "options = [{ id = \"a\", label = { zh = \"甲\", en = \"A\" } }, { id = \"b\", label = { zh = \"乙\", en = \"B\" } }]\n".to_string())
            }
            3 => ("note", format!("when = {{ step = \"s{}\", is = \"a\" }}\n", i - 1)),
            4 => ("photo", "min = 1\nmax = 3\n".to_string()),
            _ => ("confirmation", format!("when = {{ any = [{{ step = \"s{}\", is = \"a\" }}, {{ field = \"priority\", is = \"urgent\" }}] }}\n", i - 3)),
        };
        t.push_str(&format!("\n[[steps]]\nid = \"s{i}\"\nkind = \"{kind}\"\n{label}{after}{extra}"));
    }
    t
}

fn sop_bench() -> Result<()> {
    use onsite_core::sop;
    let dir = tempfile::tempdir()?;
    let device = open(dir.path())?;
    device.import_orders_json(&orders_json(1))?;
    let template = device.publish_template("bench-60.toml", &sixty_step_template())?;
    device.start_checklist("BENCH-00000", "bench-60")?;
    // Answer all but the last step, then time evaluation after one more answer.
    let mut answer_us = Vec::new();
    loop {
        let view = device.checklist("BENCH-00000")?;
        let open = view.evaluation.open();
        let Some(step) = open.first().and_then(|s| view.template.step(s)).cloned() else { break };
        if step.id == "s59" {
            break;
        }
        let order = device.get("BENCH-00000")?.order;
        let answer = sop::demo::answer_for(&view.template, &view.evaluation, &order, &step, device.now());
        let t = Instant::now();
        device.answer("BENCH-00000", &step.id, answer)?;
        answer_us.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let mut order = device.get("BENCH-00000")?.order;
    let answered = order.checklist.answers.len();
    let last = template.step("s59").cloned().ok_or_else(|| anyhow::anyhow!("no s59"))?;
    let eval = sop::evaluate(&template, &order, &order.checklist);
    let answer = sop::demo::answer_for(&template, &eval, &order, &last, device.now());
    order.checklist.answers.push(sop::AnswerRecord { step: "s59".into(), value: answer, at: device.now(), monotonic_ms: 0, device: device.device_id().into() });
    const RUNS: usize = 2000;
    let mut samples = Vec::with_capacity(RUNS);
    let mut blockers = 0;
    for _ in 0..RUNS {
        let t = Instant::now();
        let e = sop::evaluate(&template, &order, &order.checklist);
        samples.push(t.elapsed().as_secs_f64() * 1e6);
        blockers += e.blockers.len();
    }
    if blockers != 0 {
        bail!("the bench checklist should be complete after the last answer");
    }
    // The real seed-003 template for comparison.
    let repair = device.templates().into_iter().find(|t| t.id == "onsite-repair").ok_or_else(|| anyhow::anyhow!("no template"))?;
    let mut real = Vec::with_capacity(RUNS);
    let d2 = tempfile::tempdir()?;
    let dev2 = open(d2.path())?;
    dev2.import_orders_json(&orders_json(1))?;
    dev2.start_checklist("BENCH-00000", "onsite-repair")?;
    dev2.walk_checklist_demo("BENCH-00000")?;
    let o2 = dev2.get("BENCH-00000")?.order;
    for _ in 0..RUNS {
        let t = Instant::now();
        let e = sop::evaluate(&repair, &o2, &o2.checklist);
        real.push(t.elapsed().as_secs_f64() * 1e6);
        blockers += e.blockers.len();
    }
    if blockers != 0 {
        bail!("the walked onsite-repair checklist should have no blockers");
    }
    emit("sop.gate_eval_us", percentile(&mut samples, 0.5), "us");
    emit("sop.gate_eval_p95_us", percentile(&mut samples, 0.95), "us");
    emit("sop.gate_eval_onsite_repair_us", percentile(&mut real, 0.5), "us");
    emit("sop.answer_p95_us", percentile(&mut answer_us, 0.95), "us");
    emit("sop.steps_answered", answered as f64, "count");
    Ok(())
}

/// A realistic 12 MP camera JPEG: smooth shapes plus sensor-like noise (so it compresses
/// like a photo, ~4-6 MB), with an EXIF block (orientation 6, make, model).
pub fn test_photo(w: u32, h: u32, seed: u32) -> Vec<u8> {
    let mut rgb = vec![0u8; (w * h * 3) as usize];
    let mut x32 = 0x9E37_79B9u32 ^ seed;
    for y in 0..h {
        for x in 0..w {
            x32 ^= x32 << 13;
            x32 ^= x32 >> 17;
            x32 ^= x32 << 5;
            let noise = (x32 & 31) as i32 - 16;
            let i = ((y * w + x) * 3) as usize;
            let disc = ((x as i64 - w as i64 / 3).pow(2) + (y as i64 - h as i64 / 2).pow(2)) < (h as i64 / 4).pow(2);
            let base = [(x * 200 / w) as i32 + 30, if disc { 200 } else { (y * 180 / h) as i32 + 40 }, ((x + y) % 256) as i32 / 2 + 60];
            for c in 0..3 {
                rgb[i + c] = (base[c] + noise).clamp(0, 255) as u8;
            }
        }
    }
    let mut out = Vec::new();
    let _ = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90).encode(&rgb, w, h, image::ExtendedColorType::Rgb8);
    // APP1 EXIF: little-endian TIFF with Make, Model, Orientation = 6.
    let mut t = b"II*\0\x08\0\0\0".to_vec();
    let entries: [(u16, u16, u32, u32); 3] = [(0x010F, 2, 6, 50), (0x0110, 2, 6, 56), (0x0112, 3, 1, 6)];
    t.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    for (tag, ty, count, value) in entries {
        t.extend_from_slice(&tag.to_le_bytes());
        t.extend_from_slice(&ty.to_le_bytes());
        t.extend_from_slice(&count.to_le_bytes());
        t.extend_from_slice(&value.to_le_bytes());
    }
    t.extend_from_slice(&0u32.to_le_bytes());
    t.extend_from_slice(b"ONSIT\0PHONE\0");
    let mut seg = vec![0xFF, 0xE1];
    seg.extend_from_slice(&((t.len() + 8) as u16).to_be_bytes());
    seg.extend_from_slice(b"Exif\0\0");
    seg.extend_from_slice(&t);
    out.splice(2..2, seg);
    out
}

/// A copy with different bytes (a COM segment) but the same picture.
pub(crate) fn variant(jpeg: &[u8], n: u32) -> Vec<u8> {
    let text = format!("variant {n}");
    let mut seg = vec![0xFF, 0xFE];
    seg.extend_from_slice(&((text.len() + 2) as u16).to_be_bytes());
    seg.extend_from_slice(text.as_bytes());
    let mut out = jpeg.to_vec();
    out.splice(2..2, seg);
    out
}

/// Block size of the SHA-256 comparison: the blob store streams photos through a 256 KiB
/// buffer, and `openssl speed` hashes one resident block over and over.
const SHA_BLOCK: usize = 256 * 1024;

fn openssl_sha256_mbps() -> Option<f64> {
    let bytes = SHA_BLOCK.to_string();
    let out = std::process::Command::new("openssl").args(["speed", "-evp", "sha256", "-bytes", &bytes, "-seconds", "2"]).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.starts_with("sha256"))?;
    let k: f64 = line.split_whitespace().last()?.trim_end_matches('k').parse().ok()?;
    Some(k * 1000.0 / 1e6)
}

fn vm_hwm_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)).and_then(|k| k.parse::<f64>().ok()))
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

/// Child process for `photo.peak_rss_mb`: ingests one photo and prints its peak RSS.
pub fn ingest_rss(path: &Path) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let device = open(dir.path())?;
    device.import_orders_json(&orders_json(1))?;
    device.ingest_photo("BENCH-00000", None, onsite_core::device::PhotoSource::Path(path), None)?;
    println!("{:.2}", vm_hwm_mb());
    Ok(())
}

pub fn photo_bench() -> Result<()> {
    use sha2::Digest;
    let dir = tempfile::tempdir()?;
    let photo = test_photo(4000, 3000, 1);
    let path = dir.path().join("photo.jpg");
    std::fs::write(&path, &photo)?;
    emit("photo.test_photo_bytes", photo.len() as f64, "bytes");

    // SHA-256 throughput as the blob store hashes (256 MiB streamed through a resident
    // 256 KiB block, the way `openssl speed -bytes 262144` measures): ours (the core's hash,
    // ring), the sha2 crate, openssl; same machine, same run. Also a cold 64 MiB buffer
    // hashed once (memory-bound, for reference).
    let block = vec![0x5Au8; SHA_BLOCK];
    let stream = |f: &dyn Fn(&[u8], usize) -> [u8; 32]| {
        let rounds = (256 << 20) / SHA_BLOCK;
        let mut best = f64::MAX;
        for _ in 0..3 {
            let t = Instant::now();
            std::hint::black_box(f(&block, rounds));
            best = best.min(t.elapsed().as_secs_f64());
        }
        (rounds * SHA_BLOCK) as f64 / best / 1e6
    };
    let ours = stream(&|b, n| {
        let mut h = onsite_core::hash::Sha256::new();
        for _ in 0..n {
            h.update(std::hint::black_box(b));
        }
        h.finalize()
    });
    let sha2_crate = stream(&|b, n| {
        let mut h = sha2::Sha256::new();
        for _ in 0..n {
            h.update(std::hint::black_box(b));
        }
        h.finalize().into()
    });
    emit("photo.sha256_mbps", ours, "MB/s");
    emit("photo.sha2_crate_mbps", sha2_crate, "MB/s");
    let buf = vec![0x5Au8; 64 * 1024 * 1024];
    let t = Instant::now();
    std::hint::black_box(onsite_core::hash::Sha256::digest(&buf));
    emit("photo.sha256_cold_64mib_mbps", buf.len() as f64 / t.elapsed().as_secs_f64() / 1e6, "MB/s");
    match openssl_sha256_mbps() {
        Some(o) => {
            emit("photo.openssl_sha256_mbps", o, "MB/s");
            emit("photo.sha256_vs_openssl", ours / o, "x");
        }
        None => eprintln!("openssl not found: photo.openssl_sha256_mbps skipped"),
    }
    drop(buf);

    // Thumbnail: our fast path vs `image` decode + thumbnail(), same file.
    let limits = onsite_core::evidence::photo::Limits::default();
    let mut fast = Vec::new();
    let mut peak_fast = 0usize;
    for _ in 0..10 {
        let base = crate::alloc::reset_peak();
        let t = Instant::now();
        let a = onsite_core::evidence::photo::analyze(&path, &limits)?;
        fast.push(ms_since(t));
        peak_fast = peak_fast.max(crate::alloc::peak() - base);
        if a.thumbnail.is_none() {
            bail!("fast path produced no thumbnail: {:?}", a.problems);
        }
    }
    let mut slow = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let img = image::load_from_memory(&photo)?;
        let thumb = img.thumbnail(320, 320);
        std::hint::black_box(thumb);
        slow.push(ms_since(t));
    }
    let (f, s) = (percentile(&mut fast, 0.5), percentile(&mut slow, 0.5));
    emit("photo.thumb_ms", f, "ms");
    emit("photo.image_thumb_ms", s, "ms");
    emit("photo.thumb_speedup", s / f, "x");
    emit("photo.thumb_peak_alloc_mb", peak_fast as f64 / 1048576.0, "MB");

    // Whole ingest (hash + store + analyse + thumbnail blob + reuse check + journal).
    let device = open(dir.path().join("device").as_path())?;
    device.import_orders_json(&orders_json(30))?;
    let variants: Vec<Vec<u8>> = (0..30).map(|n| variant(&photo, n)).collect();
    let files: Vec<std::path::PathBuf> = variants
        .iter()
        .enumerate()
        .map(|(n, v)| {
            let p = dir.path().join(format!("v{n}.jpg"));
            std::fs::write(&p, v).map(|_| p)
        })
        .collect::<Result<_, _>>()?;
    let mut one = Vec::new();
    let mut peak_ingest = 0usize;
    let t30 = Instant::now();
    for (n, p) in files.iter().enumerate() {
        let base = crate::alloc::reset_peak();
        let t = Instant::now();
        let r = device.ingest_photo(&format!("BENCH-{n:05}"), Some("repair_photo"), onsite_core::device::PhotoSource::Path(p), None)?;
        one.push(ms_since(t));
        peak_ingest = peak_ingest.max(crate::alloc::peak() - base);
        if n > 0 && r.reused_on.is_empty() {
            bail!("the same picture on another order was not flagged");
        }
    }
    let total = t30.elapsed().as_secs_f64();
    emit("photo.ingest_ms", percentile(&mut one, 0.5), "ms");
    crate::bench_rest::ingest_figures(&files[..20])?;
    emit("photo.ingest30_s", total, "s");
    emit("photo.ingest_peak_alloc_mb", peak_ingest as f64 / 1048576.0, "MB");
    // Peak RSS of a fresh process that ingests one photo (includes the binary itself).
    let exe = std::env::current_exe()?;
    let out = std::process::Command::new(exe).args(["bench", "ingest-rss", "--file"]).arg(&path).output()?;
    match String::from_utf8_lossy(&out.stdout).trim().parse::<f64>() {
        Ok(mb) => emit("photo.peak_rss_mb", mb, "MB"),
        Err(_) => eprintln!("ingest-rss child failed: {}", String::from_utf8_lossy(&out.stderr)),
    }
    Ok(())
}

/// Receipts and bundles: signing (build + canonical JSON + ES256 + journal, one transaction),
/// export and offline verification of a bundle with 4 real 640x480 photos, against the
/// baseline of merely reading and hashing the same bundle file.
fn receipt_bench(n: usize) -> Result<()> {
    use onsite_core::device::ExportOptions;
    let dir = tempfile::tempdir()?;
    let d = open(dir.path())?;
    d.import_orders_json(&orders_json(n))?;
    let fix = GpsFix { lat: 39.90871, lon: 116.46023, accuracy_m: 6.5, source: LocationSource::Gps, mock: false };
    let now = d.now().0;
    let window = TimeWindow { start: Timestamp(now + 3_600_000), end: Timestamp(now + 10_800_000) };
    let (mut sign, mut export, mut verify, mut hash) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut receipt_bytes, mut bundle_bytes) = (0usize, 0u64);
    for i in 0..n {
        let id = format!("BENCH-{i:05}");
        for e in [Event::Accept, Event::ContactCustomer { window }, Event::Depart, Event::Arrive, Event::StartWork] {
            d.transition(&id, e, Actor::Engineer, Some(fix))?;
        }
        d.start_checklist(&id, "onsite-repair")?;
        crate::demo::walk_with_photos(&d, &id, Some(fix))?;
        d.transition(&id, Event::RequestSignature, Actor::Engineer, Some(fix))?;
        let t = Instant::now();
        let r = d.sign_receipt(&id, &crate::demo::receipt_input("王女士"))?;
        sign.push(ms_since(t));
        receipt_bytes = r.canonical.len();
        let out = dir.path().join(format!("{id}.zip"));
        let t = Instant::now();
        let s = d.export_bundle(&id, &out, ExportOptions::default())?;
        export.push(ms_since(t));
        bundle_bytes = s.bytes;
        let t = Instant::now();
        let report = onsite_core::bundle::verify_file(&out, &Default::default());
        verify.push(ms_since(t));
        if !report.ok {
            bail!("bundle of {id} does not verify:\n{}", report.render_text());
        }
        let t = Instant::now();
        let bytes = std::fs::read(&out)?;
        std::hint::black_box(onsite_core::hash::sha256_hex(&bytes));
        hash.push(ms_since(t));
    }
    emit("receipt.sign_p50_ms", percentile(&mut sign, 0.5), "ms");
    emit("receipt.sign_p95_ms", percentile(&mut sign, 0.95), "ms");
    emit("receipt.canonical_bytes", receipt_bytes as f64, "bytes");
    emit("receipt.bundle_export_p50_ms", percentile(&mut export, 0.5), "ms");
    emit("receipt.bundle_bytes", bundle_bytes as f64, "bytes");
    emit("receipt.verify_p50_ms", percentile(&mut verify, 0.5), "ms");
    emit("receipt.read_and_hash_bundle_p50_ms_baseline", percentile(&mut hash, 0.5), "ms");
    Ok(())
}
