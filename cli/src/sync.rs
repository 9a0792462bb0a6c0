//! `onsite sync ...` (enrol, sync now, status, conflicts) and `onsite server` (the sync
//! server in this binary, the same as `onsite-server`).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;
use onsite_core::device::{SyncObserver, SyncOptions, SyncProgress};
use onsite_core::sync::HttpTransport;
use onsite_core::Device;

#[derive(Subcommand)]
pub enum SyncCmd {
    /// Enrol this device with a server using the dispatcher's one-time code.
    Enrol {
        #[arg(long)]
        server: String,
        code: String,
    },
    /// Run one sync pass now (journal, orders, photos).
    Now {
        #[arg(long)]
        json: bool,
    },
    /// What is pending, what failed, when the last pass succeeded (no network).
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Fields of an order whose concurrent values were resolved by merge, and by whom.
    Conflicts { id: String },
    /// Put photos that failed permanently back in the queue.
    RetryWedged,
}

struct Printer;

impl SyncObserver for Printer {
    fn progress(&self, p: &SyncProgress) {
        eprintln!("  sync {:?}: {}/{}", p.phase, p.done, p.total);
    }
}

pub fn run(device: &Device, cmd: SyncCmd) -> Result<()> {
    match cmd {
        SyncCmd::Enrol { server, code } => {
            let t = HttpTransport::new(&server)?;
            let r = device.enrol(&t, &server, &code)?;
            println!("enrolled with {server}: provider {}, engineer {}", r.provider, r.engineer_id);
        }
        SyncCmd::Now { json } => {
            let server = device.sync_server()?.context("not enrolled: run `onsite sync enrol --server URL CODE` first")?;
            let t = HttpTransport::new(&server)?;
            let r = device.sync(&t, &SyncOptions::default(), Some(&Printer))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!(
                    "sync: {} round trips, {} B sent, {} B received; journal +{}, pushed {}, pulled {}, rejected {}, removed {}, photos {}",
                    r.round_trips,
                    r.bytes_sent,
                    r.bytes_received,
                    r.journal_uploaded,
                    r.orders_pushed,
                    r.orders_pulled,
                    r.orders_rejected.len(),
                    r.orders_removed.len(),
                    r.blobs_uploaded
                );
                for e in &r.errors {
                    println!("  pending: {e}");
                }
            }
        }
        SyncCmd::Status { json } => {
            let s = device.sync_status()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                println!("server:   {}", s.server.as_deref().unwrap_or("(not enrolled)"));
                println!("engineer: {}", s.engineer.as_deref().unwrap_or("-"));
                println!("pending:  {} journal entries, {} orders, {} photos", s.pending_journal, s.pending_orders, s.pending_blobs);
                if let Some(t) = s.last_success_at {
                    println!("last ok:  {}", chrono::DateTime::from_timestamp_millis(t).map(|d| d.to_rfc3339()).unwrap_or_default());
                }
                if let Some(e) = &s.last_error {
                    println!("last error: {e}");
                }
                for (sha, why) in &s.wedged {
                    println!("wedged photo {sha}: {why}");
                }
            }
        }
        SyncCmd::Conflicts { id } => {
            let c = device.conflicts(&id)?;
            if c.is_empty() {
                println!("no concurrent values in {id}");
            }
            for conflict in c {
                println!("{}:", conflict.field);
                for (i, v) in conflict.values.iter().enumerate() {
                    println!("  {} {} by {}", if i == 0 { "kept   " } else { "dropped" }, v.value, v.actor);
                }
            }
        }
        SyncCmd::RetryWedged => println!("{} photos queued again", device.retry_wedged()?),
    }
    Ok(())
}

/// `onsite server`: runs the sync server in the foreground.
pub fn server(data: PathBuf, listen: SocketAddr, admin_token: Option<String>, push_workers: usize) -> Result<()> {
    let mut config = onsite_server::Config::new(data);
    config.listen = listen;
    config.admin_token = admin_token;
    config.push_workers = push_workers;
    onsite_server::run(config)?;
    Ok(())
}

/// The dispatcher's side, for scripts and demos (a console would call the same API).
#[derive(clap::Args)]
pub struct DispatchArgs {
    /// Server URL, e.g. http://127.0.0.1:8080
    #[arg(long, env = "ONSITE_SERVER")]
    server: String,
    /// Dispatcher token (from `onsite dispatch provider`).
    #[arg(long, env = "ONSITE_DISPATCHER_TOKEN", hide_env_values = true, default_value = "")]
    token: String,
    #[command(subcommand)]
    cmd: DispatchCmd,
}

#[derive(Subcommand)]
pub enum DispatchCmd {
    /// Create a provider (needs the server's admin token); prints its dispatcher token.
    Provider {
        #[arg(long, env = "ONSITE_ADMIN_TOKEN", hide_env_values = true)]
        admin_token: String,
        #[arg(long)]
        id: String,
        #[arg(long)]
        name: String,
    },
    /// Create orders from the import JSON; the flags rewrite the file's provider, engineer
    /// and id prefix (`WO-20261123` in the samples) first.
    Orders {
        file: PathBuf,
        #[arg(long)]
        provider: Option<String>,
        #[arg(long)]
        engineer: Option<String>,
        #[arg(long)]
        id_prefix: Option<String>,
    },
    /// A one-time enrolment code for an engineer's device.
    Code { engineer: String },
    /// Reassign an order.
    Assign {
        id: String,
        engineer: String,
        #[arg(long, default_value = "")]
        name: String,
    },
    /// Cancel an order.
    Cancel { id: String, reason: String },
    /// Change an order's priority (urgent, normal, low).
    Priority { id: String, priority: String },
    /// Revoke a device.
    Revoke { device: String },
    /// Show an order as the server has it (JSON).
    Show { id: String },
    /// The parts clerk: `issue` (hand out) or `receive` (take back) a part.
    Clerk {
        kind: String,
        engineer: String,
        part_number: String,
        #[arg(long)]
        serial: Option<String>,
        #[arg(long, default_value_t = 1)]
        quantity: u32,
        #[arg(long)]
        order: Option<String>,
        #[arg(long, default_value = "clerk")]
        clerk: String,
    },
    /// An engineer's part ledger as the server folds it.
    Ledger { engineer: String },
    /// The coordinator confirms an order done; refused while its parts are unaccounted for.
    Close {
        id: String,
        #[arg(long, default_value = "coordinator")]
        by: String,
    },
    /// Register an expert (routing: categories and brands, lowercase); prints the token.
    Expert {
        id: String,
        name: String,
        #[arg(long, value_delimiter = ',')]
        categories: Vec<String>,
        #[arg(long, value_delimiter = ',')]
        brands: Vec<String>,
        #[arg(long, default_value_t = 5000)]
        fee_cents: i64,
    },
    /// Help requests, where they went and what they cost.
    HelpRequests,
    /// Issue a certification level (1-5, seed 001) to an engineer.
    Certify { engineer: String, level: u8 },
}

pub fn dispatch(args: DispatchArgs) -> Result<()> {
    use onsite_server::client::{create_provider, DispatcherClient};
    if let DispatchCmd::Provider { admin_token, id, name } = &args.cmd {
        println!("{}", create_provider(&args.server, admin_token, id, name)?);
        return Ok(());
    }
    let d = DispatcherClient::new(&args.server, &args.token)?;
    match args.cmd {
        DispatchCmd::Provider { .. } => {}
        DispatchCmd::Orders { file, provider, engineer, id_prefix } => {
            let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            let mut v: serde_json::Value = serde_json::from_str(&text)?;
            let list: Vec<&mut serde_json::Value> = match &mut v {
                serde_json::Value::Array(a) => a.iter_mut().collect(),
                o => vec![o],
            };
            for o in list {
                if let Some(p) = &provider {
                    o["provider"]["id"] = p.clone().into();
                }
                if let Some(e) = &engineer {
                    o["engineer"]["id"] = e.clone().into();
                }
                if let (Some(prefix), Some(id)) = (&id_prefix, o["id"].as_str().map(str::to_string)) {
                    o["id"] = id.replacen("WO-20261123", prefix, 1).into();
                }
            }
            println!("{}", d.create_orders(&v.to_string())?.join(" "));
        }
        DispatchCmd::Code { engineer } => println!("{}", d.enrolment_code(&engineer)?),
        DispatchCmd::Assign { id, engineer, name } => {
            d.assign(&id, &engineer, &name)?;
        }
        DispatchCmd::Cancel { id, reason } => {
            d.cancel(&id, &reason)?;
        }
        DispatchCmd::Priority { id, priority } => {
            d.set_priority(&id, &priority)?;
        }
        DispatchCmd::Revoke { device } => d.revoke_device(&device)?,
        DispatchCmd::Show { id } => println!("{}", serde_json::to_string_pretty(&d.order(&id)?)?),
        DispatchCmd::Clerk { kind, engineer, part_number, serial, quantity, order, clerk } => {
            let body = serde_json::json!({ "kind": kind, "engineer_id": engineer, "part_number": part_number, "serial": serial,
                "quantity": quantity, "order_id": order, "clerk": clerk });
            println!("{}", serde_json::to_string_pretty(&d.clerk(&body)?)?);
        }
        DispatchCmd::Ledger { engineer } => println!("{}", serde_json::to_string_pretty(&d.parts_ledger(&engineer)?)?),
        DispatchCmd::Close { id, by } => println!("{}", d.close(&id, &by)?),
        DispatchCmd::Expert { id, name, categories, brands, fee_cents } => {
            let body = serde_json::json!({ "id": id, "name": name, "categories": categories, "brands": brands, "fee_cents": fee_cents });
            println!("{}", d.add_expert(&body)?);
        }
        DispatchCmd::HelpRequests => println!("{}", serde_json::to_string_pretty(&d.help_requests()?)?),
        DispatchCmd::Certify { engineer, level } => println!("{}", serde_json::to_string_pretty(&d.certify(&engineer, level)?)?),
    }
    Ok(())
}
