//! `onsite receipt ...`, `onsite bundle ...` and `onsite verify`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use onsite_core::bundle;
use onsite_core::device::ExportOptions;
use onsite_core::receipt::{ChargeBasis, ChargeLine, CustomerDecision, Rating, ReceiptInput};
use onsite_core::signature::Stroke;
use onsite_core::Device;

#[derive(Subcommand)]
pub enum ReceiptCmd {
    /// Build and sign the order's receipt (the customer signs, or refuses with a reason).
    Sign {
        #[arg(long)]
        order: String,
        #[arg(long)]
        diagnosis: String,
        #[arg(long)]
        work_done: String,
        /// The customer's name as they give it.
        #[arg(long)]
        signer: String,
        /// Signature strokes as JSON: [[{"x":..,"y":..,"t_ms":..,"pressure":..}, ...], ...].
        #[arg(long, conflicts_with_all = ["sample_signature", "refused"])]
        strokes: Option<PathBuf>,
        /// Use a built-in sample signature (demos).
        #[arg(long, conflicts_with = "refused")]
        sample_signature: bool,
        /// The customer refused to sign, for this reason.
        #[arg(long)]
        refused: Option<String>,
        /// A charge line `DESCRIPTION=AMOUNT` (paid) or `DESCRIPTION=AMOUNT:warranty`, amount in yuan.
        #[arg(long)]
        charge: Vec<String>,
        #[arg(long, default_value = "CNY")]
        currency: String,
        #[arg(long)]
        rating: Option<u8>,
        #[arg(long, default_value = "")]
        comment: String,
        /// Correct an already signed receipt: a new revision, with this reason.
        #[arg(long)]
        correction: Option<String>,
    },
    /// Print a receipt's canonical JSON (latest revision unless --revision).
    Show {
        #[arg(long)]
        order: String,
        #[arg(long)]
        revision: Option<u32>,
    },
    /// List the order's receipt revisions.
    List {
        #[arg(long)]
        order: String,
    },
    /// Write the printable customer copy (HTML).
    Html {
        #[arg(long)]
        order: String,
        #[arg(long)]
        revision: Option<u32>,
        out: PathBuf,
    },
}

#[derive(Subcommand)]
pub enum BundleCmd {
    /// Write the order's arbitration bundle (zip).
    Export {
        #[arg(long)]
        order: String,
        out: PathBuf,
        /// Carry thumbnails instead of the original photos.
        #[arg(long)]
        thumbnails_only: bool,
    },
    /// Extract a bundle into a directory (names are checked first; nothing lands outside).
    Extract { bundle: PathBuf, dir: PathBuf },
}

fn parse_charge(s: &str) -> Result<ChargeLine> {
    let (desc, rest) = s.rsplit_once('=').with_context(|| format!("--charge `{s}`: expected DESCRIPTION=AMOUNT[:warranty]"))?;
    let (amount, basis) = match rest.split_once(':') {
        Some((a, "warranty")) => (a, ChargeBasis::Warranty),
        Some((a, "paid")) => (a, ChargeBasis::Paid),
        Some((_, other)) => bail!("--charge `{s}`: basis `{other}` is not warranty or paid"),
        None => (rest, ChargeBasis::Paid),
    };
    let amount_cents = onsite_core::money::parse_cents(amount).with_context(|| format!("--charge `{s}`"))?;
    Ok(ChargeLine { description: desc.trim().to_string(), amount_cents, basis })
}

pub fn run(device: &Device, cmd: ReceiptCmd) -> Result<()> {
    match cmd {
        ReceiptCmd::Sign { order, diagnosis, work_done, signer, strokes, sample_signature, refused, charge, currency, rating, comment, correction } => {
            let decision = match (strokes, sample_signature, refused) {
                (_, _, Some(reason)) => CustomerDecision::Refused { reason },
                (_, true, None) => CustomerDecision::Signed { strokes: onsite_core::signature::sample_strokes() },
                (Some(path), false, None) => {
                    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
                    let strokes: Vec<Stroke> = serde_json::from_str(&text).with_context(|| format!("{}: not a strokes array", path.display()))?;
                    CustomerDecision::Signed { strokes }
                }
                (None, false, None) => bail!("give --strokes FILE, --sample-signature, or --refused REASON"),
            };
            let input = ReceiptInput {
                diagnosis,
                work_done,
                charges: charge.iter().map(|c| parse_charge(c)).collect::<Result<_>>()?,
                currency,
                rating: rating.map(|score| Rating { score, comment }),
                signer_name: signer,
                decision,
                correction_reason: correction,
            };
            let s = device.sign_receipt(&order, &input)?;
            println!("receipt r{} of {} signed: SHA-256 {}", s.revision, s.order, s.receipt_sha256);
            println!("  strokes {}", s.strokes_sha256.as_deref().unwrap_or("- (refused)"));
            println!("  journal entry #{}", s.journal_seq);
        }
        ReceiptCmd::Show { order, revision } => {
            let s = device.receipt(&order, revision)?;
            device.verify_receipt(&s)?;
            println!("{}", String::from_utf8_lossy(&s.canonical));
        }
        ReceiptCmd::List { order } => {
            for s in device.receipts(&order)? {
                let ok = device.verify_receipt(&s).is_ok();
                println!("r{}  {}  journal #{}  {}", s.revision, s.receipt_sha256, s.journal_seq, if ok { "verified" } else { "DOES NOT VERIFY" });
            }
        }
        ReceiptCmd::Html { order, revision, out } => {
            std::fs::write(&out, device.customer_copy_html(&order, revision)?).with_context(|| format!("writing {}", out.display()))?;
            println!("customer copy written to {}", out.display());
        }
    }
    Ok(())
}

pub fn bundle_cmd(data: &Path, cmd: BundleCmd) -> Result<()> {
    match cmd {
        BundleCmd::Export { order, out, thumbnails_only } => {
            let device = crate::open(data)?;
            let s = device.export_bundle(&order, &out, ExportOptions { thumbnails_only })?;
            println!(
                "bundle {} written: {} bytes, {} members ({} receipts, {} photos, {} journal entries), SHA-256 {}",
                s.path.display(),
                s.bytes,
                s.members,
                s.receipts,
                s.photos,
                s.journal_entries,
                s.sha256
            );
        }
        BundleCmd::Extract { bundle: path, dir } => {
            let f = std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
            let written = bundle::archive::extract(std::io::BufReader::new(f), &dir)?;
            println!("{} files extracted into {}", written.len(), dir.display());
        }
    }
    Ok(())
}

/// `onsite verify BUNDLE`: true when everything holds.
/// A witness policy from `--witness VKEY` (repeatable) and `--witness-quorum N` (default: all).
pub fn witness_policy(witnesses: &[String], quorum: Option<usize>) -> Result<Option<onsite_core::evidence::log::witness::Policy>> {
    if witnesses.is_empty() {
        if quorum.is_some() {
            anyhow::bail!("--witness-quorum needs --witness keys");
        }
        return Ok(None);
    }
    let keys = witnesses
        .iter()
        .map(|w| onsite_core::evidence::log::witness::Witness::parse(w).with_context(|| format!("--witness {w}")))
        .collect::<Result<Vec<_>>>()?;
    let quorum = quorum.unwrap_or(keys.len());
    if quorum == 0 || quorum > keys.len() {
        anyhow::bail!("--witness-quorum must be 1 to {}", keys.len());
    }
    Ok(Some(onsite_core::evidence::log::witness::Policy { witnesses: keys, quorum }))
}

pub fn verify(
    path: &Path,
    json: bool,
    device_key: Option<&str>,
    authority: Option<&str>,
    log_key: Option<&str>,
    witness_policy: Option<onsite_core::evidence::log::witness::Policy>,
) -> Result<bool> {
    let hexarg = |flag: &str, v: Option<&str>| -> Result<Option<Vec<u8>>> {
        v.map(|h| onsite_core::hash::unhex_typed(h).with_context(|| format!("--{flag} is not hex"))).transpose()
    };
    // A service record (JSON) or an arbitration bundle (zip), told apart by the first byte.
    let head = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if head.first() == Some(&b'{') {
        let opts = onsite_core::profile::VerifyOptions {
            device_key: hexarg("device-key", device_key)?,
            log_key: hexarg("log-key", log_key)?,
            attestation_trust: None,
            witness_policy,
        };
        let report = onsite_core::profile::verify_record(&head, &opts);
        if json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            print!("{}", report.text);
        }
        return Ok(report.ok);
    }
    let opts = bundle::verify::Options {
        device_key: hexarg("device-key", device_key)?,
        time_authority: hexarg("authority", authority)?,
        log_key: hexarg("log-key", log_key)?,
        utc_offset_minutes: None,
        attestation_trust: None,
        witness_policy,
    };
    let report = bundle::verify_file(path, &opts);
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.render_text());
    }
    Ok(report.ok)
}
