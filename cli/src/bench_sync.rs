//! `onsite bench sync`: a real server process on loopback, one device, "an offline day"
//! (every order worked with 50 edits while offline, then one sync), the idle reconnect, and
//! the baseline: plain per-document Automerge sync of the same work, in the same run.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use automerge::sync::SyncDoc;
use automerge::AutoCommit;
use onsite_core::device::SyncOptions;
use onsite_core::order::{TimeWindow, Timestamp};
use onsite_core::sync::transport::{HttpTransport, Method, Request, Transport};
use onsite_core::{Actor, Device, DeviceOptions, Event, GpsFix};
use onsite_server::client::{create_provider, sample_orders, DispatcherClient};

use crate::bench::emit;

const EDITS_PER_ORDER: usize = 50;
const PROVIDER: &str = "prov-bench";
const ENGINEER: &str = "eng-bench";

struct ServerProcess {
    child: Child,
    url: String,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `onsite server` (this binary) on a free loopback port.
fn start_server(data: &std::path::Path, admin: &str) -> Result<ServerProcess> {
    let mut child = Command::new(std::env::current_exe()?)
        .args(["server", "--listen", "127.0.0.1:0", "--admin-token", admin, "--server-data"])
        .arg(data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().context("server stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let url = line.trim().rsplit(' ').next().unwrap_or_default().to_string();
    if !url.starts_with("http://") {
        let _ = child.kill();
        bail!("the server did not start: {line}");
    }
    Ok(ServerProcess { child, url })
}

/// CPU time of the calling thread in ms (`CLOCK_THREAD_CPUTIME_ID`).
fn thread_cpu_ms() -> f64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return 0.0;
    }
    ts.tv_sec as f64 * 1e3 + ts.tv_nsec as f64 / 1e6
}

/// The server process's CPU ms, from its `/metrics` (`bench load` reads every instance).
pub(crate) fn server_cpu_ms(url: &str) -> Result<f64> {
    server_metric(url, "onsite_process_cpu_ms")
}

/// One value of the server's `/metrics`.
fn server_metric(url: &str, name: &str) -> Result<f64> {
    let t = HttpTransport::new(url)?;
    let r = t.send(&Request::new(Method::Get, "/metrics"))?;
    let text = String::from_utf8_lossy(&r.body);
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("no {name} in /metrics"))
}

/// Plain Automerge sync of one document between two peers with fresh sync states, as a
/// per-document protocol does on reconnect. Returns (messages, bytes).
fn automerge_sync(a: &mut AutoCommit, b: &mut AutoCommit) -> Result<(u64, u64)> {
    let (mut sa, mut sb) = (automerge::sync::State::new(), automerge::sync::State::new());
    let (mut messages, mut bytes) = (0u64, 0u64);
    for _ in 0..32 {
        let ma = a.sync().generate_sync_message(&mut sa);
        let mb = b.sync().generate_sync_message(&mut sb);
        if ma.is_none() && mb.is_none() {
            return Ok((messages, bytes));
        }
        if let Some(m) = ma {
            let enc = m.encode();
            messages += 1;
            bytes += enc.len() as u64;
            b.sync().receive_sync_message(&mut sb, automerge::sync::Message::decode(&enc)?)?;
        }
        if let Some(m) = mb {
            let enc = m.encode();
            messages += 1;
            bytes += enc.len() as u64;
            a.sync().receive_sync_message(&mut sa, automerge::sync::Message::decode(&enc)?)?;
        }
    }
    bail!("automerge sync did not settle")
}

/// 50 edits on one order, as a working day produces them: five lifecycle steps, the
/// checklist (pin + answers), notes for the rest.
fn work_order(d: &Device, id: &str, fix: GpsFix) -> Result<usize> {
    let now = d.now().0;
    let window = TimeWindow { start: Timestamp(now + 3_600_000), end: Timestamp(now + 7_200_000) };
    let mut edits = 0;
    for e in [Event::Accept, Event::ContactCustomer { window }, Event::Depart, Event::Arrive, Event::StartWork] {
        d.transition(id, e, Actor::Engineer, Some(fix))?;
        edits += 1;
    }
    d.start_checklist(id, "onsite-repair")?;
    edits += 1;
    edits += d.walk_checklist_demo(id)?;
    let mut k = 0;
    while edits < EDITS_PER_ORDER {
        k += 1;
        d.add_note(id, &format!("现场记录 {k}: 客户确认 / site note {k}: customer confirmed"))?;
        edits += 1;
    }
    Ok(edits)
}

pub fn sync_bench(n: usize) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let admin = "bench-admin-token";
    let server = start_server(&dir.path().join("server"), admin)?;
    let token = create_provider(&server.url, admin, PROVIDER, "Bench provider")?;
    let dispatcher = DispatcherClient::new(&server.url, &token)?;
    let mut ids = Vec::new();
    for batch in 0..n.div_ceil(100) {
        let count = (n - batch * 100).min(100);
        ids.extend(dispatcher.create_orders(&sample_orders(PROVIDER, ENGINEER, &format!("WO-B{batch:02}"), count))?);
    }
    let device = Device::open(DeviceOptions::new(dir.path().join("device")))?;
    let t = HttpTransport::new(&server.url)?;
    device.enrol(&t, &server.url, &dispatcher.enrolment_code(ENGINEER)?)?;
    let options = SyncOptions::default();
    let first = device.sync(&t, &options, None)?;
    if first.orders_pulled as usize != n {
        bail!("initial sync pulled {} of {n} orders", first.orders_pulled);
    }
    emit("sync.initial_pull_round_trips", first.round_trips as f64, "count");
    emit("sync.initial_pull_bytes", (first.bytes_sent + first.bytes_received) as f64, "bytes");
    let before: Vec<Vec<u8>> = ids.iter().map(|id| device.document_bytes(id)).collect::<Result<_, _>>()?;

    // The offline day.
    let fix = GpsFix { lat: 39.9087, lon: 116.4602, accuracy_m: 6.0, source: onsite_core::order::LocationSource::Gps, mock: false };
    let mut edits = 0;
    for id in &ids {
        edits += work_order(&device, id, fix)?;
    }
    emit("sync.offline_day_edits", edits as f64, "count");
    push_read(&device)?;
    let cpu0 = server_cpu_ms(&server.url)?;
    let (started, device_cpu0) = (Instant::now(), thread_cpu_ms());
    let day = device.sync(&t, &options, None)?;
    let (wall, device_cpu) = (started.elapsed().as_secs_f64(), thread_cpu_ms() - device_cpu0);
    let cpu1 = server_cpu_ms(&server.url)?;
    if !day.complete() || day.orders_pushed as usize != n {
        bail!("the offline day did not sync: {day:?}");
    }
    // Spot-check convergence: the server's copy equals the device's.
    for id in ids.iter().step_by((n / 10).max(1)) {
        let on_server: serde_json::Value = dispatcher.order(id)?;
        let local = serde_json::to_value(device.get(id)?.order)?;
        if on_server != local {
            bail!("order {id} differs between device and server after sync");
        }
    }
    emit("sync.offline_day_round_trips", day.round_trips as f64, "count");
    emit("sync.offline_day_bytes", day.orders_bytes as f64, "bytes");
    emit("sync.offline_day_journal_bytes", day.journal_bytes as f64, "bytes");
    emit("sync.offline_day_total_bytes", (day.bytes_sent + day.bytes_received) as f64, "bytes");
    emit("sync.offline_day_wall_s", wall, "s");
    emit("sync.server_cpu_ms_per_order", (cpu1 - cpu0) / n as f64, "ms");
    // The device's own work in that sync (the syncing thread): reading what to send, building
    // the requests, applying the answers.
    emit("sync.device_cpu_ms_per_order", device_cpu / n as f64, "ms");
    emit("sync.server_resident_mb", server_metric(&server.url, "onsite_process_resident_bytes")? / 1e6, "MB");

    // Baseline: the same changes merged with plain Automerge in this process (load the
    // server's document as it was, apply the device's new changes, save the increment), on
    // one thread; the server does that plus authorization, shape checks, journal
    // verification, storage and the feed.
    let raw_per_order = raw_merge_ms(&device, &ids, &before)? / n as f64;
    emit("sync.raw_merge_cpu_ms_per_order", raw_per_order, "ms");
    emit("sync.server_cpu_vs_raw_merge", (cpu1 - cpu0) / n as f64 / raw_per_order.max(1e-9), "x");

    // Baseline: per-document Automerge sync of the same work (fresh sync states).
    let (mut messages, mut bytes) = (0u64, 0u64);
    for (id, old) in ids.iter().zip(&before) {
        let mut dev = AutoCommit::load(&device.document_bytes(id)?)?;
        let mut srv = AutoCommit::load(old)?;
        let (m, b) = automerge_sync(&mut dev, &mut srv)?;
        messages += m;
        bytes += b;
    }
    emit("sync.automerge_per_doc_bytes", bytes as f64, "bytes");
    emit("sync.automerge_per_doc_messages", messages as f64, "count");

    // Idle reconnect: nothing changed anywhere.
    let idle = device.sync(&t, &options, None)?;
    emit("sync.idle_round_trips", idle.round_trips as f64, "count");
    emit("sync.idle_bytes", (idle.bytes_sent + idle.bytes_received) as f64, "bytes");

    // The usual sync while online: one more note on each worked order. The server's work for
    // one change to a large document, against the raw merge of that change.
    let worked: Vec<Vec<u8>> = ids.iter().map(|id| device.document_bytes(id)).collect::<Result<_, _>>()?;
    for id in &ids {
        device.add_note(id, "再次确认 / checked again")?;
    }
    let cpu0 = server_cpu_ms(&server.url)?;
    let small = device.sync(&t, &options, None)?;
    let cpu1 = server_cpu_ms(&server.url)?;
    if !small.complete() || small.orders_pushed as usize != n {
        bail!("the small pushes did not sync: {small:?}");
    }
    let small_raw = raw_merge_ms(&device, &ids, &worked)? / n as f64;
    emit("sync.small_push_server_cpu_ms_per_order", (cpu1 - cpu0) / n as f64, "ms");
    emit("sync.small_push_raw_merge_cpu_ms_per_order", small_raw, "ms");
    emit("sync.small_push_server_cpu_vs_raw_merge", (cpu1 - cpu0) / n as f64 / small_raw.max(1e-9), "x");
    drop(server);
    Ok(())
}

/// What reading the offline day's pushes costs the device: the stored chunks after each
/// order's push mark (`Store::outgoing`, what a sync sends) against computing them from the
/// loaded document (`changes_since`, the way before the mark), same orders, same run, each
/// timed on its second pass (warm page cache for both).
fn push_read(device: &Device) -> Result<()> {
    let store = device.store();
    let pending = store.pending_docs()?;
    let (mut stored_ms, mut document_ms) = (0.0, 0.0);
    for _ in 0..2 {
        let t0 = thread_cpu_ms();
        for p in &pending {
            std::hint::black_box(store.changes_since(&p.id, &p.synced_heads)?);
        }
        let t1 = thread_cpu_ms();
        for p in &pending {
            std::hint::black_box(store.outgoing(&p.id)?);
        }
        (document_ms, stored_ms) = (t1 - t0, thread_cpu_ms() - t1);
    }
    let n = pending.len().max(1) as f64;
    emit("sync.push_read_ms_per_order", stored_ms / n, "ms");
    emit("sync.push_read_via_document_ms_per_order", document_ms / n, "ms");
    emit("sync.push_read_speedup", document_ms / stored_ms.max(1e-9), "x");
    Ok(())
}

/// CPU ms of merging, with plain Automerge on this thread, each order's changes since
/// `before` (its document as the server had it) into that document: load, apply, save the
/// increment.
fn raw_merge_ms(device: &Device, ids: &[String], before: &[Vec<u8>]) -> Result<f64> {
    let mut raw_ms = 0.0;
    for (id, old) in ids.iter().zip(before) {
        let after = device.document_bytes(id)?;
        let heads = AutoCommit::load(old)?.get_heads();
        let changes = AutoCommit::load(&after)?.save_after(&heads);
        let t0 = thread_cpu_ms();
        let mut doc = AutoCommit::load(old)?;
        doc.load_incremental(&changes)?;
        std::hint::black_box(doc.save_after(&heads));
        raw_ms += thread_cpu_ms() - t0;
    }
    Ok(raw_ms)
}
