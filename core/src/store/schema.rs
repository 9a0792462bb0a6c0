//! The device store's numbered migrations (run by the shared `crate::migrate`).

use rusqlite::Connection;

use super::Error;

/// Migration `i` (1-based) upgrades from version `i - 1` to `i`.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/001_init.sql"),
    include_str!("migrations/002_templates.sql"),
    include_str!("migrations/003_evidence.sql"),
    include_str!("migrations/004_receipts.sql"),
    include_str!("migrations/005_sync.sql"),
    include_str!("migrations/006_parts_help_profile.sql"),
    include_str!("migrations/007_journal_consents.sql"),
    include_str!("migrations/008_push_mark.sql"),
];

pub const CURRENT_VERSION: u32 = MIGRATIONS.len() as u32;

#[cfg(test)]
use crate::migrate::version;

/// Brings the schema to `CURRENT_VERSION`, or refuses a database written by newer code.
pub fn migrate(conn: &mut Connection) -> Result<(), Error> {
    match crate::migrate::run(conn, MIGRATIONS) {
        Ok(_) => Ok(()),
        Err(crate::migrate::Error::TooNew { found, supported }) => Err(Error::TooNew { found, supported }),
        Err(crate::migrate::Error::Sqlite(e)) => Err(Error::Sqlite(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema_of(conn: &Connection) -> Vec<String> {
        let mut st = conn.prepare("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name").unwrap();
        st.query_map([], |r| r.get(0)).unwrap().collect::<Result<_, _>>().unwrap()
    }

    #[test]
    fn stepwise_upgrade_equals_fresh_and_is_idempotent() {
        let mut fresh = Connection::open_in_memory().unwrap();
        migrate(&mut fresh).unwrap();
        migrate(&mut fresh).unwrap();
        assert_eq!(version(&fresh).unwrap(), CURRENT_VERSION);
        // Apply each step separately, as an old device upgrading over several releases would.
        let mut stepwise = Connection::open_in_memory().unwrap();
        for (i, sql) in MIGRATIONS.iter().enumerate() {
            stepwise.execute_batch(sql).unwrap();
            stepwise.pragma_update(None, "user_version", (i + 1) as u32).unwrap();
        }
        migrate(&mut stepwise).unwrap();
        assert_eq!(schema_of(&fresh), schema_of(&stepwise));
    }

    /// A version-1 database holding an order upgrades in place and keeps its data.
    #[test]
    fn v1_database_with_data_upgrades() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.sqlite3");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(MIGRATIONS[0]).unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
            conn.execute(
                "INSERT INTO orders (id, status, priority, customer, site, equipment, engineer_id, reported_at, updated_at) \
                 VALUES ('WO-OLD', 'accepted', 'normal', 'c', 's', 'e', 'eng', 1, 2)",
                [],
            )
            .unwrap();
        }
        let mut conn = Connection::open(&path).unwrap();
        migrate(&mut conn).unwrap();
        assert_eq!(version(&conn).unwrap(), CURRENT_VERSION);
        let status: String = conn.query_row("SELECT status FROM orders WHERE id = 'WO-OLD'", [], |r| r.get(0)).unwrap();
        assert_eq!(status, "accepted");
        let n: i64 = conn.query_row("SELECT COUNT(*) FROM templates", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 0);
    }

    #[test]
    fn newer_database_is_refused() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", CURRENT_VERSION + 1).unwrap();
        match migrate(&mut conn) {
            Err(Error::TooNew { found, supported }) => {
                assert_eq!(found, CURRENT_VERSION + 1);
                assert_eq!(supported, CURRENT_VERSION);
            }
            other => panic!("{other:?}"),
        }
    }
}
