//! `onsite parts`, `onsite expert`, `onsite profile`: the spare-part ledger, expert help and
//! the engineer's service record on the device, plus the expert's side over HTTP.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use onsite_core::device::{HelpQuestion, MovementInput};
use onsite_core::parts::{BorrowPolicy, Kind};
use onsite_core::Device;

#[derive(Subcommand)]
pub enum PartsCmd {
    /// Borrow a part from the clerk for an order (前件不还后件不借 applies).
    Borrow {
        part_number: String,
        #[arg(long)]
        serial: Option<String>,
        #[arg(long)]
        order: String,
        #[arg(long, default_value_t = 1)]
        quantity: u32,
    },
    /// Fit a held part on an order; --removed names the faulty part taken out.
    Install {
        part_number: String,
        #[arg(long)]
        serial: Option<String>,
        #[arg(long)]
        order: String,
        #[arg(long)]
        removed: Option<String>,
        #[arg(long, default_value_t = 1)]
        quantity: u32,
    },
    /// Return a part to the clerk (an unused one or a faulty one).
    Return {
        part_number: String,
        #[arg(long)]
        serial: Option<String>,
        #[arg(long)]
        order: Option<String>,
        #[arg(long, default_value_t = 1)]
        quantity: u32,
    },
    /// What the engineer holds, returns awaiting the clerk, anomalies.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Every movement (own and the clerk's).
    Movements,
    /// What an order still owes before close-out.
    Closeout { order: String },
    /// Show or set the borrow rule: strict, off, or tolerance:N.
    Policy { rule: Option<String> },
}

pub fn parts(device: &Device, cmd: PartsCmd) -> Result<()> {
    let record = |kind, part_number: String, serial, order, quantity, removed| -> Result<()> {
        let m = device.record_part(MovementInput { kind, part_number, serial, quantity, order_id: order, removed_serial: removed, note: String::new() })?;
        println!(
            "{} {} {} {}",
            m.kind.as_str(),
            m.part_number,
            m.serial.as_deref().unwrap_or(&format!("x{}", m.quantity)),
            m.order_id.as_deref().unwrap_or("-")
        );
        Ok(())
    };
    match cmd {
        PartsCmd::Borrow { part_number, serial, order, quantity } => record(Kind::Borrow, part_number, serial, Some(order), quantity, None)?,
        PartsCmd::Install { part_number, serial, order, removed, quantity } => record(Kind::Install, part_number, serial, Some(order), quantity, removed)?,
        PartsCmd::Return { part_number, serial, order, quantity } => record(Kind::Return, part_number, serial, order, quantity, None)?,
        PartsCmd::List { json } => {
            let l = device.ledger()?;
            if json {
                let held: Vec<_> = l.held().into_iter().cloned().collect();
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({ "held": held, "pending_returns": l.pending_returns, "anomalies": l.anomalies }))?
                );
                return Ok(());
            }
            println!("held ({}):", l.held().len());
            for h in l.held() {
                let state = if h.faulty {
                    "faulty, to return"
                } else if h.clerk_confirmed {
                    "issued by the clerk"
                } else {
                    "borrowed"
                };
                println!("  {} {} x{} for {} ({state})", h.part_number, h.serial.as_deref().unwrap_or("-"), h.quantity, h.order_id.as_deref().unwrap_or("-"));
            }
            println!("returned, awaiting the clerk ({}):", l.pending_returns.len());
            for p in &l.pending_returns {
                println!(
                    "  {} {} x{} of {}{}",
                    p.part_number,
                    p.serial.as_deref().unwrap_or("-"),
                    p.quantity,
                    p.order_id.as_deref().unwrap_or("-"),
                    if p.faulty { " (faulty)" } else { "" }
                );
            }
            for a in &l.anomalies {
                println!("anomaly: {a}");
            }
            println!("policy: {}", serde_json::to_string(&device.borrow_policy()?)?);
        }
        PartsCmd::Movements => {
            for r in device.part_movements()? {
                let m = r.movement;
                println!(
                    "{:>4} {:<13} {} {} x{} order {} by {}{}{}",
                    m.lamport,
                    m.kind.as_str(),
                    m.part_number,
                    m.serial.as_deref().unwrap_or("-"),
                    m.quantity,
                    m.order_id.as_deref().unwrap_or("-"),
                    m.actor,
                    r.step.map(|s| format!(" (step {s})")).unwrap_or_default(),
                    if r.synced { "" } else { " [unsent]" }
                );
            }
        }
        PartsCmd::Closeout { order } => {
            let c = device.closeout(&order)?;
            if c.is_clear() {
                println!("{order}: every part accounted for");
            } else {
                println!("{}", serde_json::to_string_pretty(&c)?);
                bail!("{order} still owes {} held part(s) and {} return(s) the clerk has not received", c.held.len(), c.pending_returns.len());
            }
        }
        PartsCmd::Policy { rule } => {
            if let Some(rule) = rule {
                let p = match rule.as_str() {
                    "strict" => BorrowPolicy::Strict,
                    "off" => BorrowPolicy::Off,
                    r if r.starts_with("tolerance:") => BorrowPolicy::Tolerance { max: r["tolerance:".len()..].parse().context("tolerance:N")? },
                    _ => bail!("strict, off or tolerance:N"),
                };
                device.set_borrow_policy(p)?;
            }
            println!("{}", serde_json::to_string(&device.borrow_policy()?)?);
        }
    }
    Ok(())
}

#[derive(Subcommand)]
pub enum ExpertCmd {
    /// Ask for expert help from an order (sent with the next sync).
    Ask {
        order: String,
        question: String,
        #[arg(long)]
        step: Option<String>,
        /// SHA-256 of an order photo to share (repeatable).
        #[arg(long)]
        photo: Vec<String>,
        /// Share the fault report.
        #[arg(long)]
        fault: bool,
        /// Share the engineer's notes.
        #[arg(long)]
        notes: bool,
    },
    /// An order's requests and answers.
    Threads { order: String },
    /// Answered requests' costs (the reimbursement claim).
    Costs,
    /// The expert's inbox (expert token).
    Inbox {
        #[arg(long, env = "ONSITE_SERVER")]
        server: String,
        #[arg(long, env = "ONSITE_EXPERT_TOKEN", hide_env_values = true)]
        token: String,
    },
    /// Answer a request as the expert, with reference photos (files) and suggested steps.
    Answer {
        id: String,
        text: String,
        #[arg(long)]
        step: Option<String>,
        #[arg(long)]
        suggest: Vec<String>,
        #[arg(long)]
        photo: Vec<PathBuf>,
        #[arg(long, env = "ONSITE_SERVER")]
        server: String,
        #[arg(long, env = "ONSITE_EXPERT_TOKEN", hide_env_values = true)]
        token: String,
    },
}

/// Commands that run against the device; `None` for the expert's HTTP side.
pub fn needs_device(cmd: &ExpertCmd) -> bool {
    !matches!(cmd, ExpertCmd::Inbox { .. } | ExpertCmd::Answer { .. })
}

pub fn expert(device: Option<&Device>, cmd: ExpertCmd) -> Result<()> {
    match cmd {
        ExpertCmd::Inbox { server, token } => {
            let e = onsite_server::client::ExpertClient::new(&server, &token)?;
            let list = e.requests()?;
            for r in list.as_array().cloned().unwrap_or_default() {
                let id = r["id"].as_str().unwrap_or_default();
                let view = e.request(id)?;
                println!(
                    "{id} [{}] order {}: {}",
                    r["status"].as_str().unwrap_or(""),
                    r["order_id"].as_str().unwrap_or(""),
                    view["question"].as_str().unwrap_or("")
                );
                println!(
                    "    {} | step {} | {} photo(s)",
                    view["equipment"].as_str().unwrap_or(""),
                    view["step"].as_str().unwrap_or("-"),
                    view["photos"].as_array().map_or(0, |a| a.len())
                );
            }
        }
        ExpertCmd::Answer { id, text, step, suggest, photo, server, token } => {
            let e = onsite_server::client::ExpertClient::new(&server, &token)?;
            let mut shas = Vec::new();
            for p in photo {
                shas.push(e.upload(&std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?)?);
            }
            let body = serde_json::json!({ "text": text, "step": step, "suggested_steps": suggest, "reference_photos": shas });
            let a = e.answer(&id, &body)?;
            println!("answered {id}: cost {} 分", a["cost_cents"]);
        }
        other => {
            let device = device.context("a device data directory")?;
            match other {
                ExpertCmd::Ask { order, question, step, photo, fault, notes } => {
                    let r = device.ask_help(&order, &HelpQuestion { question, step, photos: photo, include_fault: fault, include_notes: notes })?;
                    println!("help request {} queued on {order}; it goes out with the next sync", r.id);
                }
                ExpertCmd::Threads { order } => {
                    for t in device.help_threads(&order)? {
                        println!("{} {}: {}", t.request.id, t.request.step.as_deref().unwrap_or("-"), t.request.question);
                        for a in t.answers {
                            println!("  [{}] {} {}: {}", a.kind, a.expert_name, a.step.as_deref().map(|s| format!("(step {s})")).unwrap_or_default(), a.text);
                            for s in &a.suggested_steps {
                                println!("      - {s}");
                            }
                            for p in &a.reference_photos {
                                println!("      photo {p}{}", if device.blob(p).is_ok() { "" } else { " (not downloaded yet)" });
                            }
                            if a.cost_cents > 0 {
                                println!("      cost {} 分", a.cost_cents);
                            }
                        }
                    }
                }
                ExpertCmd::Costs => {
                    let costs = device.help_costs()?;
                    for c in &costs {
                        println!("{} {} {} {} 分", c.order_id, c.request_id, c.expert_name, c.cost_cents);
                    }
                    println!("total {} 分 in {} answer(s)", costs.iter().map(|c| c.cost_cents).sum::<i64>(), costs.len());
                }
                ExpertCmd::Inbox { .. } | ExpertCmd::Answer { .. } => {}
            }
        }
    }
    Ok(())
}

#[derive(Subcommand)]
pub enum ProfileCmd {
    /// The service record's figures.
    Show {
        #[arg(long)]
        json: bool,
    },
    /// Write the signed service record; check it with `onsite verify FILE --log-key ...`.
    Export { out: PathBuf },
}

pub fn profile(device: &Device, cmd: ProfileCmd) -> Result<()> {
    match cmd {
        ProfileCmd::Show { json } => {
            let r = device.service_record()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r.aggregates)?);
                return Ok(());
            }
            let a = &r.aggregates;
            println!("engineer {} ({} orders with signed receipts, {} proven in the provider's log)", r.engineer, a.orders, a.logged);
            println!("  first-time fix {}.{}%", a.first_time_fix_permille / 10, a.first_time_fix_permille % 10);
            println!("  rating {}.{:02} from {} ratings", a.rating_avg_centi / 100, a.rating_avg_centi % 100, a.rated);
            println!("  repair time median {} min, total {} min", a.work_minutes_median.map_or("-".into(), |m| m.to_string()), a.work_minutes_total);
            println!("  expert help used {} time(s)", a.help_requests);
            for (k, n) in &a.faults_solved {
                println!("  solved {k}: {n}");
            }
            println!("  certifications: {}", r.certifications.len());
        }
        ProfileCmd::Export { out } => {
            let s = device.export_service_record(&out)?;
            println!(
                "service record of {} written to {}: {} orders, signed by device {}",
                s.record.engineer,
                out.display(),
                s.record.orders.len(),
                s.record.device_id
            );
        }
    }
    Ok(())
}
