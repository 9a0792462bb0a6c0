//! `onsite-server`: the sync server. HTTP (axum) in `routes`, behaviour in `service`,
//! persistence behind the `storage::Storage` trait (embedded SQLite by default) and blob
//! files. Start it with [`run`] (blocking, the binary) or [`spawn`] (a background thread,
//! for tests, benchmarks and the demo).

pub mod blobs;
pub mod client;
pub mod console;
pub mod http;
pub mod keys;
pub mod metrics;
pub mod migrate;
pub mod notify;
pub mod openapi;
pub mod routes;
pub mod serve;
pub mod service;
pub mod storage;
pub mod witness;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use onsite_core::clock::{Clock, SystemClock};

pub use service::Service;

pub const DB_FILE: &str = "server.sqlite3";
pub const ADMIN_TOKEN_FILE: &str = "admin-token";
/// The server's private keys, one 0600 file each (see `keys`).
pub const KEYS_DIR: &str = "keys";

#[derive(Clone)]
pub struct Config {
    pub data: PathBuf,
    pub listen: SocketAddr,
    /// The admin token (creates providers). `None`: read `DATA/admin-token`, creating it.
    pub admin_token: Option<String>,
    pub clock: Arc<dyn Clock>,
    /// Change rows per order before the server compacts it into its snapshot.
    pub compact_after: u64,
    /// Threads merging one sync request's pushes (`--push-workers`; 1 by default).
    pub push_workers: usize,
    /// Connection cap and timeouts of the accept loop.
    pub limits: serve::Limits,
    /// The storage backend. `None`: the embedded SQLite file `DATA/server.sqlite3`.
    pub storage: Option<Arc<dyn storage::Storage>>,
    /// Where blob bytes live. `None`: files under `DATA` (`DATA/blobs`, `DATA/uploads`).
    pub blobs: Option<Arc<dyn blobs::ObjectStore>>,
    /// The key store directory. `None`: `DATA/keys`. Instances of one deployment share it.
    pub keys: Option<PathBuf>,
    /// Load balancers whose `X-Forwarded-For` names the client (for the credential limiter).
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Witnesses each new checkpoint is submitted to (ADR 0020).
    pub witnesses: Vec<service::WitnessEndpoint>,
    /// Key attestation at enrolment: policies, accepted apps, pinned roots, status list.
    pub attestation: service::attestation::AttestationConfig,
}

impl Config {
    pub fn new(data: impl Into<PathBuf>) -> Self {
        Self {
            data: data.into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin_token: None,
            clock: SystemClock::shared(),
            compact_after: service::COMPACT_AFTER,
            push_workers: service::DEFAULT_PUSH_WORKERS,
            limits: serve::Limits::default(),
            storage: None,
            blobs: None,
            keys: None,
            trusted_proxies: Vec::new(),
            witnesses: Vec::new(),
            attestation: Default::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot use the data directory {path}: {reason}")]
    Data { path: PathBuf, reason: String },
    #[error(transparent)]
    Storage(#[from] storage::Error),
    #[error(transparent)]
    Service(#[from] service::Error),
    #[error("cannot listen on {addr}: {reason}")]
    Listen { addr: SocketAddr, reason: String },
}

/// Reads or creates the admin token file (mode 0600).
fn admin_token(config: &Config) -> Result<String, Error> {
    if let Some(t) = &config.admin_token {
        return Ok(t.clone());
    }
    let path = config.data.join(ADMIN_TOKEN_FILE);
    if let Ok(t) = std::fs::read_to_string(&path) {
        return Ok(t.trim().to_string());
    }
    let mut b = [0u8; 24];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut b);
    let token = format!("adm_{}", onsite_core::hash::hex(&b));
    let data_err = |e: std::io::Error| Error::Data { path: path.clone(), reason: e.to_string() };
    std::fs::write(&path, &token).map_err(data_err)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(data_err)?;
    }
    Ok(token)
}

/// Opens storage and keys in `config.data`.
pub fn open(config: &Config) -> Result<Arc<Service>, Error> {
    blobs::private_dir(&config.data).map_err(|e| Error::Data { path: config.data.clone(), reason: e.to_string() })?;
    let storage: Arc<dyn storage::Storage> = match &config.storage {
        Some(s) => s.clone(),
        None => Arc::new(storage::SqliteStorage::open(&config.data.join(DB_FILE))?),
    };
    let keys = keys::FileKeys::new(config.keys.clone().unwrap_or_else(|| config.data.join(KEYS_DIR)));
    let blobs = match &config.blobs {
        Some(store) => blobs::Blobs::new(store.clone()),
        None => blobs::Blobs::open(&config.data),
    }
    .map_err(|e| Error::Data { path: config.data.clone(), reason: e.to_string() })?;
    let token = admin_token(config)?;
    let service = Arc::new(
        Service::new(storage, &keys, blobs, config.clock.clone(), &token)?
            .with_compact_after(config.compact_after)
            .with_push_workers(config.push_workers)
            .with_attestation(config.attestation.clone())
            .with_trusted_proxies(config.trusted_proxies.clone()),
    );
    for w in &config.witnesses {
        service.add_witness(w.clone());
    }
    Ok(service)
}

/// A server running on a background thread; dropping it (or [`Running::stop`]) shuts it down.
pub struct Running {
    pub addr: SocketAddr,
    pub service: Arc<Service>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn stop(mut self) {
        self.shutdown_now();
    }

    fn shutdown_now(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shutdown_now();
    }
}

/// Starts the server on a background thread with its own runtime.
pub fn spawn(config: Config) -> Result<Running, Error> {
    let service = open(&config)?;
    let std_listener = std::net::TcpListener::bind(config.listen).map_err(|e| Error::Listen { addr: config.listen, reason: e.to_string() })?;
    std_listener.set_nonblocking(true).map_err(|e| Error::Listen { addr: config.listen, reason: e.to_string() })?;
    let addr = std_listener.local_addr().map_err(|e| Error::Listen { addr: config.listen, reason: e.to_string() })?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let app = routes::router(service.clone());
    let limits = config.limits;
    let drain = service.clone();
    let thread = std::thread::Builder::new()
        .name("onsite-server".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!(error = %e, "cannot start the runtime");
                    return;
                }
            };
            rt.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(std_listener) else { return };
                let _ = serve::serve(listener, app, limits, async move {
                    let _ = rx.await;
                    drain.notifier().close();
                })
                .await;
            });
        })
        .map_err(|e| Error::Listen { addr, reason: e.to_string() })?;
    Ok(Running { addr, service, shutdown: Some(tx), thread: Some(thread) })
}

/// Ctrl-C, or SIGTERM on Unix (a service manager's stop).
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// Runs the server until Ctrl-C / SIGTERM (the binary).
pub fn run(config: Config) -> Result<(), Error> {
    let service = open(&config)?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| Error::Listen { addr: config.listen, reason: e.to_string() })?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(config.listen).await.map_err(|e| Error::Listen { addr: config.listen, reason: e.to_string() })?;
        let addr = listener.local_addr().map_err(|e| Error::Listen { addr: config.listen, reason: e.to_string() })?;
        tracing::info!(%addr, data = %config.data.display(), "onsite-server listening");
        // The one line scripts wait for.
        println!("onsite-server listening on http://{addr}");
        let app = routes::router(service.clone());
        serve::serve(listener, app, config.limits, async move {
            shutdown_signal().await;
            tracing::info!("shutting down: draining requests in flight, answering long-polls now");
            service.notifier().close();
        })
        .await
        .map_err(|e| Error::Listen { addr, reason: e.to_string() })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instances_starting_together_on_one_key_directory_share_the_keys() {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys");
        let services: Vec<Arc<Service>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|i| {
                    let mut config = Config::new(dir.path().join(format!("i{i}")));
                    config.keys = Some(keys.clone());
                    config.admin_token = Some("adm".into());
                    s.spawn(move || open(&config).unwrap())
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for s in &services {
            assert_eq!(s.log_key(), services[0].log_key(), "one log key for every instance");
            assert_eq!(s.time_authority_key(), services[0].time_authority_key());
        }
    }
}
