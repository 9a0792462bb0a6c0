//! `onsite evidence ...` and `onsite journal ...`.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Subcommand;
use onsite_core::device::PhotoSource;
use onsite_core::Device;

#[derive(Subcommand)]
pub enum EvidenceCmd {
    /// Store a photo as evidence: hash, EXIF, thumbnail, perceptual hash, reuse check, journal.
    Add {
        #[arg(long)]
        order: String,
        #[arg(long)]
        step: Option<String>,
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Photos recorded on an order.
    List {
        #[arg(long)]
        order: String,
        #[arg(long)]
        json: bool,
    },
    /// Re-hash a stored blob.
    Verify { sha256: String },
}

#[derive(Subcommand)]
pub enum JournalCmd {
    /// Verify the whole journal: chain, signatures, gaps. Exit 1 when broken.
    Verify {
        #[arg(long)]
        json: bool,
    },
    /// Print entries (all, or one order's).
    Show {
        #[arg(long)]
        order: Option<String>,
    },
}

pub fn run(device: &Device, cmd: EvidenceCmd) -> Result<()> {
    match cmd {
        EvidenceCmd::Add { order, step, file, json } => {
            let r = device.ingest_photo(&order, step.as_deref(), PhotoSource::Path(&file), None)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
                return Ok(());
            }
            println!("stored {} ({} bytes, {:?}{})", r.sha256, r.size, r.analysis.format, if r.new_blob { "" } else { ", already stored" });
            if let (Some(w), Some(h)) = (r.analysis.width, r.analysis.height) {
                println!("  {w}x{h}, thumbnail {}x{} {}", r.analysis.thumb_width, r.analysis.thumb_height, r.thumb_sha256.as_deref().unwrap_or("-"));
            }
            let e = &r.analysis.exif;
            println!(
                "  exif: captured {} gps {} camera {} {}",
                e.captured_at.as_deref().unwrap_or("-"),
                e.lat.zip(e.lon).map(|(a, b)| format!("{a:.5},{b:.5}")).unwrap_or_else(|| "-".into()),
                e.make.as_deref().unwrap_or("-"),
                e.model.as_deref().unwrap_or("")
            );
            if let Some(p) = r.analysis.phash {
                println!("  perceptual hash {p:016x}");
            }
            for p in &r.analysis.problems {
                println!("  note: {p}");
            }
            for h in &r.reused_on {
                println!(
                    "  WARNING: {} photo already used on order {} ({})",
                    if h.distance == 0 { "the same" } else { "a near-identical" },
                    h.order_id,
                    h.sha256
                );
            }
            println!("  journal entry {}", r.journal_seq);
        }
        EvidenceCmd::List { order, json } => {
            let photos = device.photos(&order)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&photos)?);
            } else {
                for p in photos {
                    println!("{}  {:<6} {:>9} B  step {:<16} journal {}", p.sha256, p.format, p.size, p.step.as_deref().unwrap_or("-"), p.journal_seq);
                }
            }
        }
        EvidenceCmd::Verify { sha256 } => {
            let size = device.verify_blob(&sha256)?;
            println!("{sha256}: {size} bytes, hash matches");
        }
    }
    Ok(())
}

pub fn journal(device: &Device, cmd: JournalCmd) -> Result<()> {
    match cmd {
        JournalCmd::Verify { json } => {
            let r = device.verify_journal()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else if r.ok() {
                let sealed = match r.unsealed_from {
                    None => "every entry sealed".to_string(),
                    Some(seq) => format!("entries from {seq} wait for the next seal"),
                };
                let countersigned =
                    if r.countersigned.is_empty() { String::new() } else { format!(", {} countersigned by the device key", r.countersigned.len()) };
                println!("journal OK: {} entries, chain and signatures verified, {sealed}{countersigned}", r.entries);
            } else {
                println!("journal BROKEN: {:?}", r.first_problem);
            }
            if !r.ok() {
                bail!("journal verification failed");
            }
        }
        JournalCmd::Show { order } => {
            for e in device.journal(order.as_deref())? {
                let b = e.body()?;
                println!(
                    "{:>5} {} {:<16} {:<20} {}",
                    e.seq,
                    onsite_core::order::Timestamp(b.at_ms).to_datetime().to_rfc3339(),
                    b.kind,
                    b.order.as_deref().unwrap_or("-"),
                    &e.hash[..16]
                );
            }
        }
    }
    Ok(())
}
