//! `onsite bench log`: the provider log's append and proof cost at 1,000 and at 1,000,000
//! leaves, through the server's SQLite storage (the journal row, the leaf, the nodes it
//! completes, the commit, then the new root) and through the tree alone in memory. The
//! ratios show how the cost grows with the log (ADR 0020).

use std::time::Instant;

use anyhow::Result;
use onsite_core::evidence::log::{self, tree, Hash};
use onsite_server::storage::{self, DeviceRow, JournalRow, SqliteStorage, Storage};

use crate::bench::{emit, percentile};

const PROVIDER: &str = "bench-log";
const SAMPLES: usize = 300;

struct Stored<'a>(&'a dyn Storage);

impl tree::Nodes for Stored<'_> {
    type Error = storage::Error;
    fn node(&mut self, level: u8, index: u64) -> storage::Result<Option<Hash>> {
        Ok(self.0.log_nodes(PROVIDER, &[(level, index)])?.pop().flatten())
    }
}

fn row(seq: u64) -> JournalRow {
    let hash = onsite_core::hash::sha256_hex(format!("entry {seq}").as_bytes());
    let leaf = log::leaf_hash(&onsite_core::hash::unhex(&hash).unwrap_or_default());
    JournalRow { seq, order_id: Some("WO-1".into()), kind: "note".into(), body: vec![b'x'; 96], hash, signature: Vec::new(), leaf }
}

fn us(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e6
}

/// Appends `n` entries in batches of 1,000 (filling the log up to a size).
fn fill(s: &dyn Storage, device: &mut DeviceRow, n: u64) -> Result<()> {
    let mut next = device.journal_seq + 1;
    let end = device.journal_seq + n;
    while next <= end {
        let last = (next + 999).min(end);
        let rows: Vec<JournalRow> = (next..=last).map(row).collect();
        s.append_journal(device, &rows, &[])?;
        device.journal_seq = last;
        device.journal_head = rows.last().map(|r| r.hash.clone());
        next = last + 1;
    }
    Ok(())
}

/// One-entry appends followed by the new root, then inclusion proofs of random leaves: the
/// median of each in µs.
fn measure(s: &dyn Storage, device: &mut DeviceRow) -> Result<(f64, f64)> {
    let mut appends = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let r = row(device.journal_seq + 1);
        let t = Instant::now();
        s.append_journal(device, std::slice::from_ref(&r), &[])?;
        let size = s.log_size(PROVIDER)?;
        std::hint::black_box(tree::root(&mut Stored(s), size).map_err(storage::log_error)?);
        appends.push(us(t));
        device.journal_seq += 1;
        device.journal_head = Some(r.hash);
    }
    let size = s.log_size(PROVIDER)?;
    let mut proofs = Vec::with_capacity(SAMPLES);
    for k in 0..SAMPLES as u64 {
        let index = k.wrapping_mul(0x9E37_79B9_7F4A_7C15) % size;
        let t = Instant::now();
        std::hint::black_box(tree::inclusion_proof(&mut Stored(s), index, size).map_err(storage::log_error)?);
        proofs.push(us(t));
    }
    Ok((percentile(&mut appends, 0.5), percentile(&mut proofs, 0.5)))
}

/// The same in memory: the tree's own cost, without SQLite.
fn measure_memory(n: u64) -> Result<(f64, f64)> {
    let mut t = tree::MemoryNodes::default();
    let leaves: Vec<Hash> = (0..n).map(|i| log::leaf_hash(&i.to_le_bytes())).collect();
    let mut size = t.push(0, &leaves)?;
    let mut appends = Vec::with_capacity(SAMPLES);
    for i in 0..SAMPLES as u64 {
        let leaf = log::leaf_hash(&(n + i).to_le_bytes());
        let start = Instant::now();
        let new = tree::append(&mut t, size, &[leaf])?;
        t.0.extend(new);
        size += 1;
        std::hint::black_box(tree::root(&mut t, size)?);
        appends.push(us(start));
    }
    let mut proofs = Vec::with_capacity(SAMPLES);
    for k in 0..SAMPLES as u64 {
        let index = k.wrapping_mul(0x9E37_79B9_7F4A_7C15) % size;
        let start = Instant::now();
        std::hint::black_box(tree::inclusion_proof(&mut t, index, size)?);
        proofs.push(us(start));
    }
    Ok((percentile(&mut appends, 0.5), percentile(&mut proofs, 0.5)))
}

pub fn log_bench() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let s = SqliteStorage::open(&dir.path().join("server.sqlite3"))?;
    s.create_provider(PROVIDER, "Bench log", "bench-token", 0)?;
    s.create_code("bench-code", PROVIDER, "eng-1", i64::MAX)?;
    s.enrol("bench-code", 1, "bench-device", b"public-key", "bench-device-token", &storage::admit_all)?;
    let mut device = s.device_by_token("bench-device-token")?.ok_or_else(|| anyhow::anyhow!("the bench device did not enrol"))?;
    fill(&s, &mut device, 1_000)?;
    let (append_1k, proof_1k) = measure(&s, &mut device)?;
    let filled = Instant::now();
    fill(&s, &mut device, 1_000_000 - 1_000 - SAMPLES as u64)?;
    emit("log.fill_1m_s", filled.elapsed().as_secs_f64(), "s");
    let (append_1m, proof_1m) = measure(&s, &mut device)?;
    emit("log.append_us_at_1k", append_1k, "us");
    emit("log.append_us_at_1m", append_1m, "us");
    emit("log.append_1m_vs_1k", append_1m / append_1k, "x");
    emit("log.proof_us_at_1k", proof_1k, "us");
    emit("log.proof_us_at_1m", proof_1m, "us");
    emit("log.proof_1m_vs_1k", proof_1m / proof_1k, "x");
    let (mem_append_1k, mem_proof_1k) = measure_memory(1_000)?;
    let (mem_append_1m, mem_proof_1m) = measure_memory(1_000_000)?;
    emit("log.tree_append_us_at_1k", mem_append_1k, "us");
    emit("log.tree_append_us_at_1m", mem_append_1m, "us");
    emit("log.tree_proof_us_at_1k", mem_proof_1k, "us");
    emit("log.tree_proof_us_at_1m", mem_proof_1m, "us");
    // The old way, for scale: reading every leaf to recompute the root at 1M.
    let t = Instant::now();
    let leaves = s.log_leaves(PROVIDER)?;
    std::hint::black_box(log::root(&leaves));
    emit("log.full_recompute_ms_at_1m", t.elapsed().as_secs_f64() * 1e3, "ms");
    Ok(())
}
