//! `onsite`: a headless field device over the same core API the apps use.

mod alloc;
mod bench;
mod bench_load;
mod bench_log;
mod bench_rest;
mod bench_sync;
mod bench_visit;
mod checklist;
mod demo;
mod evidence;
mod field;
mod receipt;
mod sync;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand, ValueEnum};
use onsite_core::order::{LocationSource, TimeWindow, Timestamp};
use onsite_core::store::SortBy;
use onsite_core::{Actor, Device, DeviceOptions, Event, GpsFix, OrderFilter, Status};

#[global_allocator]
static ALLOC: alloc::Counting = alloc::Counting;

#[derive(Parser)]
#[command(name = "onsite", version, about = "Onsite headless field device")]
struct Cli {
    /// Data directory of this device (env ONSITE_DATA; default ./onsite-data).
    #[arg(long, global = true, env = "ONSITE_DATA")]
    data: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Work orders on this device.
    #[command(subcommand)]
    Orders(OrdersCmd),
    /// The SOP checklist of an order.
    #[command(subcommand)]
    Checklist(checklist::ChecklistCmd),
    /// Checklist templates on this device.
    #[command(subcommand)]
    Templates(checklist::TemplatesCmd),
    /// Photos as evidence.
    #[command(subcommand)]
    Evidence(evidence::EvidenceCmd),
    /// The signed operation log.
    #[command(subcommand)]
    Journal(evidence::JournalCmd),
    /// Signed receipts (维修回执) and the customer copy.
    #[command(subcommand)]
    Receipt(receipt::ReceiptCmd),
    /// Arbitration bundles: export, extract.
    #[command(subcommand)]
    Bundle(receipt::BundleCmd),
    /// Verify an arbitration bundle offline; exit code 0 only when every check holds.
    Verify {
        bundle: PathBuf,
        /// Machine-readable report.
        #[arg(long)]
        json: bool,
        /// The device key (SEC1 hex) as the server registered it; must match.
        #[arg(long)]
        device_key: Option<String>,
        /// The time authority's key (SEC1 hex) to trust for time tickets.
        #[arg(long)]
        authority: Option<String>,
        /// The server's evidence-log key (SEC1 hex) that must sign the checkpoints.
        #[arg(long)]
        log_key: Option<String>,
        /// A witness (C2SP cosignature verifier key) whose cosignature the log's checkpoints
        /// must carry; repeatable.
        #[arg(long = "witness")]
        witnesses: Vec<String>,
        /// How many of the --witness keys must have cosigned (default: all of them).
        #[arg(long)]
        witness_quorum: Option<usize>,
    },
    /// Sync with the server: enrol, sync now, status, conflicts.
    #[command(subcommand)]
    Sync(sync::SyncCmd),
    /// The dispatcher's API: providers, orders, enrolment codes, reassignment, the parts
    /// clerk, close-out, experts, certifications.
    Dispatch(sync::DispatchArgs),
    /// The spare-part ledger (备件借用, 前件不还后件不借).
    #[command(subcommand)]
    Parts(field::PartsCmd),
    /// Expert help (专家求助): ask from an order; the expert's inbox and answers.
    #[command(subcommand)]
    Expert(field::ExpertCmd),
    /// The engineer's signed service record (数字化履历).
    #[command(subcommand)]
    Profile(field::ProfileCmd),
    /// Run the sync server in the foreground (the same server as `onsite-server`).
    Server {
        /// The server's data directory (SQLite file, blobs, admin token).
        #[arg(long = "server-data", default_value = "onsite-server-data")]
        server_data: PathBuf,
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        #[arg(long, env = "ONSITE_ADMIN_TOKEN", hide_env_values = true)]
        admin_token: Option<String>,
        /// Threads merging one sync request's pushes (see onsite-server --help).
        #[arg(long, env = "ONSITE_PUSH_WORKERS", default_value_t = onsite_server::service::DEFAULT_PUSH_WORKERS)]
        push_workers: usize,
    },
    /// The main job: a sync server with its embedded SQLite (started here on a free
    /// loopback port unless --server is given) and a demo device that enrols, receives an
    /// order, works it offline, syncs and prints the result.
    Demo {
        /// Use this running server instead (needs --admin-token).
        #[arg(long)]
        server: Option<String>,
        #[arg(long, env = "ONSITE_ADMIN_TOKEN", hide_env_values = true)]
        admin_token: Option<String>,
        /// Keep the embedded server (and its web console) running after the demo, until Ctrl-C.
        #[arg(long)]
        serve: bool,
    },
    /// Benchmarks (build with --release): `onsite bench store`, `sop`, `photo`, `receipt`, `sync`, `load`, `rest`, `log`.
    Bench {
        suite: String,
        /// Orders in the benchmark store.
        #[arg(long, default_value_t = 500)]
        orders: usize,
        /// Input file (internal suites).
        #[arg(long)]
        file: Option<PathBuf>,
        /// `load`: simulated devices syncing at once.
        #[arg(long, default_value_t = 100)]
        devices: usize,
        /// `load`: a PostgreSQL server (`postgres://user@host:port/db`) to also run on.
        #[arg(long, env = "ONSITE_BENCH_DATABASE", hide_env_values = true)]
        database: Option<String>,
        /// `load`: instances of the multi-instance PostgreSQL run.
        #[arg(long, default_value_t = 3)]
        instances: usize,
    },
    /// Test support: append notes to ORDER in a loop, printing `ack N` after each durable edit.
    #[command(hide = true)]
    EditLoop {
        order: String,
        #[arg(long, default_value_t = u64::MAX)]
        count: u64,
        #[arg(long, default_value_t = 0)]
        start: u64,
    },
}

#[derive(Subcommand)]
enum OrdersCmd {
    /// Import the dispatcher's JSON (one order or an array); `-` reads stdin.
    Import { file: PathBuf },
    /// List orders (SLA deadline first).
    List {
        /// Only these statuses (repeatable): assigned, accepted, customer_contacted, ...
        #[arg(long)]
        status: Vec<String>,
        #[arg(long, value_enum, default_value_t = Sort::Sla)]
        sort: Sort,
        #[arg(long)]
        json: bool,
    },
    /// Show one order with its SLA clocks and history.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Apply a lifecycle event: accept, contact_customer, depart, arrive, start_work,
    /// request_signature, complete, reschedule, carry_to_workshop, mark_unresolved, cancel.
    Transition(TransitionArgs),
    /// Add an engineer note.
    Note { id: String, text: String },
    /// Write the order's Automerge document to a file (to hand to a peer).
    Export { id: String, out: PathBuf },
    /// Merge an Automerge document received from a peer.
    Merge { file: PathBuf },
}

#[derive(Clone, Copy, ValueEnum)]
enum Sort {
    Sla,
    Updated,
}

#[derive(Args)]
struct TransitionArgs {
    id: String,
    event: String,
    #[arg(long)]
    reason: Option<String>,
    /// Appointment window start (RFC 3339), for contact_customer and reschedule.
    #[arg(long)]
    window_start: Option<String>,
    #[arg(long)]
    window_end: Option<String>,
    #[arg(long, requires = "lon")]
    lat: Option<f64>,
    #[arg(long, requires = "lat")]
    lon: Option<f64>,
    #[arg(long, default_value_t = 10.0)]
    accuracy: f64,
    #[arg(long, value_enum, default_value_t = Source::Gps)]
    source: Source,
    #[arg(long)]
    mock: bool,
    /// Act as the dispatcher (needed for cancel).
    #[arg(long)]
    dispatcher: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum Source {
    Gps,
    Network,
    Fused,
    Manual,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn data_dir(cli_data: &Option<PathBuf>) -> PathBuf {
    cli_data.clone().unwrap_or_else(|| PathBuf::from("onsite-data"))
}

pub(crate) fn open(dir: &std::path::Path) -> Result<Device> {
    Device::open(DeviceOptions::new(dir)).with_context(|| format!("opening the store in {}", dir.display()))
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Demo { server, admin_token, serve } => demo::run(cli.data, server, admin_token, serve),
        Command::Server { server_data, listen, admin_token, push_workers } => sync::server(server_data, listen, admin_token, push_workers),
        Command::Sync(cmd) => sync::run(&open(&data_dir(&cli.data))?, cmd),
        Command::Dispatch(args) => sync::dispatch(args),
        Command::Parts(cmd) => field::parts(&open(&data_dir(&cli.data))?, cmd),
        Command::Expert(cmd) => {
            if field::needs_device(&cmd) {
                field::expert(Some(&open(&data_dir(&cli.data))?), cmd)
            } else {
                field::expert(None, cmd)
            }
        }
        Command::Profile(cmd) => field::profile(&open(&data_dir(&cli.data))?, cmd),
        Command::Bench { suite, devices, database, instances, .. } if suite == "load" => bench_load::load_bench(devices, database.as_deref(), instances),
        Command::Bench { suite, orders, file, .. } => bench::run(&suite, orders, file.as_deref()),
        Command::EditLoop { order, count, start } => edit_loop(&open(&data_dir(&cli.data))?, &order, start, count),
        Command::Orders(cmd) => orders(&open(&data_dir(&cli.data))?, cmd),
        Command::Evidence(cmd) => evidence::run(&open(&data_dir(&cli.data))?, cmd),
        Command::Journal(cmd) => evidence::journal(&open(&data_dir(&cli.data))?, cmd),
        Command::Checklist(cmd) => checklist::run(&open(&data_dir(&cli.data))?, cmd),
        Command::Templates(cmd) => checklist::templates(&open(&data_dir(&cli.data))?, cmd),
        Command::Receipt(cmd) => receipt::run(&open(&data_dir(&cli.data))?, cmd),
        Command::Bundle(cmd) => receipt::bundle_cmd(&data_dir(&cli.data), cmd),
        Command::Verify { bundle, json, device_key, authority, log_key, witnesses, witness_quorum } => {
            let policy = receipt::witness_policy(&witnesses, witness_quorum)?;
            if receipt::verify(&bundle, json, device_key.as_deref(), authority.as_deref(), log_key.as_deref(), policy)? {
                Ok(())
            } else {
                std::process::exit(1)
            }
        }
    }
}

fn edit_loop(device: &Device, order: &str, start: u64, count: u64) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    for n in start..start.saturating_add(count) {
        device.add_note(order, &format!("edit {n}"))?;
        writeln!(out, "ack {n}")?;
        out.flush()?;
    }
    Ok(())
}

fn parse_time(flag: &str, s: &str) -> Result<Timestamp> {
    let t = DateTime::parse_from_rfc3339(s).with_context(|| format!("--{flag} `{s}` is not an RFC 3339 time"))?;
    Ok(Timestamp::from_datetime(t.with_timezone(&Utc)))
}

fn event_from(args: &TransitionArgs) -> Result<Event> {
    let window = || -> Result<TimeWindow> {
        match (&args.window_start, &args.window_end) {
            (Some(a), Some(b)) => Ok(TimeWindow { start: parse_time("window-start", a)?, end: parse_time("window-end", b)? }),
            _ => bail!("`{}` needs --window-start and --window-end", args.event),
        }
    };
    let reason = || -> Result<String> { args.reason.clone().with_context(|| format!("`{}` needs --reason", args.event)) };
    Ok(match args.event.as_str() {
        "accept" => Event::Accept,
        "contact_customer" => Event::ContactCustomer { window: window()? },
        "depart" => Event::Depart,
        "arrive" => Event::Arrive,
        "start_work" => Event::StartWork,
        "request_signature" => Event::RequestSignature,
        "complete" => Event::Complete,
        "reschedule" => Event::Reschedule { reason: reason()?, window: window()? },
        "carry_to_workshop" => Event::CarryToWorkshop { reason: reason()? },
        "mark_unresolved" => Event::MarkUnresolved { reason: reason()? },
        "cancel" => Event::Cancel { reason: reason()? },
        other => bail!("unknown event `{other}`"),
    })
}

fn orders(device: &Device, cmd: OrdersCmd) -> Result<()> {
    match cmd {
        OrdersCmd::Import { file } => {
            let json = if file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())?
            } else {
                std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?
            };
            let ids = device.import_orders_json(&json)?;
            // A count and the first few ids: an import of 10,000 orders is not one 200 KB line.
            const SHOWN: usize = 5;
            let first: Vec<&str> = ids.iter().take(SHOWN).map(String::as_str).collect();
            let more = if ids.len() > SHOWN { format!(" and {} more", ids.len() - SHOWN) } else { String::new() };
            println!("imported {} order(s): {}{more}", ids.len(), first.join(", "));
        }
        OrdersCmd::List { status, sort, json } => {
            let statuses = status.iter().map(|s| Status::parse(s)).collect::<Result<Vec<_>, _>>()?;
            let sort = match sort {
                Sort::Sla => SortBy::SlaDeadline,
                Sort::Updated => SortBy::Updated,
            };
            let rows = device.list(&OrderFilter { statuses, sort })?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                demo::print_list(&rows);
            }
        }
        OrdersCmd::Show { id, json } => {
            let view = device.get(&id)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&view)?);
            } else {
                demo::print_order(&view);
            }
        }
        OrdersCmd::Transition(args) => {
            let event = event_from(&args)?;
            let fix = match (args.lat, args.lon) {
                (Some(lat), Some(lon)) => Some(GpsFix {
                    lat,
                    lon,
                    accuracy_m: args.accuracy,
                    source: match args.source {
                        Source::Gps => LocationSource::Gps,
                        Source::Network => LocationSource::Network,
                        Source::Fused => LocationSource::Fused,
                        Source::Manual => LocationSource::Manual,
                    },
                    mock: args.mock,
                }),
                _ => None,
            };
            let actor = if args.dispatcher { Actor::Dispatcher } else { Actor::Engineer };
            let view = device.transition(&args.id, event, actor, fix)?;
            println!("{} is now {}", view.order.id, view.order.status);
        }
        OrdersCmd::Note { id, text } => {
            let view = device.add_note(&id, &text)?;
            println!("{} has {} note(s)", view.order.id, view.order.notes.len());
        }
        OrdersCmd::Export { id, out } => {
            let bytes = device.document_bytes(&id)?;
            std::fs::write(&out, &bytes).with_context(|| format!("writing {}", out.display()))?;
            println!("wrote {} bytes to {}", bytes.len(), out.display());
        }
        OrdersCmd::Merge { file } => {
            let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let view = device.merge_document(&bytes)?;
            println!("merged {}: now {}", view.order.id, view.order.status);
        }
    }
    Ok(())
}
