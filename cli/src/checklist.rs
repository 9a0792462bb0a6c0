//! `onsite checklist ...` and `onsite templates ...`.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use onsite_core::device::ChecklistView;
use onsite_core::order::Timestamp;
use onsite_core::sop::{self, Answer, NaReason, PartUse, PhotoRef, StepState};
use onsite_core::Device;

#[derive(Subcommand)]
pub enum ChecklistCmd {
    /// Start the order's checklist (pins the template's latest version).
    Start {
        order: String,
        #[arg(long, default_value = "onsite-repair")]
        template: String,
    },
    /// Steps with their state, what is open, what blocks completion.
    Show {
        order: String,
        #[arg(long)]
        json: bool,
    },
    /// Answer a step (a correction is a new answer).
    Answer(AnswerArgs),
    /// Mark a step not applicable (only where the template allows), with a reason.
    Na {
        order: String,
        step: String,
        #[arg(long)]
        reason: String,
    },
    /// Why the order cannot be completed yet.
    Blockers { order: String },
    /// Every answer given to a step.
    History { order: String, step: String },
    /// Answer every open step with plausible demo answers (demos and tests); photo steps get
    /// real generated JPEGs, ingested like a camera's.
    #[command(hide = true)]
    WalkDemo { order: String },
}

#[derive(Subcommand)]
pub enum TemplatesCmd {
    List,
    /// Publish a template version (TOML) to this device.
    Publish {
        file: PathBuf,
    },
}

#[derive(Args)]
pub struct AnswerArgs {
    order: String,
    step: String,
    #[arg(long)]
    confirm: bool,
    /// SHA256[:label], repeatable.
    #[arg(long)]
    photo: Vec<String>,
    #[arg(long, allow_negative_numbers = true)]
    value: Option<f64>,
    #[arg(long)]
    text: Option<String>,
    /// Option id, repeatable.
    #[arg(long)]
    choice: Vec<String>,
    #[arg(long)]
    scan: Option<String>,
    /// PART_NUMBER:SERIAL[:QUANTITY[:RETURNED_SERIAL]], repeatable.
    #[arg(long)]
    part: Vec<String>,
    /// Record that no part was used.
    #[arg(long)]
    no_parts: bool,
    /// Observation length ending now, in minutes.
    #[arg(long)]
    observed_minutes: Option<u32>,
    #[arg(long)]
    reproduced: bool,
    /// accept | refuse
    #[arg(long)]
    consent: Option<String>,
    #[arg(long)]
    signer: Option<String>,
    /// JSON file of strokes: [[{"x":..,"y":..,"t_ms":..,"pressure":..}, ...], ...]
    #[arg(long)]
    strokes: Option<PathBuf>,
}

fn answer_from(device: &Device, a: &AnswerArgs) -> Result<Answer> {
    let view = device.checklist(&a.order)?;
    let step = view.template.step(&a.step).with_context(|| format!("unknown step `{}`", a.step))?;
    let given = [
        a.confirm,
        !a.photo.is_empty(),
        a.value.is_some(),
        a.text.is_some(),
        !a.choice.is_empty(),
        a.scan.is_some(),
        !a.part.is_empty() || a.no_parts,
        a.observed_minutes.is_some(),
        a.consent.is_some(),
    ]
    .iter()
    .filter(|g| **g)
    .count();
    if given != 1 {
        bail!("give exactly one answer (--confirm, --photo, --value, --text, --choice, --scan, --part/--no-parts, --observed-minutes, --consent)");
    }
    Ok(if a.confirm {
        Answer::Confirmed
    } else if !a.photo.is_empty() {
        Answer::Photos {
            photos: a
                .photo
                .iter()
                .map(|p| {
                    let (sha, label) = p.split_once(':').unwrap_or((p, ""));
                    PhotoRef { sha256: sha.to_string(), label: label.to_string() }
                })
                .collect(),
        }
    } else if let Some(value) = a.value {
        Answer::Measurement { value }
    } else if let Some(text) = &a.text {
        Answer::Note { text: text.clone() }
    } else if !a.choice.is_empty() {
        Answer::Choice { selected: a.choice.clone() }
    } else if let Some(scanned) = &a.scan {
        Answer::Barcode { scanned: scanned.clone() }
    } else if !a.part.is_empty() || a.no_parts {
        let mut parts = Vec::new();
        for p in &a.part {
            let f: Vec<&str> = p.split(':').collect();
            if f.len() < 2 {
                bail!("--part `{p}`: expected PART_NUMBER:SERIAL[:QUANTITY[:RETURNED_SERIAL]]");
            }
            let quantity = f.get(2).map(|q| q.parse::<u32>()).transpose().with_context(|| format!("--part `{p}`: bad quantity"))?;
            parts.push(PartUse {
                part_number: f[0].to_string(),
                serial: f[1].to_string(),
                quantity: quantity.unwrap_or(1),
                returned_serial: f.get(3).map(|s| s.to_string()),
            });
        }
        Answer::Parts { parts }
    } else if let Some(m) = a.observed_minutes {
        let now = device.now();
        Answer::Observation { started: Timestamp(now.0 - i64::from(m) * 60_000), stopped: now, reproduced: a.reproduced }
    } else {
        let accepted = match a.consent.as_deref() {
            Some("accept") => true,
            Some("refuse") => false,
            other => bail!("--consent must be accept or refuse, not {other:?}"),
        };
        let signer = a.signer.clone().context("--consent needs --signer NAME")?;
        let strokes: Vec<onsite_core::signature::Stroke> = match &a.strokes {
            Some(f) => serde_json::from_str(&std::fs::read_to_string(f)?)
                .with_context(|| format!("{}: strokes are [[{{x, y, t_ms, pressure}}, ...], ...]", f.display()))?,
            None => Vec::new(),
        };
        let sop::StepKind::Consent { risk, risk_sha256 } = &step.kind else { bail!("`{}` is not a consent step", a.step) };
        println!("risk shown to the customer:\n  {}\n  {}", risk.zh, risk.en);
        Answer::consent(accepted, risk_sha256.clone(), signer, &strokes)?
    })
}

pub fn print_view(v: &ChecklistView) {
    println!("{} v{} ({} / {})", v.pinned.id, v.pinned.version, v.template.title.zh, v.template.title.en);
    for (step, st) in v.template.steps.iter().zip(&v.evaluation.steps) {
        let state = match &st.state {
            StepState::Locked { waiting_for } => format!("locked (waiting for {})", waiting_for.join(", ")),
            StepState::Open => "OPEN".to_string(),
            StepState::Done => "done".to_string(),
            StepState::NotApplicable { reason: NaReason::Condition } => "n/a".to_string(),
            StepState::NotApplicable { reason: NaReason::Marked { reason } } => format!("n/a: {reason}"),
        };
        let flags = if st.flags.is_empty() { String::new() } else { format!(" {:?}", st.flags) };
        let req = if step.required { "" } else { " (optional)" };
        println!("  {:<24} {:<12} {:<40} {}{req}{flags}", step.id, step.kind.name(), state, step.label.en);
    }
    print_blockers(&v.evaluation.blockers);
}

pub fn print_blockers(blockers: &[sop::Blocker]) {
    if blockers.is_empty() {
        println!("nothing blocks completion");
    } else {
        println!("{} step(s) block completion:", blockers.len());
        for b in blockers {
            println!("  {}: {} / {}", b.step, b.reason.en, b.reason.zh);
        }
    }
}

pub fn run(device: &Device, cmd: ChecklistCmd) -> Result<()> {
    match cmd {
        ChecklistCmd::Start { order, template } => print_view(&device.start_checklist(&order, &template)?),
        ChecklistCmd::Show { order, json } => {
            let v = device.checklist(&order)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print_view(&v);
            }
        }
        ChecklistCmd::Answer(a) => {
            let answer = answer_from(device, &a)?;
            let v = device.answer(&a.order, &a.step, answer)?;
            let st = v.evaluation.status(&v.template, &a.step).map(|s| format!("{:?}", s.state)).unwrap_or_default();
            println!("{}: {st}; open now: {}", a.step, v.evaluation.open().join(", "));
        }
        ChecklistCmd::Na { order, step, reason } => {
            device.mark_not_applicable(&order, &step, &reason)?;
            println!("{step}: not applicable ({reason})");
        }
        ChecklistCmd::Blockers { order } => print_blockers(&device.blockers(&order)?),
        ChecklistCmd::History { order, step } => {
            for r in device.step_history(&order, &step)? {
                println!("{}  {}  {}", r.at.to_datetime().to_rfc3339(), r.device, serde_json::to_string(&r.value)?);
            }
        }
        ChecklistCmd::WalkDemo { order } => {
            let (n, photos) = crate::demo::walk_with_photos(device, &order, None)?;
            println!("answered {n} step(s), {photos} photo(s)");
        }
    }
    Ok(())
}

pub fn templates(device: &Device, cmd: TemplatesCmd) -> Result<()> {
    match cmd {
        TemplatesCmd::List => {
            for t in device.templates() {
                println!("{:<18} v{:<3} {:>3} steps  {} / {}", t.id, t.version, t.steps.len(), t.title.zh, t.title.en);
            }
        }
        TemplatesCmd::Publish { file } => {
            let source = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            let name = file.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
            let t = device.publish_template(&name, &source)?;
            println!("published {} v{} ({} steps)", t.id, t.version, t.steps.len());
        }
    }
    Ok(())
}
