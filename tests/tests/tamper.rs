//! A journal tampered with on the device after it was sealed (ADR 0017): an entry edited,
//! dropped, reordered or inserted in the database file, then uploaded by the real sync engine
//! to a real `onsite-server` on loopback. The server rebuilds every body from the compact
//! upload and its own chain, the seals do not hold, the upload is refused and nothing of it is
//! logged; the device's own verification flags it too.

use std::sync::Arc;

use onsite_core::clock::ManualClock;
use onsite_core::device::SyncOptions;
use onsite_core::hash::sha256_hex;
use onsite_core::store::MetaKey;
use onsite_core::Device;
use onsite_server::client::sample_orders;
use onsite_tests::net::{TestServer, PROVIDER};

fn fast() -> SyncOptions {
    SyncOptions { base_backoff_ms: 1, max_backoff_ms: 5, max_attempts: 2, ..SyncOptions::default() }
}

/// A device that synced once, then wrote notes offline and sealed them (as a photo, consent
/// or receipt would). Returns the server, the device's directory, the acked seq, and the seq
/// of the second offline note.
fn offline_day(tag: &str) -> (TestServer, tempfile::TempDir, u64, u64) {
    let s = TestServer::start();
    let ids = s.dispatcher.create_orders(&sample_orders(PROVIDER, "eng-1", &format!("WO-T{tag}"), 1)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::at(chrono::DateTime::parse_from_rfc3339("2026-11-23T09:00:00+08:00").unwrap().with_timezone(&chrono::Utc)));
    let d = Device::open(onsite_tests::options(dir.path()).with_clock(clock)).unwrap();
    s.enrol(&d, "eng-1");
    assert!(d.sync(&s.transport(), &fast(), None).unwrap().complete());
    let acked = d.store().meta_u64(MetaKey::SyncJournalAcked).unwrap();
    let mut notes = Vec::new();
    for i in 0..4 {
        d.add_note(&ids[0], &format!("note {i}: measured 12.1 V")).unwrap();
        notes.push(d.journal(Some(&ids[0])).unwrap().last().unwrap().seq);
    }
    assert!(d.seal_journal("test").unwrap() >= 1);
    assert!(d.verify_journal().unwrap().sealed());
    drop(d);
    (s, dir, acked, notes[1])
}

/// One way of altering the journal table at entry `k`.
type Tamper = fn(&rusqlite::Connection, u64);

fn tamper(dir: &std::path::Path, sql: &dyn Fn(&rusqlite::Connection)) {
    let c = onsite_tests::raw_db(dir);
    sql(&c);
}

fn row(c: &rusqlite::Connection, seq: u64) -> (Option<String>, String, Vec<u8>, String, Vec<u8>) {
    c.query_row("SELECT order_id, kind, body, hash, signature FROM journal WHERE seq = ?1", [seq as i64], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
    })
    .unwrap()
}

fn put(c: &rusqlite::Connection, seq: u64, r: &(Option<String>, String, Vec<u8>, String, Vec<u8>)) {
    c.execute(
        "INSERT INTO journal (seq, order_id, kind, body, hash, signature) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        rusqlite::params![seq as i64, r.0, r.1, r.2, r.3, r.4],
    )
    .unwrap();
}

/// The note's text changed in place, its hash recomputed: what a forger does first.
fn edit(c: &rusqlite::Connection, k: u64) {
    let (o, kind, body, _, sig) = row(c, k);
    let forged = String::from_utf8(body).unwrap().replace("12.1 V", "19.9 V").into_bytes();
    c.execute("DELETE FROM journal WHERE seq = ?1", [k as i64]).unwrap();
    put(c, k, &(o, kind, forged.clone(), sha256_hex(&forged), sig));
}

/// [`edit`], then every later entry re-linked and re-hashed (signatures kept): the chain
/// holds again, so the device uploads it, and only the seals can tell.
fn edit_and_relink(c: &rusqlite::Connection, k: u64) {
    use onsite_core::evidence::journal::{seal::from_body, Body, ZERO_HASH};
    let (o, kind, body, _, sig) = row(c, k);
    let mut b: Body = serde_json::from_slice(&body).unwrap();
    b.payload = Some(serde_json::json!({ "text": "note 1: measured 19.9 V" }));
    b.payload_sha256 = sha256_hex(&serde_json::to_vec(&b.payload).unwrap());
    let e = from_body(&b, sig).unwrap();
    c.execute("DELETE FROM journal WHERE seq = ?1", [k as i64]).unwrap();
    put(c, k, &(o, kind, e.body, e.hash, e.signature));
    let last: i64 = c.query_row("SELECT MAX(seq) FROM journal", [], |r| r.get(0)).unwrap();
    for seq in k + 1..=last as u64 {
        let (o, kind, body, _, sig) = row(c, seq);
        let mut b: Body = serde_json::from_slice(&body).unwrap();
        b.prev = row(c, seq - 1).3;
        if let Some(order) = &b.order {
            let before: Option<String> = c
                .query_row("SELECT hash FROM journal WHERE order_id = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT 1", rusqlite::params![order, seq as i64], |r| {
                    r.get(0)
                })
                .ok();
            b.order_prev = Some(before.unwrap_or_else(|| ZERO_HASH.to_string()));
        }
        let e = from_body(&b, sig).unwrap();
        c.execute("DELETE FROM journal WHERE seq = ?1", [seq as i64]).unwrap();
        put(c, seq, &(o, kind, e.body, e.hash, e.signature));
    }
}

fn drop_entry(c: &rusqlite::Connection, k: u64) {
    c.execute("DELETE FROM journal WHERE seq = ?1", [k as i64]).unwrap();
    c.execute("UPDATE journal SET seq = seq - 1 WHERE seq > ?1", [k as i64]).unwrap();
}

fn reorder(c: &rusqlite::Connection, k: u64) {
    let (a, b) = (row(c, k), row(c, k + 1));
    c.execute("DELETE FROM journal WHERE seq IN (?1, ?2)", [k as i64, k as i64 + 1]).unwrap();
    put(c, k, &b);
    put(c, k + 1, &a);
}

fn insert(c: &rusqlite::Connection, k: u64) {
    let copy = row(c, k);
    c.execute("UPDATE journal SET seq = -seq WHERE seq >= ?1", [k as i64]).unwrap();
    c.execute("UPDATE journal SET seq = 1 - seq WHERE seq < 0", []).unwrap();
    put(c, k, &copy);
}

#[test]
fn an_entry_edited_dropped_reordered_or_inserted_after_its_seal_is_refused_and_flagged() {
    let cases: [(&str, Tamper); 5] = [("edit", edit), ("relinked", edit_and_relink), ("drop", drop_entry), ("reorder", reorder), ("insert", insert)];
    for (name, how) in cases {
        let (s, dir, acked, k) = offline_day(name);
        tamper(dir.path(), &|c| how(c, k));
        let d = Device::open(onsite_tests::options(dir.path())).unwrap();
        assert!(!d.verify_journal().unwrap().ok(), "{name}: the device's own check flags it");
        let outcome = d.sync(&s.transport(), &fast(), None);
        let refused = match &outcome {
            Err(e) => e.to_string(),
            Ok(r) => r.errors.join("; "),
        };
        // Either the device cannot even build the upload (its chain is broken) or the server,
        // rebuilding every body, finds a seal that does not hold.
        assert!(refused.contains("does not hold together") || refused.contains("does not verify"), "{name}: {outcome:?}");
        if name == "relinked" {
            assert!(refused.contains("does not verify: BadSignature"), "{name}: the server's seal check refused it: {refused}");
        }
        assert_eq!(d.store().meta_u64(MetaKey::SyncJournalAcked).unwrap(), acked, "{name}: nothing of it was logged");
    }
}
