//! The PostgreSQL backend against the storage conformance suite, one fresh database per
//! check. Needs a server: `ONSITE_TEST_PG=postgres://user@host:port/postgres` (the `postgres`
//! suite of `scripts/test` starts one with `scripts/pg-cluster`); without it these tests are
//! ignored by a plain `cargo test` and run with `-- --ignored`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use onsite_server::storage::PostgresStorage;

/// A database created for one test and dropped after it.
struct TempDatabase {
    admin: String,
    name: String,
}

impl TempDatabase {
    fn new() -> (Self, String) {
        let admin = std::env::var("ONSITE_TEST_PG").expect("ONSITE_TEST_PG names the PostgreSQL server to test against");
        let name = format!("onsite_t_{}", onsite_core::hash::hex(&rand_bytes()));
        let mut c = postgres::Client::connect(&admin, postgres::NoTls).unwrap();
        c.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
        let url = match admin.rsplit_once('/') {
            Some((base, _)) => format!("{base}/{name}"),
            None => panic!("ONSITE_TEST_PG must end in /DATABASE"),
        };
        (Self { admin, name }, url)
    }
}

impl Drop for TempDatabase {
    fn drop(&mut self) {
        if let Ok(mut c) = postgres::Client::connect(&self.admin, postgres::NoTls) {
            let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
        }
    }
}

fn rand_bytes() -> [u8; 8] {
    let n = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let t = std::thread::current().id();
    let h = onsite_core::hash::sha256_hex(format!("{n}{t:?}").as_bytes());
    let mut out = [0u8; 8];
    out.copy_from_slice(&onsite_core::hash::unhex(&h[..16]).unwrap());
    out
}

fn fresh() -> (TempDatabase, PostgresStorage) {
    let (db, url) = TempDatabase::new();
    let s = PostgresStorage::open(&url).unwrap();
    (db, s)
}

mod conformance {
    use super::fresh;

    onsite_server::storage_conformance!(fresh, #[ignore = "needs PostgreSQL (ONSITE_TEST_PG); run by the postgres suite"]);
}

#[test]
#[ignore = "needs PostgreSQL (ONSITE_TEST_PG); run by the postgres suite"]
fn a_newer_schema_is_refused_and_migration_is_idempotent() {
    let (db, url) = TempDatabase::new();
    drop(PostgresStorage::open(&url).unwrap());
    drop(PostgresStorage::open(&url).unwrap());
    let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    c.batch_execute("UPDATE onsite_schema SET version = 99").unwrap();
    match PostgresStorage::open(&url) {
        Err(onsite_server::storage::Error::TooNew { found: 99, supported: 1 }) => {}
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("a newer schema was opened"),
    }
    drop(c);
    drop(db);
}

/// Two "instances" (two storages on one database) redeem one code at the same instant:
/// exactly one enrols.
#[test]
#[ignore = "needs PostgreSQL (ONSITE_TEST_PG); run by the postgres suite"]
fn a_code_redeemed_by_two_instances_at_once_enrols_one_device() {
    use onsite_server::storage::Storage;
    let (_db, url) = TempDatabase::new();
    let a = PostgresStorage::open(&url).unwrap();
    let b = PostgresStorage::open(&url).unwrap();
    a.create_provider("p", "P", "tok", 0).unwrap();
    for round in 0..20 {
        let code = format!("code-{round}");
        a.create_code(&code, "p", "eng", i64::MAX).unwrap();
        let barrier = std::sync::Barrier::new(2);
        let (ra, rb) = std::thread::scope(|s| {
            let ta = s.spawn(|| {
                barrier.wait();
                a.enrol(&code, 1, &format!("a{round}"), b"ka", &format!("ta{round}"))
            });
            let tb = s.spawn(|| {
                barrier.wait();
                b.enrol(&code, 1, &format!("b{round}"), b"kb", &format!("tb{round}"))
            });
            (ta.join().unwrap(), tb.join().unwrap())
        });
        assert!(ra.is_ok() != rb.is_ok(), "round {round}: exactly one redemption wins ({ra:?}, {rb:?})");
    }
}
