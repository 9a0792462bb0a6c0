//! What encryption at rest costs (docs/adr/0018): the same work on an encrypted store and on
//! a plain one, interleaved in the same run (one edit, list or ingest on each in turn), so
//! the ratio does not depend on the machine or on what else it was doing.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Result};
use onsite_core::crypt::{Encryption, KeyFile};
use onsite_core::{Device, DeviceOptions, OrderFilter};

use crate::bench::{emit, orders_json, percentile};

/// A bench device in `dir`: encrypted with a key file inside the bench's temp directory, or
/// plain (the baseline).
pub fn open(dir: &Path, encrypted: bool) -> Result<Device> {
    let encryption = if encrypted { Encryption::Key(Arc::new(KeyFile::new(dir.with_extension("key")))) } else { Encryption::Plain };
    Ok(Device::open(DeviceOptions::new(dir).with_encryption(encryption))?)
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

/// `store.edit_append_p95_ms` and `store.list<n>_cold_ms`, encrypted and plain.
pub fn store_figures(n: usize) -> Result<()> {
    const EDITS: usize = 1000;
    let root = tempfile::tempdir()?;
    let dirs = [root.path().join("encrypted"), root.path().join("plain")];
    let devices = [open(&dirs[0], true)?, open(&dirs[1], false)?];
    if !devices[0].store().is_encrypted() || devices[1].store().is_encrypted() {
        bail!("the stores are not what the bench compares");
    }
    for d in &devices {
        d.import_orders_json(&orders_json(n))?;
    }
    let mut edits = [Vec::with_capacity(EDITS), Vec::with_capacity(EDITS)];
    for i in 0..EDITS {
        let id = format!("BENCH-{:05}", i / (EDITS / 10));
        for (k, d) in devices.iter().enumerate() {
            let t = Instant::now();
            d.add_note(&id, &format!("reading {i}: 12.1 V on the DC-in rail"))?;
            edits[k].push(ms(t));
        }
    }
    drop(devices);
    let mut lists = [Vec::new(), Vec::new()];
    for _ in 0..21 {
        for (k, dir) in dirs.iter().enumerate() {
            let t = Instant::now();
            let d = open(dir, k == 0)?;
            let rows = d.list(&OrderFilter::default())?;
            lists[k].push(ms(t));
            if rows.len() != n {
                bail!("listed {} of {n} orders", rows.len());
            }
        }
    }
    let [enc, plain] = edits.map(|mut v| percentile(&mut v, 0.95));
    emit("store.encrypted_edit_append_p95_ms", enc, "ms");
    emit("store.plain_edit_append_p95_ms", plain, "ms");
    emit("store.encrypted_vs_plain_edit_p95", enc / plain, "x");
    let [enc, plain] = lists.map(|mut v| percentile(&mut v, 0.5));
    emit(&format!("store.encrypted_list{n}_cold_ms"), enc, "ms");
    emit(&format!("store.plain_list{n}_cold_ms"), plain, "ms");
    emit("store.encrypted_vs_plain_list_cold", enc / plain, "x");
    Ok(())
}

/// `photo.ingest_ms`, encrypted and plain, over the same photo files.
pub fn ingest_figures(files: &[std::path::PathBuf]) -> Result<()> {
    let root = tempfile::tempdir()?;
    let devices = [open(&root.path().join("encrypted"), true)?, open(&root.path().join("plain"), false)?];
    for d in &devices {
        d.import_orders_json(&orders_json(files.len()))?;
    }
    let mut times = [Vec::new(), Vec::new()];
    for (n, p) in files.iter().enumerate() {
        for (k, d) in devices.iter().enumerate() {
            let t = Instant::now();
            d.ingest_photo(&format!("BENCH-{n:05}"), Some("repair_photo"), onsite_core::device::PhotoSource::Path(p), None)?;
            times[k].push(ms(t));
        }
    }
    let [enc, plain] = times.map(|mut v| percentile(&mut v, 0.5));
    emit("photo.encrypted_ingest_ms", enc, "ms");
    emit("photo.plain_ingest_ms", plain, "ms");
    emit("photo.encrypted_vs_plain_ingest", enc / plain, "x");
    Ok(())
}
