//! The database encrypted with SQLCipher (docs/adr/0018): keying a connection, telling a
//! wrong key from a damaged file, and migrating a plain store in place.
//!
//! Migration (crash-safe): the plain file is checkpointed out of WAL, exported into
//! `onsite.sqlite3.encrypting` with `sqlcipher_export`, which is then checked (integrity,
//! schema version, every table's row count), synced, and renamed over the plain file. Until
//! that rename the plain file is untouched and authoritative (a leftover temp file is
//! discarded and the export redone); after it, the encrypted one is.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, ErrorCode, OpenFlags};

use super::Error;
use crate::crypt::{KeyError, StoreKey};

/// Beside the database: the key's public fingerprint (`StoreKey::id`).
pub const KEY_ID_FILE: &str = "onsite.key-id";
const PLAIN_HEADER: &[u8; 16] = b"SQLite format 3\0";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FileState {
    /// No database yet (or an empty file).
    Absent,
    Plain,
    Encrypted,
}

pub(super) fn state(path: &Path) -> Result<FileState, Error> {
    let mut head = [0u8; 16];
    let n = match File::open(path) {
        Ok(mut f) => read_up_to(&mut f, &mut head).map_err(|e| Error::Open { path: path.to_path_buf(), reason: e.to_string() })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(FileState::Absent),
        Err(e) => return Err(Error::Open { path: path.to_path_buf(), reason: e.to_string() }),
    };
    Ok(match n {
        0 => FileState::Absent,
        16 if &head == PLAIN_HEADER => FileState::Plain,
        _ => FileState::Encrypted,
    })
}

fn read_up_to(f: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// The page authentication SQLCipher uses here: HMAC-SHA256, whose compression function runs
/// on the SHA extensions of current x86 and ARMv8 cores (SQLCipher 4's default, HMAC-SHA512,
/// has none: it was ~80% of the encryption's cost on the edit path; ADR 0018).
const CIPHER_SETTINGS: &str = "cipher_hmac_algorithm = HMAC_SHA256; PRAGMA {schema}cipher_kdf_algorithm = PBKDF2_HMAC_SHA256;";

fn settings(schema: &str) -> String {
    format!("PRAGMA {schema}{}", CIPHER_SETTINGS.replace("{schema}", schema))
}

/// Opens a connection to the database at `path`: every connection of the process (device
/// and server) opens here, so SQLite is initialised once, to the end, before the first one.
///
/// SQLCipher registers its crypto provider in SQLite's extra-init hook, which runs after
/// `sqlite3_initialize` has marked SQLite initialised: a thread opening a connection in
/// that window went ahead without a provider and its `PRAGMA key` failed, so a store would
/// not open when two were opened at once as the process started
/// (tests/sqlcipher_first_use.rs).
pub fn connect(path: &Path, flags: OpenFlags) -> rusqlite::Result<Connection> {
    initialize()?;
    Connection::open_with_flags(path, flags)
}

fn initialize() -> rusqlite::Result<()> {
    static INIT: std::sync::OnceLock<std::result::Result<(), i32>> = std::sync::OnceLock::new();
    let rc = *INIT.get_or_init(|| {
        // SAFETY: `sqlite3_initialize` takes no arguments and may be called at any time; it
        // returns after the extra-init hook when this thread is the one initialising.
        let rc = unsafe { rusqlite::ffi::sqlite3_initialize() };
        if rc != rusqlite::ffi::SQLITE_OK {
            return Err(rc);
        }
        // SQLCipher's own log (stderr) would repeat what the typed errors already say. A
        // process-wide setting, so set once here rather than raced on every open.
        match Connection::open_in_memory().and_then(|c| c.execute_batch("PRAGMA cipher_log_level = NONE")) {
            Ok(()) => Ok(()),
            Err(e) => Err(e.sqlite_error().map_or(rusqlite::ffi::SQLITE_ERROR, |e| e.extended_code)),
        }
    });
    rc.map_err(|code| rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), Some("SQLite did not initialise".into())))
}

/// Keys a fresh connection (opened by [`connect`]); must be its first statement.
pub(super) fn apply_key(conn: &Connection, key: &StoreKey) -> rusqlite::Result<()> {
    // The pragma cannot take a bound parameter; the literal is hex digits only.
    conn.execute_batch(&format!("PRAGMA key = \"{}\"; {}", key.sqlcipher_pragma(), settings("")))
}

/// Proves the key opens the file: SQLCipher only fails on the first page read. A failure is
/// a wrong key unless the key fingerprint beside the database says the key is right.
pub(super) fn check_key(conn: &Connection, path: &Path, key: &StoreKey) -> Result<(), Error> {
    match conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get::<_, i64>(0)) {
        Ok(_) => Ok(()),
        Err(e) if e.sqlite_error_code() == Some(ErrorCode::NotADatabase) => {
            if recorded_id(path).as_deref() == Some(key.id().as_str()) {
                Err(Error::Corrupt { path: path.to_path_buf(), reason: format!("the right key ({}) does not decrypt it", key.id()) })
            } else {
                Err(KeyError::Wrong { path: path.to_path_buf() }.into())
            }
        }
        Err(e) => Err(Error::Open { path: path.to_path_buf(), reason: e.to_string() }),
    }
}

fn key_id_path(db: &Path) -> PathBuf {
    db.with_file_name(KEY_ID_FILE)
}

fn recorded_id(db: &Path) -> Option<String> {
    std::fs::read_to_string(key_id_path(db)).ok().map(|s| s.trim().to_string())
}

/// Refuses a key whose fingerprint differs from the recorded one, before touching the file.
pub(super) fn precheck(db: &Path, key: &StoreKey) -> Result<(), Error> {
    match recorded_id(db) {
        Some(id) if id != key.id() => Err(KeyError::Wrong { path: db.to_path_buf() }.into()),
        _ => Ok(()),
    }
}

/// Records the key's fingerprint beside the database (atomically).
pub(super) fn record_id(db: &Path, key: &StoreKey) -> Result<(), Error> {
    let path = key_id_path(db);
    if recorded_id(db).as_deref() == Some(key.id().as_str()) {
        return Ok(());
    }
    let tmp = path.with_extension("tmp");
    let io = |e: std::io::Error| Error::Open { path: path.clone(), reason: e.to_string() };
    std::fs::write(&tmp, format!("{}\n", key.id())).map_err(io)?;
    File::open(&tmp).and_then(|f| f.sync_all()).map_err(io)?;
    std::fs::rename(&tmp, &path).map_err(io)?;
    sync_dir(&path);
    Ok(())
}

fn sync_dir(path: &Path) {
    if let Some(Ok(d)) = path.parent().map(File::open) {
        let _ = d.sync_all();
    }
}

fn temp_path(db: &Path) -> PathBuf {
    let mut name = db.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".encrypting");
    db.with_file_name(name)
}

fn sidecar(db: &Path, suffix: &str) -> PathBuf {
    let mut name = db.as_os_str().to_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

/// Row counts of every table, the schema version, and SQLite's verdict on the file.
fn census(conn: &Connection) -> rusqlite::Result<(i64, Vec<(String, i64)>)> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut counts = Vec::with_capacity(tables.len());
    for t in tables {
        let n: i64 = conn.query_row(&format!("SELECT count(*) FROM \"{}\"", t.replace('"', "\"\"")), [], |r| r.get(0))?;
        counts.push((t, n));
    }
    Ok((version, counts))
}

/// Encrypts the plain database at `db` in place (see the module's comment).
pub(super) fn migrate_plain(db: &Path, key: &StoreKey) -> Result<(), Error> {
    let fail = |reason: String| Error::Open { path: db.to_path_buf(), reason: format!("encrypting the store: {reason}") };
    let sql = |e: rusqlite::Error| fail(e.to_string());
    let tmp = temp_path(db);
    for leftover in [tmp.clone(), sidecar(&tmp, "-journal")] {
        if leftover.exists() {
            std::fs::remove_file(&leftover).map_err(|e| fail(e.to_string()))?;
        }
    }
    let plain_census = {
        // CREATE: the attached database inherits the flags, and it is created.
        let conn = connect(db, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE).map_err(sql)?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(sql)?;
        // Everything into the main file, and no WAL left behind to be replayed onto the
        // encrypted file that takes this name.
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).map_err(sql)?;
        let mode: String = conn.query_row("PRAGMA journal_mode = DELETE", [], |r| r.get(0)).map_err(sql)?;
        if !mode.eq_ignore_ascii_case("delete") {
            return Err(fail(format!("another process holds the store open (journal mode stays {mode})")));
        }
        let census = census(&conn).map_err(sql)?;
        let path = tmp.to_str().ok_or_else(|| fail("the data directory's path is not UTF-8".into()))?;
        conn.execute("ATTACH DATABASE ?1 AS encrypted KEY ?2", [path, &key.sqlcipher_pragma()]).map_err(sql)?;
        conn.execute_batch(&settings("encrypted.")).map_err(sql)?;
        conn.query_row("SELECT sqlcipher_export('encrypted')", [], |_| Ok(())).map_err(sql)?;
        conn.execute_batch(&format!("PRAGMA encrypted.user_version = {}; DETACH DATABASE encrypted;", census.0)).map_err(sql)?;
        census
    };
    {
        let conn = connect(&tmp, OpenFlags::SQLITE_OPEN_READ_WRITE).map_err(sql)?;
        apply_key(&conn, key).map_err(sql)?;
        let verdict: String = conn.query_row("PRAGMA quick_check", [], |r| r.get(0)).map_err(sql)?;
        if verdict != "ok" {
            return Err(fail(format!("the encrypted copy fails its check: {verdict}")));
        }
        if census(&conn).map_err(sql)? != plain_census {
            return Err(fail("the encrypted copy's rows differ from the plain store's".into()));
        }
    }
    File::open(&tmp).and_then(|f| f.sync_all()).map_err(|e| fail(e.to_string()))?;
    for stale in [sidecar(db, "-wal"), sidecar(db, "-shm")] {
        if stale.exists() {
            std::fs::remove_file(&stale).map_err(|e| fail(e.to_string()))?;
        }
    }
    record_id(db, key)?;
    std::fs::rename(&tmp, db).map_err(|e| fail(e.to_string()))?;
    sync_dir(db);
    tracing::info!(path = %db.display(), tables = plain_census.1.len(), "the store is now encrypted");
    Ok(())
}

/// A raw connection to a store's database, keyed when `key` is given (tools and tests that
/// inspect or tamper with the file; the app goes through [`super::Store`]).
pub fn open_connection(db: &Path, key: Option<&StoreKey>) -> Result<Connection, Error> {
    let conn = connect(db, OpenFlags::default())?;
    if let Some(k) = key {
        apply_key(&conn, k)?;
        check_key(&conn, db, k)?;
    }
    Ok(conn)
}
