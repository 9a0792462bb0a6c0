//! `onsite-server --data DIR` runs the sync server with its embedded SQLite.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

#[derive(Parser)]
#[command(name = "onsite-server", version, about = "The Onsite sync server (embedded SQLite + blob directory)")]
struct Args {
    /// Data directory: server.sqlite3, blobs/, uploads/, admin-token.
    #[arg(long, env = "ONSITE_DATA", default_value = "onsite-server-data")]
    data: PathBuf,
    /// Database: `sqlite://PATH` or `postgres://user@host:port/db`. Default: the embedded
    /// SQLite file DATA/server.sqlite3. Blobs and keys stay under DATA either way.
    #[arg(long, env = "ONSITE_DATABASE", hide_env_values = true)]
    database: Option<String>,
    /// Address to listen on.
    #[arg(long, env = "ONSITE_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Admin token (creates providers). Default: DATA/admin-token, created on first start.
    #[arg(long, env = "ONSITE_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Log filter (tracing EnvFilter syntax), e.g. `info,onsite_server=debug`.
    #[arg(long, env = "ONSITE_LOG", default_value = "info")]
    log: String,
    /// Logs as JSON lines.
    #[arg(long, env = "ONSITE_LOG_JSON")]
    log_json: bool,
}

fn main() {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if args.log_json {
        builder.json().init();
    } else {
        builder.init();
    }
    let mut config = onsite_server::Config::new(args.data);
    config.listen = args.listen;
    config.admin_token = args.admin_token;
    if let Some(url) = &args.database {
        match onsite_server::storage::open_url(url) {
            Ok(s) => config.storage = s,
            Err(e) => {
                eprintln!("onsite-server: --database {}: {e}", onsite_server::storage::redact(url));
                std::process::exit(2);
            }
        }
    }
    if let Err(e) = onsite_server::run(config) {
        eprintln!("onsite-server: {e}");
        std::process::exit(1);
    }
}
