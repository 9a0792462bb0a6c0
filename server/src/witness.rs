//! `onsite-server witness`: a C2SP tlog-witness (ADR 0020). It holds, per log origin it
//! trusts, the latest checkpoint it cosigned, and cosigns a new one only if a consistency
//! proof shows it extends that one; the check and the update are one transaction, so two
//! racing requests never roll it back. Refused requests from a trusted log are kept, as they
//! may be evidence of a fork.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use onsite_core::evidence::log::note::Verifier;
use onsite_core::evidence::log::witness::{decide, AddCheckpoint, Cosigner, Refusal};
use rusqlite::{params, Connection, OptionalExtension};

use crate::keys::KeyStore;

const MIGRATIONS: &[&str] = &["CREATE TABLE latest (
        origin TEXT PRIMARY KEY,
        size   INTEGER NOT NULL,
        root   BLOB NOT NULL,
        note   TEXT NOT NULL,
        at     INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE refused (
        at     INTEGER NOT NULL,
        origin TEXT NOT NULL,
        status INTEGER NOT NULL,
        reason TEXT NOT NULL,
        body   TEXT NOT NULL
    );"];
/// The witness's database file in its data directory.
pub const WITNESS_DB: &str = "witness.sqlite3";
/// The key store's name for the witness's Ed25519 seed.
pub const WITNESS_KEY: &str = "witness-key";
/// Requests larger than this are refused unread.
const MAX_REQUEST: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("witness data {path}: {reason}")]
    Data { path: PathBuf, reason: String },
    #[error("a trusted log key: {0}")]
    LogKey(String),
    #[error("cannot listen on {addr}: {reason}")]
    Listen { addr: SocketAddr, reason: String },
}

pub struct WitnessConfig {
    pub data: PathBuf,
    pub listen: SocketAddr,
    /// The witness's name (a schema-less URL by convention).
    pub name: String,
    /// Verifier keys of the logs it witnesses (their names are the origins).
    pub logs: Vec<String>,
}

pub struct Witness {
    cosigner: Cosigner,
    logs: Vec<Verifier>,
    db: Mutex<Connection>,
}

fn now_s() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl Witness {
    pub fn open(config: &WitnessConfig) -> Result<Self, Error> {
        let data_err = |reason: String| Error::Data { path: config.data.clone(), reason };
        std::fs::create_dir_all(&config.data).map_err(|e| data_err(e.to_string()))?;
        let keys = crate::keys::FileKeys::new(config.data.join(crate::KEYS_DIR));
        let seed = match keys.get(WITNESS_KEY).map_err(|e| data_err(e.to_string()))? {
            Some(s) => s,
            None => {
                let s: [u8; 32] = rand::random();
                keys.create(WITNESS_KEY, &s).map_err(|e| data_err(e.to_string()))?;
                s.to_vec()
            }
        };
        let cosigner = Cosigner::from_seed(&config.name, &seed).map_err(|e| data_err(e.to_string()))?;
        let logs = config.logs.iter().map(|k| Verifier::parse(k.trim()).map_err(|e| Error::LogKey(format!("{k}: {e}")))).collect::<Result<_, _>>()?;
        let mut db = onsite_core::store::connect(&config.data.join(WITNESS_DB), rusqlite::OpenFlags::default()).map_err(|e| data_err(e.to_string()))?;
        db.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;").map_err(|e| data_err(e.to_string()))?;
        onsite_core::migrate::run(&mut db, MIGRATIONS).map_err(|e| data_err(e.to_string()))?;
        Ok(Self { cosigner, logs, db: Mutex::new(db) })
    }

    /// This witness's cosignature verifier key (type 0x04).
    pub fn verifier_key(&self) -> String {
        self.cosigner.verifier_key()
    }

    /// The latest checkpoint cosigned for `origin`: (size, note).
    pub fn latest(&self, origin: &str) -> Option<(u64, String)> {
        let db = self.db.lock().unwrap_or_else(|p| p.into_inner());
        db.query_row("SELECT size, note FROM latest WHERE origin = ?1", [origin], |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?))).optional().ok().flatten()
    }

    /// Refused requests kept (origin, status, reason).
    pub fn refused(&self) -> Vec<(String, u16, String)> {
        let db = self.db.lock().unwrap_or_else(|p| p.into_inner());
        let Ok(mut st) = db.prepare("SELECT origin, status, reason FROM refused ORDER BY rowid") else { return Vec::new() };
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).map(|rows| rows.flatten().collect()).unwrap_or_default()
    }

    /// add-checkpoint: the cosignature line, or the refusal's status, content type and body.
    pub fn add_checkpoint(&self, body: &str) -> Result<String, (StatusCode, &'static str, String)> {
        let req = AddCheckpoint::parse(body).map_err(|e| (StatusCode::BAD_REQUEST, "text/plain", e.to_string()))?;
        let mut db = self.db.lock().unwrap_or_else(|p| p.into_inner());
        let internal = |e: rusqlite::Error| (StatusCode::INTERNAL_SERVER_ERROR, "text/plain", e.to_string());
        let tx = db.transaction().map_err(internal)?;
        let latest = |origin: &str| -> Option<(u64, [u8; 32])> {
            tx.query_row("SELECT size, root FROM latest WHERE origin = ?1", [origin], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)))
                .optional()
                .ok()
                .flatten()
                .and_then(|(s, root)| Some((s as u64, root.try_into().ok()?)))
        };
        let key = |origin: &str| self.logs.iter().find(|v| v.name == origin).cloned();
        match decide(&req, key, latest) {
            Ok(cp) => {
                tx.execute(
                    "INSERT OR REPLACE INTO latest (origin, size, root, note, at) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![cp.origin, cp.size as i64, cp.root.as_slice(), req.checkpoint, now_s() as i64],
                )
                .map_err(internal)?;
                tx.commit().map_err(internal)?;
                Ok(self.cosigner.cosign(&cp.text(), now_s()))
            }
            Err(refusal) => {
                let (status, content_type, text) = match &refusal {
                    Refusal::BadRequest(r) => (StatusCode::BAD_REQUEST, "text/plain", r.clone()),
                    Refusal::Forbidden => (StatusCode::FORBIDDEN, "text/plain", refusal.to_string()),
                    Refusal::UnknownLog(_) => (StatusCode::NOT_FOUND, "text/plain", refusal.to_string()),
                    Refusal::Conflict(size) => (StatusCode::CONFLICT, "text/x.tlog.size", format!("{size}\n")),
                    Refusal::BadProof => (StatusCode::UNPROCESSABLE_ENTITY, "text/plain", refusal.to_string()),
                };
                // A trusted log's signed checkpoint that does not fit is kept as evidence.
                if matches!(refusal, Refusal::Conflict(_) | Refusal::BadProof) {
                    let origin = req.checkpoint.split('\n').next().unwrap_or_default();
                    tx.execute(
                        "INSERT INTO refused (at, origin, status, reason, body) VALUES (?1, ?2, ?3, ?4, ?5)",
                        params![now_s() as i64, origin, status.as_u16(), refusal.to_string(), body],
                    )
                    .map_err(internal)?;
                    tx.commit().map_err(internal)?;
                }
                Err((status, content_type, text))
            }
        }
    }
}

async fn add_checkpoint(State(w): State<Arc<Witness>>, body: Bytes) -> Response {
    if body.len() > MAX_REQUEST {
        return (StatusCode::PAYLOAD_TOO_LARGE, "request too large").into_response();
    }
    let Ok(text) = String::from_utf8(body.to_vec()) else { return (StatusCode::BAD_REQUEST, "not UTF-8").into_response() };
    match tokio::task::spawn_blocking(move || w.add_checkpoint(&text)).await {
        Ok(Ok(line)) => ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], line).into_response(),
        Ok(Err((status, content_type, text))) => (status, [(header::CONTENT_TYPE, content_type)], text).into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "the witness failed").into_response(),
    }
}

async fn key(State(w): State<Arc<Witness>>) -> String {
    format!("{}\n", w.verifier_key())
}

pub fn router(w: Arc<Witness>) -> Router {
    Router::new().route("/add-checkpoint", post(add_checkpoint)).route("/key", get(key)).with_state(w)
}

/// A witness running on a background thread (tests, the demo).
pub struct RunningWitness {
    pub addr: SocketAddr,
    pub witness: Arc<Witness>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RunningWitness {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for RunningWitness {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub fn spawn(config: &WitnessConfig) -> Result<RunningWitness, Error> {
    let witness = Arc::new(Witness::open(config)?);
    let listen_err = |e: std::io::Error| Error::Listen { addr: config.listen, reason: e.to_string() };
    let std_listener = std::net::TcpListener::bind(config.listen).map_err(listen_err)?;
    std_listener.set_nonblocking(true).map_err(listen_err)?;
    let addr = std_listener.local_addr().map_err(listen_err)?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let app = router(witness.clone());
    let thread = std::thread::Builder::new()
        .name("onsite-witness".into())
        .spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build() else { return };
            rt.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(std_listener) else { return };
                let _ = crate::serve::serve(listener, app, crate::serve::Limits::default(), async move {
                    let _ = rx.await;
                })
                .await;
            });
        })
        .map_err(listen_err)?;
    Ok(RunningWitness { addr, witness, shutdown: Some(tx), thread: Some(thread) })
}

/// Runs the witness until stopped (the binary): prints its address and verifier key.
pub fn run(config: &WitnessConfig) -> Result<(), Error> {
    let running = spawn(config)?;
    println!("onsite-server witness listening on {}", running.url());
    println!("witness key {}", running.witness.verifier_key());
    loop {
        std::thread::park();
    }
}
