//! `onsite bench load [--devices N] [--database postgres://...] [--instances K]`: N simulated
//! devices (threads, each its own store and engineer), each with a small offline day (10
//! orders x 20 edits + 2 photos), all syncing at once against real `onsite-server` processes:
//! SQLite x1 always, and with a PostgreSQL server URL also PostgreSQL x1 and x K (default 3;
//! instances share a blob directory and keys; devices are spread over instances).
//!
//! Figures per backend: `load.<backend>.syncs_per_s`, `.p50_ms`, `.p99_ms`,
//! `.server_cpu_ms_per_order` (all instances' CPU during the sync phase over the orders
//! synced), `.db_cpu_ms_per_order` (PostgreSQL's processes, when PostgreSQL runs here) and
//! `.errors` (syncs that did not complete; must be 0).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use onsite_core::device::{PhotoSource, SyncOptions};
use onsite_core::sync::transport::HttpTransport;
use onsite_core::{Device, DeviceOptions};
use onsite_server::client::{create_provider, sample_orders, DispatcherClient};

use crate::bench::emit;
use crate::bench_sync::server_cpu_ms;

const ORDERS_PER_DEVICE: usize = 10;
const EDITS_PER_ORDER: usize = 20;
const PHOTOS_PER_DEVICE: usize = 2;
const PROVIDER: &str = "prov-load";
const ADMIN: &str = "load-admin-token";

struct Instance {
    child: Child,
    url: String,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn server_bin() -> Result<PathBuf> {
    let bin = std::env::current_exe()?.with_file_name("onsite-server");
    if !bin.exists() {
        bail!("{} is missing: cargo build --release -p onsite-server", bin.display());
    }
    Ok(bin)
}

fn start(dir: &Path, n: usize, database: Option<&str>) -> Result<Instance> {
    let mut cmd = Command::new(server_bin()?);
    cmd.arg("--data").arg(dir.join(format!("i{n}"))).args(["--listen", "127.0.0.1:0", "--admin-token", ADMIN, "--log", "error"]);
    cmd.arg("--keys").arg(dir.join("keys"));
    if let Some(url) = database {
        cmd.args(["--database", url]).arg("--blobs").arg(format!("file://{}", dir.join("blobs").display()));
    }
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn()?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().context("server stdout")?).read_line(&mut line)?;
    let Some(url) = line.trim().strip_prefix("onsite-server listening on ") else {
        let _ = child.kill();
        bail!("instance {n} did not start: {line:?}");
    };
    Ok(Instance { url: url.to_string(), child })
}

/// CPU milliseconds of every PostgreSQL process on this machine (the pooled connections live
/// through the measured phase, so their growth is the database's cost of it); 0 elsewhere.
fn postgres_cpu_ms() -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc") else { return 0.0 };
    let mut ticks = 0u64;
    for e in dir.flatten() {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else { continue };
        let Some((head, rest)) = stat.rsplit_once(')') else { continue };
        if !head.ends_with("(postgres") {
            continue;
        }
        let f: Vec<&str> = rest.split_whitespace().collect();
        ticks += [11, 12].iter().filter_map(|&i| f.get(i).and_then(|v| v.parse::<u64>().ok())).sum::<u64>();
    }
    ticks as f64 * 10.0 // USER_HZ = 100 on Linux
}

/// A photo-like JPEG (noise compresses badly, as camera output does).
fn photo(seed: u64) -> Result<Vec<u8>> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let img = image::RgbImage::from_fn(640, 480, |i, j| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let n = (x & 0x3f) as u8;
        image::Rgb([((i * 255 / 640) as u8).wrapping_add(n), ((j * 255 / 480) as u8).wrapping_add(n / 2), n.wrapping_mul(3)])
    });
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90).encode_image(&img)?;
    Ok(out)
}

fn percentile(mut v: Vec<f64>, p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(((v.len().saturating_sub(1)) as f64 * p).round() as usize).copied().unwrap_or(0.0)
}

/// One backend: start `instances` servers, prepare `devices` offline days, sync them all at once.
fn run_backend(name: &str, devices: usize, database: Option<&str>, instances: usize) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut servers = vec![start(dir.path(), 0, database)?];
    for n in 1..instances {
        servers.push(start(dir.path(), n, database)?);
    }
    let urls: Vec<String> = servers.iter().map(|s| s.url.clone()).collect();
    let token = create_provider(&urls[0], ADMIN, PROVIDER, "Load")?;
    let dispatcher = DispatcherClient::new(&urls[0], &token)?;
    // Setup (not measured): each device its engineer and orders, enrolled and pulled.
    let mut devs = Vec::new();
    for k in 0..devices {
        let eng = format!("eng-{k:04}");
        dispatcher.create_orders(&sample_orders(PROVIDER, &eng, &format!("L{k:04}-"), ORDERS_PER_DEVICE))?;
        let d = Device::open(DeviceOptions::new(dir.path().join(format!("dev{k}"))))?;
        let url = &urls[k % urls.len()];
        let t = HttpTransport::new(url)?;
        d.enrol(&t, url, &dispatcher.enrolment_code(&eng)?)?;
        let r = d.sync(&t, &SyncOptions::default(), None)?;
        if r.orders_pulled as usize != ORDERS_PER_DEVICE {
            bail!("device {k} pulled {} orders", r.orders_pulled);
        }
        devs.push(Arc::new(d));
    }
    // The offline day of each device.
    for (k, d) in devs.iter().enumerate() {
        let ids: Vec<String> = d.list(&Default::default())?.into_iter().map(|o| o.id).collect();
        for id in &ids {
            for e in 0..EDITS_PER_ORDER {
                d.add_note(id, &format!("edit {e}"))?;
            }
        }
        for (p, id) in ids.iter().enumerate().take(PHOTOS_PER_DEVICE) {
            let jpeg = photo((k * PHOTOS_PER_DEVICE + p) as u64)?;
            d.ingest_photo(id, None, PhotoSource::Bytes(&jpeg), None)?;
        }
    }
    // The measured phase: every device syncs at once.
    let cpu0: f64 = urls.iter().map(|u| server_cpu_ms(u)).sum::<Result<f64>>()?;
    let db0 = postgres_cpu_ms();
    let started = Instant::now();
    let threads: Vec<_> = devs
        .iter()
        .enumerate()
        .map(|(k, d)| {
            let (d, url) = (d.clone(), urls[k % urls.len()].clone());
            std::thread::spawn(move || -> (f64, bool) {
                let t0 = Instant::now();
                let ok = HttpTransport::new(&url).ok().and_then(|t| d.sync(&t, &SyncOptions::default(), None).ok()).is_some_and(|r| r.complete());
                (t0.elapsed().as_secs_f64() * 1000.0, ok)
            })
        })
        .collect();
    let mut lat = Vec::new();
    let mut errors = 0;
    for t in threads {
        let (ms, ok) = t.join().map_err(|_| anyhow::anyhow!("a device thread panicked"))?;
        lat.push(ms);
        errors += usize::from(!ok);
    }
    let wall = started.elapsed().as_secs_f64();
    let cpu1: f64 = urls.iter().map(|u| server_cpu_ms(u)).sum::<Result<f64>>()?;
    let db1 = postgres_cpu_ms();
    emit(&format!("load.{name}.syncs_per_s"), devices as f64 / wall, "syncs/s");
    emit(&format!("load.{name}.p50_ms"), percentile(lat.clone(), 0.5), "ms");
    emit(&format!("load.{name}.p99_ms"), percentile(lat, 0.99), "ms");
    emit(&format!("load.{name}.server_cpu_ms_per_order"), (cpu1 - cpu0) / (devices * ORDERS_PER_DEVICE) as f64, "ms");
    if database.is_some() {
        emit(&format!("load.{name}.db_cpu_ms_per_order"), (db1 - db0) / (devices * ORDERS_PER_DEVICE) as f64, "ms");
    }
    emit(&format!("load.{name}.errors"), errors as f64, "count");
    Ok(())
}

/// A fresh database on the server `admin_url` names, dropped afterwards.
struct BenchDb {
    admin: String,
    name: String,
    url: String,
}

impl BenchDb {
    fn create(admin_url: &str, tag: &str) -> Result<Self> {
        let name = format!("onsite_load_{tag}_{}", std::process::id());
        let mut c = postgres::Client::connect(admin_url, postgres::NoTls)?;
        c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))?;
        c.batch_execute(&format!("CREATE DATABASE {name}"))?;
        let base = admin_url.rsplit_once('/').map(|(b, _)| b).context("--database must end in /DATABASE")?;
        Ok(Self { admin: admin_url.to_string(), url: format!("{base}/{name}"), name })
    }
}

impl Drop for BenchDb {
    fn drop(&mut self) {
        if let Ok(mut c) = postgres::Client::connect(&self.admin, postgres::NoTls) {
            let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
        }
    }
}

pub fn load_bench(devices: usize, database: Option<&str>, instances: usize) -> Result<()> {
    let devices = devices.max(1);
    emit("load.devices", devices as f64, "count");
    emit("load.orders_per_device", ORDERS_PER_DEVICE as f64, "count");
    run_backend("sqlite", devices, None, 1)?;
    match database {
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            let one = BenchDb::create(url, "x1")?;
            run_backend("postgres_x1", devices, Some(&one.url), 1)?;
            drop(one);
            let k = instances.max(1);
            let many = BenchDb::create(url, &format!("x{k}"))?;
            run_backend(&format!("postgres_x{k}"), devices, Some(&many.url), k)?;
        }
        Some(other) => bail!("--database must be postgres://... (got {})", onsite_server::storage::redact(other)),
        None => eprintln!("note: PostgreSQL runs need --database postgres://user@host:port/db (a database used to create throwaway ones)"),
    }
    Ok(())
}
