//! `onsite-server` runs the sync server (embedded SQLite and blob files by default; PostgreSQL
//! and S3 with `--database` and `--blobs`). `onsite-server migrate` moves a deployment from
//! the embedded default to PostgreSQL + S3. Every flag has an environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "onsite-server", version, about = "The Onsite sync server (embedded SQLite + blob directory, or PostgreSQL + S3)")]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// Data directory: server.sqlite3, blobs/, uploads/, keys/, admin-token.
    #[arg(long, env = "ONSITE_DATA", default_value = "onsite-server-data", global = true)]
    data: PathBuf,
    /// Database: `sqlite://PATH` or `postgres://user@host:port/db`. Default: the embedded
    /// SQLite file DATA/server.sqlite3.
    #[arg(long, env = "ONSITE_DATABASE", hide_env_values = true)]
    database: Option<String>,
    /// Blob store: `file://DIR` or `s3://BUCKET?endpoint=URL&region=R&prefix=P` (credentials
    /// from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY). Default: files under DATA.
    #[arg(long, env = "ONSITE_BLOBS")]
    blobs: Option<String>,
    /// The key store directory (the log and time-authority keys). Default: DATA/keys. Every
    /// instance of one deployment must use the same keys.
    #[arg(long, env = "ONSITE_KEYS")]
    keys: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, env = "ONSITE_LISTEN", default_value = "127.0.0.1:8080", global = true)]
    listen: SocketAddr,
    /// Admin token (creates providers). Default: DATA/admin-token, created on first start.
    #[arg(long, env = "ONSITE_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Load balancers (comma-separated addresses) whose `X-Forwarded-For` names the client;
    /// from any other peer the header is ignored.
    #[arg(long, env = "ONSITE_TRUSTED_PROXIES", value_delimiter = ',')]
    trusted_proxy: Vec<std::net::IpAddr>,
    /// Change rows per order before the server compacts it into a snapshot.
    #[arg(long, env = "ONSITE_COMPACT_AFTER", default_value_t = onsite_server::service::COMPACT_AFTER)]
    compact_after: u64,
    /// Threads merging one sync request's pushes. 1 by default: on 2 vCPUs that share a core,
    /// 2 workers cut a large sync's wall time by 7% for 40% more CPU (ADR 0016).
    #[arg(long, env = "ONSITE_PUSH_WORKERS", default_value_t = onsite_server::service::DEFAULT_PUSH_WORKERS)]
    push_workers: usize,
    /// Witnesses each new checkpoint is submitted to, as `URL=VKEY` (repeatable,
    /// comma-separated in the variable): C2SP tlog-witness, ADR 0020.
    #[arg(long = "witness", env = "ONSITE_WITNESSES", value_delimiter = ',')]
    witnesses: Vec<String>,
    /// Key attestation at enrolment (ADR 0019): `off`, `record` or `require` for every
    /// provider, or `PROVIDER=POLICY` for one (repeatable, comma-separated in the variable).
    #[arg(long, env = "ONSITE_ATTESTATION_POLICY", value_delimiter = ',')]
    attestation_policy: Vec<String>,
    /// Apple app ids (`TEAMID.bundle.id`) whose App Attest keys are accepted.
    #[arg(long, env = "ONSITE_APPLE_APP_IDS", value_delimiter = ',')]
    apple_app_id: Vec<String>,
    /// Android package names whose attested keys are accepted (none given: any).
    #[arg(long, env = "ONSITE_ANDROID_PACKAGES", value_delimiter = ',')]
    android_package: Vec<String>,
    /// Google's attestation status list (JSON, as published), read at start: revoked keys.
    #[arg(long, env = "ONSITE_ATTESTATION_STATUS")]
    attestation_status: Option<PathBuf>,
    /// Most connections served at once (more wait in the kernel's backlog).
    #[arg(long, env = "ONSITE_MAX_CONNECTIONS", default_value_t = onsite_server::serve::MAX_CONNECTIONS)]
    max_connections: usize,
    /// Log filter (tracing EnvFilter syntax), e.g. `info,onsite_server=debug`.
    #[arg(long, env = "ONSITE_LOG", default_value = "info", global = true)]
    log: String,
    /// Logs as JSON lines.
    #[arg(long, env = "ONSITE_LOG_JSON", global = true)]
    log_json: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Copies an embedded deployment (SQLite + blob files) to PostgreSQL (+ S3), then verifies
    /// counts, row digests, every provider's log root and every blob's hash. Stop the server
    /// first. Safe to rerun after an interruption: nothing is duplicated.
    Migrate {
        /// The source database: `sqlite://PATH` (default: DATA/server.sqlite3).
        #[arg(long, env = "ONSITE_MIGRATE_FROM")]
        from: Option<String>,
        /// The destination: `postgres://user@host:port/db`.
        #[arg(long, env = "ONSITE_MIGRATE_TO", hide_env_values = true)]
        to: String,
        /// Where the blobs are now (default: files under DATA).
        #[arg(long, env = "ONSITE_MIGRATE_BLOBS_FROM")]
        blobs_from: Option<String>,
        /// Where the blobs go (`s3://...` or `file://DIR`); without it blobs are not copied.
        #[arg(long, env = "ONSITE_MIGRATE_BLOBS_TO")]
        blobs_to: Option<String>,
    },
    /// Runs a C2SP tlog-witness (POST /add-checkpoint) for the given logs, with its own data
    /// directory (--data) and key; prints its verifier key for the logs' `--witness`.
    Witness {
        /// The witness's name (a schema-less URL by convention).
        #[arg(long, env = "ONSITE_WITNESS_NAME", default_value = "onsite-witness")]
        name: String,
        /// Verifier keys of the logs to witness (GET /v1/log/{provider}/key on the log).
        #[arg(long = "log-key", env = "ONSITE_WITNESS_LOGS", value_delimiter = ',', required = true)]
        logs: Vec<String>,
    },
}

fn fail(what: &str, e: impl std::fmt::Display) -> ! {
    eprintln!("onsite-server: {what}: {e}");
    std::process::exit(2);
}

fn blobs(url: Option<&str>, data: &std::path::Path) -> onsite_server::blobs::Blobs {
    let opened = match url {
        Some(u) => onsite_server::blobs::Blobs::open_url(u),
        None => onsite_server::blobs::Blobs::open(data),
    };
    opened.unwrap_or_else(|e| fail("blobs", e))
}

fn main() {
    let args = Args::parse();
    // automerge logs an ERROR whenever a loaded chunk depends on history it lacks, which is
    // a push whose whole document the server checks first (`document::apply_pushed`): silenced unless
    // the filter names automerge itself.
    let directives = if args.log.contains("automerge") { args.log.clone() } else { format!("{},automerge=off", args.log) };
    let filter = tracing_subscriber::EnvFilter::try_new(&directives).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,automerge=off"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if args.log_json {
        builder.json().init();
    } else {
        builder.init();
    }
    if let Some(Command::Witness { name, logs }) = &args.command {
        let config = onsite_server::witness::WitnessConfig { data: args.data.clone(), listen: args.listen, name: name.clone(), logs: logs.clone() };
        if let Err(e) = onsite_server::witness::run(&config) {
            fail("witness", e);
        }
        return;
    }
    if let Some(Command::Migrate { from, to, blobs_from, blobs_to }) = &args.command {
        let from = match from.as_deref().map(|f| f.strip_prefix("sqlite://").map(PathBuf::from)) {
            None => args.data.join(onsite_server::DB_FILE),
            Some(Some(p)) => p,
            Some(None) => fail("--from", "the source must be sqlite://PATH"),
        };
        let src = blobs(blobs_from.as_deref(), &args.data);
        let dst = blobs_to.as_deref().map(|u| blobs(Some(u), &args.data));
        match onsite_server::migrate::run(&from, to, Some(&src), dst.as_ref()) {
            Ok(r) => {
                let rows: u64 = r.tables.iter().map(|t| t.1).sum();
                let new: u64 = r.tables.iter().map(|t| t.2).sum();
                for (t, n, i) in &r.tables {
                    println!("table {t}: {n} rows ({i} new)");
                }
                for (p, size, root) in &r.logs {
                    println!("log {p}: {size} leaves, root {root} (equal)");
                }
                println!(
                    "migrated {rows} rows ({new} new) in {} tables, {} blobs copied, {} blobs verified; counts, row digests and log roots match",
                    r.tables.len(),
                    r.blobs_copied,
                    r.blobs_present
                );
            }
            Err(e) => fail("migrate", e),
        }
        return;
    }
    let mut config = onsite_server::Config::new(&args.data);
    config.attestation = attestation_config(&args).unwrap_or_else(|e| fail("attestation", e));
    config.listen = args.listen;
    config.admin_token = args.admin_token;
    config.compact_after = args.compact_after;
    config.push_workers = args.push_workers;
    config.limits.max_connections = args.max_connections;
    config.keys = args.keys;
    config.trusted_proxies = args.trusted_proxy;
    for w in &args.witnesses {
        match onsite_server::service::WitnessEndpoint::parse(w) {
            Ok(ep) => config.witnesses.push(ep),
            Err(e) => fail(&format!("--witness {w}"), e),
        }
    }
    if let Some(url) = &args.database {
        match onsite_server::storage::open_url(url) {
            Ok(s) => config.storage = s,
            Err(e) => fail(&format!("--database {}", onsite_server::storage::redact(url)), e),
        }
    }
    if let Some(url) = &args.blobs {
        config.blobs = Some(onsite_server::blobs::open_store(url).unwrap_or_else(|e| fail("--blobs", e)));
    }
    if let Err(e) = onsite_server::run(config) {
        eprintln!("onsite-server: {e}");
        std::process::exit(1);
    }
}

fn attestation_config(args: &Args) -> Result<onsite_server::service::attestation::AttestationConfig, String> {
    let mut c = onsite_server::service::attestation::AttestationConfig {
        apple_app_ids: args.apple_app_id.clone(),
        android_packages: args.android_package.clone(),
        ..Default::default()
    };
    for p in &args.attestation_policy {
        match p.split_once('=') {
            Some((provider, policy)) => {
                c.per_provider.insert(provider.trim().to_string(), policy.trim().parse()?);
            }
            None => c.default_policy = p.trim().parse()?,
        }
    }
    if let Some(path) = &args.attestation_status {
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        c.trust = c.trust.with_status_list(&bytes).map_err(|e| e.to_string())?;
    }
    Ok(c)
}
