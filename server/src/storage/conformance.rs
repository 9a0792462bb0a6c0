//! The storage conformance suite: what every [`Storage`] backend must do, written once
//! against `dyn Storage`. A backend runs it by adding one line to its tests:
//!
//! ```ignore
//! onsite_server::storage_conformance!(|| (guard, my_backend_on_a_fresh_database()));
//! ```
//!
//! which expands to one `#[test]` per check below, each on a fresh, empty store.
//! (Test support: the checks panic on the first broken expectation, as tests do.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;

/// One `#[test]` per conformance check, each on a fresh store from `$make`: a closure
/// returning `(guard, store)`, where `store` is the backend (any `Storage`) and `guard`
/// whatever keeps its database alive until the check ends (a temp dir, a schema).
/// Attributes after the closure go on every test: `storage_conformance!(make, #[ignore = ".."])`.
#[macro_export]
macro_rules! storage_conformance {
    ($make:expr $(, #[$attr:meta])* $(,)?) => {
        $crate::storage_conformance!(@checks [$(#[$attr])*] $make; meta_is_a_key_value_map, providers_are_unique_and_found_by_token, codes_are_single_use_and_expire, revocation_stops_tokens_and_lists_devices, orders_are_created_once_and_listed_by_engineer, a_change_moves_the_feed_and_the_summary, a_refused_change_writes_nothing, compaction_folds_changes_and_leaves_a_marker, reassignment_tells_both_engineers, the_feed_is_in_seq_order_and_bounded, the_journal_and_log_are_append_only, the_log_tree_is_stored_as_it_grows, receipts_are_kept_once, blobs_are_recorded_once, movements_are_kept_once_in_order, closeout_keeps_the_first_close, experts_and_help_requests, certifications_are_kept_once, the_feed_never_passes_an_uncommitted_change, a_change_on_a_stale_read_is_refused);
    };
    (@checks $attrs:tt $make:expr; $($check:ident),*) => {
        $( $crate::storage_conformance!(@one $attrs $make; $check); )*
    };
    (@one [$(#[$attr:meta])*] $make:expr; $check:ident) => {
        #[test]
        $(#[$attr])*
        fn $check() {
            let (_guard, store) = ($make)();
            $crate::storage::conformance::$check(&store);
        }
    };
}

const P: &str = "prov";

fn provider(s: &dyn Storage) {
    s.create_provider(P, "Provider", "dsp-token", 0).unwrap();
}

fn order_row(id: &str, engineer: &str) -> OrderRow {
    OrderRow {
        provider: P.into(),
        id: id.into(),
        engineer_id: engineer.into(),
        status: "assigned".into(),
        priority: "normal".into(),
        customer: "ACME".into(),
        updated_seq: 0,
        assigned_seq: 0,
        compacted_seq: 0,
        summary: String::new(),
    }
}

/// The order's `updated_seq` now (what a writer reads before it loads the document).
fn seq_of(s: &dyn Storage, id: &str) -> u64 {
    s.order(P, id).unwrap().map_or(0, |o| o.updated_seq)
}

fn never() -> Vec<u8> {
    panic!("the snapshot was asked for without compaction")
}

fn change(s: &dyn Storage, row: &OrderRow, origin: &str, chunk: &[u8], previous: Option<&str>, after_rows: u64, snapshot: &[u8]) -> StoredChange {
    let mut snap = || snapshot.to_vec();
    let expected_seq = seq_of(s, &row.id);
    s.store_change(&NewChange { row, origin, chunk, previous_engineer: previous, expected_seq }, Compaction { after_rows, snapshot: &mut snap }).unwrap()
}

fn enrolled_device(s: &dyn Storage, id: &str, engineer: &str) -> DeviceRow {
    s.create_code(&format!("code-{id}"), P, engineer, i64::MAX).unwrap();
    s.enrol(&format!("code-{id}"), 1, id, b"public-key", &format!("tok-{id}"), &admit_all).unwrap();
    s.device_by_token(&format!("tok-{id}")).unwrap().unwrap()
}

fn read<T>(s: &dyn Storage, f: impl Fn(&dyn FeedReader) -> Result<T>) -> T {
    let mut out = None;
    s.snapshot(&mut |r| {
        out = Some(f(r)?);
        Ok(())
    })
    .unwrap();
    out.unwrap()
}

pub fn meta_is_a_key_value_map(s: &dyn Storage) {
    assert_eq!(s.meta(MetaKey::Actor).unwrap(), None);
    s.set_meta(MetaKey::Actor, "one").unwrap();
    s.set_meta(MetaKey::Actor, "two").unwrap();
    s.set_meta(MetaKey::LogKey, "").unwrap();
    assert_eq!(s.meta(MetaKey::Actor).unwrap().as_deref(), Some("two"));
    assert_eq!(s.meta(MetaKey::LogKey).unwrap().as_deref(), Some(""));
    assert_eq!(s.meta(MetaKey::TimeAuthorityKey).unwrap(), None);
}

pub fn providers_are_unique_and_found_by_token(s: &dyn Storage) {
    provider(s);
    assert!(matches!(s.create_provider(P, "Again", "other", 0), Err(Error::Exists(_))));
    assert_eq!(s.provider_name(P).unwrap().as_deref(), Some("Provider"));
    assert_eq!(s.provider_name("nobody").unwrap(), None);
    assert_eq!(s.provider_by_token("dsp-token").unwrap().as_deref(), Some(P));
    assert_eq!(s.provider_by_token("other").unwrap(), None, "a refused create leaves no token");
}

pub fn codes_are_single_use_and_expire(s: &dyn Storage) {
    provider(s);
    s.create_code("c1", P, "eng-1", 1_000).unwrap();
    assert!(matches!(s.enrol("c1", 2_000, "d1", b"key", "t1", &admit_all), Err(Error::Conflict(_))), "expired");
    s.create_code("c3", P, "eng-1", 10_000).unwrap();
    assert_eq!(s.enrol("c3", 2_000, "d1", b"key", "t1", &admit_all).unwrap(), Enrolled { provider: P.into(), engineer_id: "eng-1".into() });
    assert!(matches!(s.enrol("c3", 2_000, "d2", b"key2", "t2", &admit_all), Err(Error::Conflict(_))), "used");
    assert!(s.device_by_token("t2").unwrap().is_none(), "a refused enrolment issues no token");
    assert!(matches!(s.enrol("nope", 2_000, "d2", b"key2", "t2", &admit_all), Err(Error::NotFound(_))));
    assert_eq!(s.device_by_token("t1").unwrap().unwrap().engineer_id, "eng-1");
    // Re-enrolment needs the same key, and moves the device to the code's engineer.
    s.create_code("c4", P, "eng-2", 10_000).unwrap();
    assert!(matches!(s.enrol("c4", 4_000, "d1", b"other-key", "t3", &admit_all), Err(Error::Conflict(_))));
    s.create_code("c5", P, "eng-2", 10_000).unwrap();
    s.enrol("c5", 4_000, "d1", b"key", "t4", &admit_all).unwrap();
    let d = s.device_by_token("t4").unwrap().unwrap();
    assert_eq!((d.engineer_id.as_str(), d.revoked), ("eng-2", false));
    assert!(s.device_by_token("t1").unwrap().is_none(), "re-enrolment retires the old token");
    // Another provider cannot take the id, whatever the key.
    s.create_provider("other", "Other", "dsp-2", 0).unwrap();
    s.create_code("c6", "other", "eng-9", 10_000).unwrap();
    assert!(matches!(s.enrol("c6", 4_000, "d1", b"key", "t5", &admit_all), Err(Error::Conflict(_))));
    // The attestation decision: asked with the code's provider; a refusal writes nothing
    // and leaves the code for the next try; a record is kept with the device (and kept
    // when a later re-enrolment records none).
    s.create_code("c7", P, "eng-3", 10_000).unwrap();
    let refuse = |_: &str| -> Result<Option<String>> { Err(Error::Refused("no attestation".into())) };
    assert!(matches!(s.enrol("c7", 4_000, "d7", b"key7", "t7", &refuse), Err(Error::Refused(_))));
    assert!(s.device_by_token("t7").unwrap().is_none());
    let asked = std::sync::Mutex::new(String::new());
    let record = |provider: &str| -> Result<Option<String>> {
        *asked.lock().unwrap() = provider.to_string();
        Ok(Some(r#"{"attested":true}"#.into()))
    };
    s.enrol("c7", 4_000, "d7", b"key7", "t7", &record).unwrap();
    assert_eq!(asked.lock().unwrap().as_str(), P);
    assert_eq!(s.device_by_token("t7").unwrap().unwrap().attestation.as_deref(), Some(r#"{"attested":true}"#));
    s.create_code("c8", P, "eng-3", 10_000).unwrap();
    s.enrol("c8", 5_000, "d7", b"key7", "t8", &admit_all).unwrap();
    let listed = s.devices(P).unwrap().into_iter().find(|d| d.id == "d7").unwrap();
    assert_eq!(listed.attestation.as_deref(), Some(r#"{"attested":true}"#));
}

pub fn revocation_stops_tokens_and_lists_devices(s: &dyn Storage) {
    provider(s);
    let d = enrolled_device(s, "d1", "eng-1");
    assert_eq!((d.provider.as_str(), d.journal_seq, d.journal_head.as_deref()), (P, 0, None));
    enrolled_device(s, "d2", "eng-2");
    let ids: Vec<String> = s.devices(P).unwrap().into_iter().map(|d| d.id).collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&"d1".to_string()) && ids.contains(&"d2".to_string()));
    s.revoke_device(P, "d1", 5).unwrap();
    assert!(s.device_by_token("tok-d1").unwrap().is_none());
    assert!(s.devices(P).unwrap().iter().any(|d| d.id == "d1" && d.revoked), "a revoked device is still listed, as revoked");
    assert!(matches!(s.revoke_device(P, "nobody", 5), Err(Error::NotFound(_))));
    assert!(matches!(s.revoke_device("other-provider", "d2", 5), Err(Error::NotFound(_))), "revocation is scoped to the provider");
    assert!(s.device_by_token("tok-d2").unwrap().is_some());
    // When each device was last heard from: recorded, and never moved back.
    assert_eq!(s.device_by_token("tok-d2").unwrap().unwrap().last_seen_ms, None);
    s.touch_device("d2", 1_000).unwrap();
    s.touch_device("d2", 500).unwrap();
    assert_eq!(s.device_by_token("tok-d2").unwrap().unwrap().last_seen_ms, Some(1_000));
    assert_eq!(s.devices(P).unwrap().iter().find(|d| d.id == "d2").unwrap().last_seen_ms, Some(1_000));
}

pub fn orders_are_created_once_and_listed_by_engineer(s: &dyn Storage) {
    provider(s);
    let a = s.create_order(&order_row("A", "eng-1"), b"snap-A").unwrap();
    let b = s.create_order(&order_row("B", "eng-2"), b"snap-B").unwrap();
    assert!(b > a, "feed positions grow");
    assert!(matches!(s.create_order(&order_row("A", "eng-9"), b"x"), Err(Error::Exists(_))));
    let row = s.order(P, "A").unwrap().unwrap();
    assert_eq!((row.engineer_id.as_str(), row.updated_seq, row.assigned_seq, row.compacted_seq), ("eng-1", a, a, a));
    assert_eq!(s.document(P, "A").unwrap(), vec![b"snap-A".to_vec()]);
    assert!(s.order(P, "missing").unwrap().is_none());
    assert!(matches!(s.document(P, "missing"), Err(Error::NotFound(_))));
    let ids = |e: Option<&str>| s.orders(P, e).unwrap().into_iter().map(|o| o.id).collect::<Vec<_>>();
    assert_eq!(ids(None), ["A", "B"]);
    assert_eq!(ids(Some("eng-2")), ["B"]);
    assert!(s.orders("other", None).unwrap().is_empty());
    assert_eq!(s.max_seq().unwrap(), b);
}

pub fn a_change_moves_the_feed_and_the_summary(s: &dyn Storage) {
    provider(s);
    let created = s.create_order(&order_row("A", "eng-1"), b"snap").unwrap();
    let mut row = order_row("A", "eng-1");
    row.status = "travelling".into();
    row.summary = r#"{"id":"A","status":"travelling"}"#.into();
    let stored = s
        .store_change(
            &NewChange { row: &row, origin: "dev-1", chunk: b"c1", previous_engineer: None, expected_seq: created },
            Compaction { after_rows: 10, snapshot: &mut never },
        )
        .unwrap();
    assert!(stored.seq > created && !stored.compacted);
    let now = s.order(P, "A").unwrap().unwrap();
    assert_eq!((now.status.as_str(), now.updated_seq, now.assigned_seq), ("travelling", stored.seq, created));
    assert_eq!(now.summary, row.summary, "the summary column follows the change");
    assert_eq!(s.orders(P, None).unwrap()[0].summary, row.summary);
    assert_eq!(s.document(P, "A").unwrap(), vec![b"snap".to_vec(), b"c1".to_vec()]);
    assert_eq!(s.change_rows(P, "A").unwrap(), 1);
    assert_eq!(s.max_seq().unwrap(), stored.seq);
}

pub fn a_refused_change_writes_nothing(s: &dyn Storage) {
    provider(s);
    s.create_order(&order_row("A", "eng-1"), b"snap").unwrap();
    let head = s.max_seq().unwrap();
    let ghost = order_row("ghost", "eng-1");
    let r = s.store_change(
        &NewChange { row: &ghost, origin: "dev-1", chunk: b"c", previous_engineer: Some("eng-0"), expected_seq: 0 },
        Compaction { after_rows: 0, snapshot: &mut never },
    );
    assert!(matches!(r, Err(Error::NotFound(_))), "{r:?}");
    assert_eq!(s.max_seq().unwrap(), head, "the refused change left no feed row behind");
    assert!(read(s, |r| r.feed(P, "eng-0", 0, u64::MAX)).is_empty());
}

pub fn compaction_folds_changes_and_leaves_a_marker(s: &dyn Storage) {
    provider(s);
    s.create_order(&order_row("A", "eng-1"), b"snap").unwrap();
    let row = order_row("A", "eng-1");
    let first = change(s, &row, "dev-1", b"c1", None, 2, b"unused");
    change(s, &row, "dev-1", b"c2", None, 2, b"unused");
    let asked = std::cell::Cell::new(0);
    let mut snap = || {
        asked.set(asked.get() + 1);
        b"snap-123".to_vec()
    };
    let third = s
        .store_change(
            &NewChange { row: &row, origin: "dev-1", chunk: b"c3", previous_engineer: None, expected_seq: seq_of(s, "A") },
            Compaction { after_rows: 2, snapshot: &mut snap },
        )
        .unwrap();
    assert!(third.compacted && asked.get() == 1, "compaction after the third row asks for the snapshot once");
    assert_eq!(s.document(P, "A").unwrap(), vec![b"snap-123".to_vec()]);
    assert_eq!(s.change_rows(P, "A").unwrap(), 0);
    assert_eq!(s.max_seq().unwrap(), third.seq, "the head never moves back");
    let o = s.order(P, "A").unwrap().unwrap();
    assert_eq!(o.compacted_seq, third.seq);
    // A device behind the compaction still finds the order in its feed (the marker row).
    let rows = read(s, |r| r.feed(P, "eng-1", first.seq, u64::MAX));
    assert!(rows.iter().any(|f| f.order_id == "A" && f.seq == third.seq), "{rows:?}");
    assert!(read(s, |r| r.chunks_after(P, "A", 0, u64::MAX, "nobody")).is_empty(), "folded chunks are gone");
    // Changes after the compaction are chunks again.
    change(s, &row, "dev-1", b"c4", None, 2, b"unused");
    assert_eq!(s.document(P, "A").unwrap(), vec![b"snap-123".to_vec(), b"c4".to_vec()]);
}

pub fn reassignment_tells_both_engineers(s: &dyn Storage) {
    provider(s);
    let created = s.create_order(&order_row("A", "eng-1"), b"snap").unwrap();
    let moved = change(s, &order_row("A", "eng-2"), "server", b"c1", Some("eng-1"), 100, b"");
    let o = s.order(P, "A").unwrap().unwrap();
    assert_eq!(o.engineer_id, "eng-2");
    assert!(o.assigned_seq > moved.seq, "the assign row follows the change");
    let old = read(s, |r| r.feed(P, "eng-1", created, u64::MAX));
    assert!(old.iter().any(|f| f.kind == "unassign" && f.engineer_id.as_deref() == Some("eng-1")), "{old:?}");
    let new = read(s, |r| r.feed(P, "eng-2", created, u64::MAX));
    assert!(new.iter().any(|f| f.kind == "assign" && f.engineer_id.as_deref() == Some("eng-2")), "{new:?}");
    // Same engineer: no assign rows.
    let before = s.max_seq().unwrap();
    let same = change(s, &order_row("A", "eng-2"), "server", b"c2", Some("eng-2"), 100, b"");
    assert_eq!((same.seq, s.max_seq().unwrap()), (before + 1, before + 1));
}

pub fn the_feed_is_in_seq_order_and_bounded(s: &dyn Storage) {
    provider(s);
    for id in ["A", "B", "C"] {
        s.create_order(&order_row(id, if id == "B" { "eng-2" } else { "eng-1" }), b"snap").unwrap();
    }
    let a1 = change(s, &order_row("A", "eng-1"), "dev-1", b"a1", None, 100, b"");
    let c1 = change(s, &order_row("C", "eng-1"), "dev-2", b"c1", None, 100, b"");
    change(s, &order_row("B", "eng-2"), "dev-3", b"b1", None, 100, b"");
    let a2 = change(s, &order_row("A", "eng-1"), "dev-2", b"a2", None, 100, b"");
    let head = read(s, |r| r.head());
    assert_eq!(head, s.max_seq().unwrap());
    let all = read(s, |r| r.feed(P, "eng-1", 0, head));
    assert!(all.windows(2).all(|w| w[0].seq < w[1].seq), "ascending seq");
    assert!(all.iter().all(|f| f.order_id != "B"), "another engineer's order is not in the feed");
    let window: Vec<u64> = read(s, |r| r.feed(P, "eng-1", a1.seq, c1.seq)).into_iter().map(|f| f.seq).collect();
    assert_eq!(window, [c1.seq], "rows in (cursor, upto]");
    assert_eq!(read(s, |r| r.chunks_after(P, "A", 0, head, "dev-1")), vec![b"a2".to_vec()], "the origin's own chunks are skipped");
    assert_eq!(read(s, |r| r.chunks_after(P, "A", 0, a1.seq, "x")), vec![b"a1".to_vec()]);
    assert_eq!(read(s, |r| r.order(P, "A")).unwrap().updated_seq, a2.seq);
    assert_eq!(read(s, |r| r.document(P, "A")), vec![b"snap".to_vec(), b"a1".to_vec(), b"a2".to_vec()]);
}

fn entry(seq: u64, kind: &str) -> JournalRow {
    let leaf = [seq as u8; 32];
    JournalRow { seq, order_id: Some("A".into()), kind: kind.into(), body: vec![seq as u8], hash: format!("hash-{seq}"), signature: vec![1], leaf }
}

pub fn the_journal_and_log_are_append_only(s: &dyn Storage) {
    provider(s);
    let d1 = enrolled_device(s, "d1", "eng-1");
    let d2 = enrolled_device(s, "d2", "eng-2");
    assert_eq!(s.append_journal(&d1, &[entry(1, "import"), entry(2, "note")], &[]).unwrap(), [0, 1]);
    let d1 = s.device_by_token("tok-d1").unwrap().unwrap();
    assert_eq!((d1.journal_seq, d1.journal_head.as_deref()), (2, Some("hash-2")));
    // Log positions are per provider and shared by its devices.
    assert_eq!(s.append_journal(&d2, &[entry(1, "import")], &[]).unwrap(), [2]);
    // A stale view of the device (a concurrent upload won) is refused, and changes nothing.
    let stale = DeviceRow { journal_seq: 0, journal_head: None, ..d1.clone() };
    assert!(matches!(s.append_journal(&stale, &[entry(1, "forged")], &[]), Err(Error::Conflict(_))));
    assert_eq!(s.journal_hash("d1", 1).unwrap().as_deref(), Some("hash-1"));
    assert_eq!(s.journal_hash("d1", 3).unwrap(), None);
    assert_eq!(s.log_leaves(P).unwrap(), vec![[1u8; 32], [2u8; 32], [1u8; 32]]);
    assert_eq!(s.append_journal(&d1, &[entry(3, "note")], &[]).unwrap(), [3]);
    assert_eq!(s.log_leaves(P).unwrap().len(), 4);
    assert!(s.log_leaves("other").unwrap().is_empty());
    // The order's photo entries from every device of the provider, by device then seq.
    let d1 = s.device_by_token("tok-d1").unwrap().unwrap();
    s.append_journal(&d1, &[entry(4, "photo")], &[]).unwrap();
    let d2 = s.device_by_token("tok-d2").unwrap().unwrap();
    s.append_journal(&d2, &[entry(2, "photo"), entry(3, "note")], &[]).unwrap();
    let photos: Vec<(String, u64, String)> = s.order_photo_entries(P, "A").unwrap().into_iter().map(|e| (e.device_id, e.seq, e.kind)).collect();
    assert_eq!(photos, [("d1".into(), 4, "photo".into()), ("d2".into(), 2, "photo".into())]);
    assert_eq!(s.order_photo_entries(P, "A").unwrap()[0].body, entry(4, "photo").body);
    assert!(s.order_photo_entries(P, "B").unwrap().is_empty() && s.order_photo_entries("other", "A").unwrap().is_empty());
}

/// Uploads of every size grow the tree: the stored nodes give the same root and proofs as
/// the whole list of leaves, at every size, and other providers' logs are apart.
pub fn the_log_tree_is_stored_as_it_grows(s: &dyn Storage) {
    use onsite_core::evidence::log::{self, tree};
    struct Stored<'a>(&'a dyn Storage);
    impl tree::Nodes for Stored<'_> {
        type Error = Error;
        fn node(&mut self, level: u8, index: u64) -> Result<Option<[u8; 32]>> {
            Ok(self.0.log_nodes(P, &[(level, index)])?.pop().flatten())
        }
    }
    provider(s);
    let mut d = enrolled_device(s, "d1", "eng-1");
    let mut leaves = Vec::new();
    let mut seq = 0;
    for batch in [1usize, 1, 2, 5, 8, 13, 1, 33] {
        let rows: Vec<JournalRow> = (0..batch)
            .map(|_| {
                seq += 1;
                let hash = format!("{seq:064x}");
                let leaf = log::leaf_hash(&onsite_core::hash::unhex(&hash).unwrap());
                JournalRow { leaf, hash, ..entry(seq, "note") }
            })
            .collect();
        let first = leaves.len() as u64;
        assert_eq!(s.append_journal(&d, &rows, &[]).unwrap(), (first..first + batch as u64).collect::<Vec<_>>());
        leaves.extend(rows.iter().map(|r| r.leaf));
        d = s.device_by_token("tok-d1").unwrap().unwrap();
        let n = leaves.len() as u64;
        assert_eq!(s.log_size(P).unwrap(), n);
        assert_eq!(tree::root(&mut Stored(s), n).unwrap(), log::root(&leaves), "size {n}");
        for i in [0, n / 2, n - 1] {
            assert_eq!(tree::inclusion_proof(&mut Stored(s), i, n).unwrap(), log::inclusion_proof(i, &leaves).unwrap());
        }
    }
    // Every complete subtree is stored once, and read back in one call.
    let n = leaves.len() as u64;
    let ids: Vec<(u8, u64)> = (1..7u8).flat_map(|l| (0..n >> l).map(move |i| (l, i))).collect();
    let stored = s.log_nodes(P, &ids).unwrap();
    assert!(stored.iter().all(Option::is_some), "{} of {} nodes", stored.iter().flatten().count(), ids.len());
    assert_eq!(stored[0], Some(log::node_hash(&leaves[0], &leaves[1])));
    assert_eq!(s.log_nodes(P, &[(0, n), (3, n)]).unwrap(), [None, None], "past the end");
    assert_eq!(s.log_nodes("other", &[(0, 0)]).unwrap(), [None]);
    assert_eq!(s.log_size("other").unwrap(), 0);
    assert_eq!(s.log_leaves(P).unwrap(), leaves);
    // Each leaf's data is its journal entry's hash, whose leaf hash is the stored leaf.
    let entries = s.log_entries(P, 2, 5).unwrap();
    assert_eq!(entries.len(), 5);
    for (k, e) in entries.iter().enumerate() {
        assert_eq!(onsite_core::hash::hex(e), format!("{:064x}", k + 3));
    }
    assert_eq!(s.log_entries(P, n - 1, 10).unwrap().len(), 1, "cut at the end");
    assert!(s.log_entries(P, n, 10).unwrap().is_empty());
}

fn receipt(revision: u32, sha: &str, journal_seq: u64) -> ReceiptRow {
    ReceiptRow {
        order_id: "A".into(),
        revision,
        sha256: sha.into(),
        canonical: b"{}".to_vec(),
        strokes: None,
        message: b"m".to_vec(),
        signature: b"s".to_vec(),
        journal_seq,
    }
}

pub fn receipts_are_kept_once(s: &dyn Storage) {
    provider(s);
    let d = enrolled_device(s, "d1", "eng-1");
    s.append_journal(&d, &[entry(1, "receipt_signed")], &[receipt(1, "r1", 1)]).unwrap();
    let d = s.device_by_token("tok-d1").unwrap().unwrap();
    s.append_journal(&d, &[entry(2, "receipt_signed")], &[receipt(1, "r1", 1), receipt(2, "r2", 2)]).unwrap();
    assert_eq!(s.receipt_hashes(P, "A").unwrap(), ["r1", "r2"], "by revision, the repeat ignored");
    assert_eq!(s.receipt_count(P).unwrap(), 2);
    assert!(s.receipt_hashes(P, "B").unwrap().is_empty());
    let kept = s.receipts(P, "A").unwrap();
    assert_eq!(
        kept.iter().map(|(dev, r)| (dev.as_str(), r.revision, r.sha256.as_str(), r.journal_seq)).collect::<Vec<_>>(),
        [("d1", 1, "r1", 1), ("d1", 2, "r2", 2)]
    );
    assert_eq!(kept[0].1.canonical, receipt(1, "r1", 1).canonical);
    assert!(s.receipts(P, "B").unwrap().is_empty() && s.receipts("other", "A").unwrap().is_empty());
}

pub fn blobs_are_recorded_once(s: &dyn Storage) {
    provider(s);
    assert!(!s.has_blob(P, "aa").unwrap());
    assert!(s.record_blob(P, "aa", 10, 1).unwrap());
    assert!(!s.record_blob(P, "aa", 10, 2).unwrap(), "the second record is not new");
    assert!(s.has_blob(P, "aa").unwrap());
    assert!(!s.has_blob("other", "aa").unwrap(), "blobs are per provider");
    assert_eq!(s.blob_count(P).unwrap(), 1);
}

fn movement(id: &str, body: &str) -> MovementRecord {
    MovementRecord { id: id.into(), order_id: Some("A".into()), author: "dev-1".into(), body: body.into() }
}

pub fn movements_are_kept_once_in_order(s: &dyn Storage) {
    provider(s);
    assert_eq!(s.add_movements(P, "eng-1", &[movement("m1", "one"), movement("m2", "two")]).unwrap(), 2);
    assert_eq!(s.add_movements(P, "eng-1", &[movement("m2", "two"), movement("m3", "three")]).unwrap(), 1, "m2 again is ignored");
    s.add_movements(P, "eng-2", &[movement("m4", "four")]).unwrap();
    let all = s.movements_after(P, "eng-1", 0).unwrap();
    assert_eq!(all.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(), ["one", "two", "three"]);
    assert!(all.windows(2).all(|w| w[0].seq < w[1].seq));
    let later = s.movements_after(P, "eng-1", all[0].seq).unwrap();
    assert_eq!(later.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(), ["two", "three"]);
}

pub fn closeout_keeps_the_first_close(s: &dyn Storage) {
    provider(s);
    assert_eq!(s.closeout(P, "A").unwrap(), None);
    s.close_order(P, "A", 100, "dispatcher").unwrap();
    s.close_order(P, "A", 200, "dispatcher").unwrap();
    assert_eq!(s.closeout(P, "A").unwrap(), Some(100));
}

pub fn experts_and_help_requests(s: &dyn Storage) {
    provider(s);
    let e = ExpertRow { provider: P.into(), id: "x1".into(), name: "Li".into(), categories: vec!["printer".into()], brands: vec!["hp".into()], fee_cents: 500 };
    s.add_expert(&e, "exp-token").unwrap();
    assert!(matches!(s.add_expert(&e, "exp-token-2"), Err(Error::Exists(_))));
    assert_eq!(s.experts(P).unwrap(), vec![e.clone()]);
    assert_eq!(s.expert_by_token("exp-token").unwrap(), Some(e));
    assert_eq!(s.expert_by_token("exp-token-2").unwrap(), None);
    let h = HelpRow {
        provider: P.into(),
        id: "h1".into(),
        order_id: "A".into(),
        engineer: "eng-1".into(),
        expert_id: None,
        status: "open".into(),
        cost_cents: 0,
        created_at: 5,
    };
    s.upsert_help(&h).unwrap();
    let routed = HelpRow { expert_id: Some("x1".into()), status: "routed".into(), ..h.clone() };
    s.upsert_help(&routed).unwrap();
    s.upsert_help(&HelpRow { id: "h2".into(), created_at: 6, ..h }).unwrap();
    assert_eq!(s.help(P, "h1").unwrap(), Some(routed));
    assert_eq!(s.help_requests(P, None).unwrap().len(), 2);
    assert_eq!(s.help_requests(P, Some("x1")).unwrap().iter().map(|h| h.id.as_str()).collect::<Vec<_>>(), ["h1"]);
    assert_eq!(s.help(P, "nope").unwrap(), None);
}

pub fn certifications_are_kept_once(s: &dyn Storage) {
    provider(s);
    s.add_certification("c2", P, "eng-1", "body-2", "sig-2").unwrap();
    s.add_certification("c1", P, "eng-1", "body-1", "sig-1").unwrap();
    s.add_certification("c1", P, "eng-1", "forged", "sig-x").unwrap();
    s.add_certification("c3", P, "eng-2", "body-3", "sig-3").unwrap();
    let rows = s.certifications(P, "eng-1").unwrap();
    assert_eq!(
        rows,
        vec![
            CertificationRow { id: "c1".into(), body: "body-1".into(), signature: "sig-1".into() },
            CertificationRow { id: "c2".into(), body: "body-2".into(), signature: "sig-2".into() },
        ]
    );
}

/// A change still in flight (its transaction open) must not be passed by a cursor: while it
/// is open, the head stays below it, and a device that synced meanwhile gets it next time.
/// (With positions from a bare sequence, T2 taking a later position and committing first
/// would move the head past T1's, and a cursor at that head would skip T1's change.)
pub fn the_feed_never_passes_an_uncommitted_change(s: &dyn Storage) {
    provider(s);
    s.create_order(&order_row("A", "eng-1"), b"snap").unwrap();
    s.create_order(&order_row("B", "eng-1"), b"snap").unwrap();
    let (opened_tx, opened) = std::sync::mpsc::channel::<()>();
    let (release_tx, release) = std::sync::mpsc::channel::<()>();
    let b_done = std::sync::atomic::AtomicBool::new(false);
    let (a, b, head_meanwhile) = std::thread::scope(|scope| {
        let slow = scope.spawn(move || {
            let row = order_row("A", "eng-1");
            // Compaction asks for the snapshot inside the transaction: hold it open there.
            let mut snapshot = || {
                opened_tx.send(()).unwrap();
                release.recv().unwrap();
                b"snap-a".to_vec()
            };
            s.store_change(
                &NewChange { row: &row, origin: "dev-1", chunk: b"a", previous_engineer: None, expected_seq: seq_of(s, "A") },
                Compaction { after_rows: 0, snapshot: &mut snapshot },
            )
            .unwrap()
        });
        opened.recv().unwrap();
        let fast = scope.spawn(|| {
            let row = order_row("B", "eng-1");
            let r = s
                .store_change(
                    &NewChange { row: &row, origin: "dev-2", chunk: b"b", previous_engineer: None, expected_seq: seq_of(s, "B") },
                    Compaction { after_rows: 100, snapshot: &mut never },
                )
                .unwrap();
            b_done.store(true, std::sync::atomic::Ordering::SeqCst);
            r
        });
        // Give the second writer time to commit, if the backend would let it.
        std::thread::sleep(std::time::Duration::from_millis(300));
        let head = read(s, |r| r.head());
        let rows = read(s, |r| r.feed(P, "eng-1", 0, head));
        assert!(rows.iter().all(|f| f.seq <= head), "rows beyond the head are not served");
        release_tx.send(()).unwrap();
        (slow.join().unwrap(), fast.join().unwrap(), head)
    });
    assert!(b_done.load(std::sync::atomic::Ordering::SeqCst));
    assert!(head_meanwhile < a.seq, "the head ({head_meanwhile}) passed a change still in flight ({})", a.seq);
    // A device whose cursor is the head it saw meanwhile receives both changes next.
    let upto = read(s, |r| r.head());
    let next: Vec<String> = read(s, |r| r.feed(P, "eng-1", head_meanwhile, upto)).into_iter().map(|f| f.order_id).collect();
    assert!(next.contains(&"A".to_string()) && next.contains(&"B".to_string()), "{next:?} (a {} b {})", a.seq, b.seq);
}

/// Two writers (two instances) read the order at the same point and both store a change:
/// the second is refused as stale and writes nothing, so a compaction from a document that
/// missed the first change can never drop it.
pub fn a_change_on_a_stale_read_is_refused(s: &dyn Storage) {
    provider(s);
    s.create_order(&order_row("A", "eng-1"), b"snap").unwrap();
    let read_at = seq_of(s, "A");
    let row = order_row("A", "eng-1");
    let first = s
        .store_change(
            &NewChange { row: &row, origin: "dev-1", chunk: b"one", previous_engineer: None, expected_seq: read_at },
            Compaction { after_rows: 100, snapshot: &mut never },
        )
        .unwrap();
    let head = s.max_seq().unwrap();
    let stale = s.store_change(
        &NewChange { row: &row, origin: "dev-2", chunk: b"two", previous_engineer: None, expected_seq: read_at },
        Compaction { after_rows: 0, snapshot: &mut || b"a snapshot without `one`".to_vec() },
    );
    assert!(matches!(stale, Err(Error::Stale(_))), "{stale:?}");
    assert_eq!(s.max_seq().unwrap(), head, "the refused change left no feed row");
    assert_eq!(s.document(P, "A").unwrap(), vec![b"snap".to_vec(), b"one".to_vec()], "nothing was compacted away");
    // Re-read and retry: accepted.
    let again = s
        .store_change(
            &NewChange { row: &row, origin: "dev-2", chunk: b"two", previous_engineer: None, expected_seq: first.seq },
            Compaction { after_rows: 100, snapshot: &mut never },
        )
        .unwrap();
    assert!(again.seq > first.seq);
}
