//! The SQLite migration runner the device store and the embedded server share: numbered
//! migrations applied in order under `PRAGMA user_version`, all in one IMMEDIATE
//! transaction, and a database written by newer code refused (never downgraded).

use rusqlite::{Connection, TransactionBehavior};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the database has schema version {found}, newer than this code supports ({supported})")]
    TooNew { found: u32, supported: u32 },
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
}

pub fn version(conn: &Connection) -> rusqlite::Result<u32> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
}

/// Brings the schema to `migrations.len()`: migration `i` (1-based) upgrades from version
/// `i - 1` to `i`. Returns the version found before.
pub fn run(conn: &mut Connection, migrations: &[&str]) -> Result<u32, Error> {
    let supported = migrations.len() as u32;
    let found = version(conn)?;
    if found > supported {
        return Err(Error::TooNew { found, supported });
    }
    if found == supported {
        return Ok(found);
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    // Re-read inside the write lock: another process may have migrated meanwhile.
    let found = version(&tx)?;
    if found > supported {
        return Err(Error::TooNew { found, supported });
    }
    for (i, sql) in migrations.iter().enumerate().skip(found as usize) {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as u32)?;
    }
    tx.commit()?;
    Ok(found)
}
