//! The FFI surface as Kotlin and Swift see it, exercised from Rust: typed errors, no panics,
//! foreign callbacks that fail.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use onsite_ffi::*;
use onsite_tests::SAMPLE_ORDERS;

#[test]
fn lifecycle_through_the_boundary() {
    let dir = tempfile::tempdir().unwrap();
    let store = Onsite::open(dir.path().join("d").to_str().unwrap().into()).unwrap();
    let ids = store.orders().import_json(SAMPLE_ORDERS.into()).unwrap();
    assert_eq!(ids.len(), 3);
    let id = ids[0].clone();
    let d = store.orders().transition(id.clone(), TransitionRequest::Accept, None).unwrap();
    assert_eq!(d.status, OrderStatus::Accepted);
    assert_eq!(d.next_events, vec!["contact_customer", "reschedule"]);
    let start = UNIX_EPOCH + Duration::from_millis(1_795_000_000_123);
    let window = TimeWindow { start, end: start + Duration::from_secs(3600) };
    let d = store.orders().transition(id.clone(), TransitionRequest::ContactCustomer { window }, None).unwrap();
    assert_eq!(d.appointment, Some(window), "times round-trip to the millisecond");
    match store.orders().transition(id.clone(), TransitionRequest::Complete, None) {
        Err(ApiError::IllegalTransition { from, event }) => {
            assert_eq!(from, OrderStatus::CustomerContacted);
            assert_eq!(event, "complete");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(store.orders().transition(id.clone(), TransitionRequest::Cancel { reason: "x".into() }, None), Err(ApiError::NotPermitted { .. })));
    let fix = GpsFix { lat: 91.0, lon: 0.0, accuracy_m: 5.0, source: LocationSource::Gps, mock: false };
    assert!(
        matches!(store.orders().transition(id.clone(), TransitionRequest::Depart, Some(fix)), Err(ApiError::InvalidInput { ref field, .. }) if field == "fix.lat")
    );
    let rows = store.orders().list(OrderFilter { statuses: vec![OrderStatus::CustomerContacted], sort: SortBy::Updated }).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].appointment, Some(window));
    // Bytes round-trip: the document moves to a second device and back.
    let other_dir = tempfile::tempdir().unwrap();
    let other = Onsite::open(other_dir.path().join("d").to_str().unwrap().into()).unwrap();
    let merged = other.orders().merge_document(store.orders().document_bytes(id.clone()).unwrap()).unwrap();
    assert_eq!(merged, store.orders().get(id).unwrap());
}

#[test]
fn bad_input_gets_typed_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let path = data.to_str().unwrap().to_string();
    let store = Onsite::open(path.clone()).unwrap();
    assert!(matches!(store.orders().import_json("{".into()), Err(ApiError::InvalidInput { .. })));
    assert!(matches!(store.orders().import_json("[]".into()), Ok(ref v) if v.is_empty()));
    assert!(matches!(store.orders().get("missing".into()), Err(ApiError::NotFound { ref id }) if id == "missing"));
    assert!(matches!(store.orders().add_note("missing".into(), "x".into()), Err(ApiError::NotFound { .. })));
    store.orders().import_json(SAMPLE_ORDERS.into()).unwrap();
    assert!(matches!(store.orders().import_json(SAMPLE_ORDERS.into()), Err(ApiError::Conflict { .. })));
    // Hostile bytes never panic: every outcome is a typed error.
    let mut seed = 0x2545F4914F6CDD1Du64;
    for len in 0..300usize {
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| store.orders().merge_document(bytes)));
        assert!(matches!(r, Ok(Err(ApiError::InvalidInput { .. }))), "len {len}: {r:?}");
    }
    // A truncated real document too.
    let doc = store.orders().document_bytes("WO-20261123-0001".into()).unwrap();
    for cut in [1, doc.len() / 3, doc.len() - 1] {
        assert!(store.orders().merge_document(doc[..cut].to_vec()).is_err());
    }
    drop(store);
    // A database from a newer app is refused, and left as it was.
    let db = data.join("onsite.sqlite3");
    assert!(!data.join("onsite.sqlite3-wal").exists(), "closing the store checkpoints the WAL");
    bump_user_version(&data);
    match Onsite::open(path.clone()) {
        Err(ApiError::DatabaseTooNew { found, supported }) => assert!(found > supported),
        Err(other) => panic!("{other:?}"),
        Ok(_) => panic!("opened a newer database"),
    }
    let _ = db;
    // A file that is not a database. An encrypted file looks like random bytes, so without
    // this key's fingerprint beside it, it reads as another key's store; with it, as
    // damaged. Never deleted either way.
    let junk = tempfile::tempdir().unwrap();
    let junk_data = junk.path().join("d");
    std::fs::create_dir(&junk_data).unwrap();
    std::fs::write(junk_data.join("onsite.sqlite3"), vec![0x42u8; 8192]).unwrap();
    let junk_path: String = junk_data.to_str().unwrap().into();
    assert!(matches!(Onsite::open(junk_path.clone()), Err(ApiError::StoreKey { problem: KeyProblem::Wrong, .. })));
    let key = onsite_core::crypt::KeySource::store_key(&onsite_core::crypt::KeyFile::for_data_dir(&junk_data)).unwrap();
    std::fs::write(junk_data.join(onsite_core::store::cipher::KEY_ID_FILE), key.id()).unwrap();
    assert!(matches!(Onsite::open(junk_path), Err(ApiError::Corrupt { .. })));
    assert_eq!(std::fs::read(junk_data.join("onsite.sqlite3")).unwrap(), vec![0x42u8; 8192]);
    // A path that cannot be a directory.
    let file = junk.path().join("plain-file");
    std::fs::write(&file, b"x").unwrap();
    assert!(matches!(Onsite::open(file.join("sub").to_str().unwrap().into()), Err(ApiError::Storage { .. })));
}

/// What a newer app leaves on disk: `PRAGMA user_version = 999`, through the store's key.
fn bump_user_version(data: &std::path::Path) {
    let key = onsite_core::crypt::KeySource::store_key(&onsite_core::crypt::KeyFile::for_data_dir(data)).unwrap();
    let conn = onsite_core::store::cipher::open_connection(&data.join("onsite.sqlite3"), Some(&key)).unwrap();
    conn.execute_batch("PRAGMA user_version = 999").unwrap();
}

struct PlatformKey(Result<Vec<u8>, String>);

impl StoreKeyProvider for PlatformKey {
    fn store_key(&self) -> Result<Vec<u8>, ApiError> {
        self.0.clone().map_err(|reason| ApiError::Internal { reason })
    }
}

/// The platform's key through the foreign trait: a locked keystore and a wrong key are their
/// own error, and leave every file as it was.
#[test]
fn the_platform_key_opens_the_store_and_a_wrong_one_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path: String = dir.path().join("d").to_str().unwrap().into();
    let open = |key: PlatformKey| Onsite::open_with_platform(path.clone(), None, None, None, Some(Arc::new(key)));
    let store = open(PlatformKey(Ok(vec![7; 32]))).unwrap();
    store.orders().import_json(SAMPLE_ORDERS.into()).unwrap();
    drop(store);
    assert!(!dir.path().join("d.key").exists(), "the platform's key, not a key file");
    let files = || {
        let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir.path().join("d"))
            .unwrap()
            .flatten()
            .filter(|e| e.file_type().unwrap().is_file())
            .map(|e| (e.file_name().to_string_lossy().to_string(), std::fs::read(e.path()).unwrap()))
            .collect();
        v.sort();
        v
    };
    let before = files();
    assert!(matches!(open(PlatformKey(Ok(vec![8; 32]))), Err(ApiError::StoreKey { problem: KeyProblem::Wrong, .. })));
    assert!(matches!(open(PlatformKey(Err("keystore locked".into()))), Err(ApiError::StoreKey { problem: KeyProblem::Unavailable, .. })));
    assert!(matches!(open(PlatformKey(Ok(vec![7; 16]))), Err(ApiError::StoreKey { problem: KeyProblem::Unavailable, .. })));
    assert!(matches!(Onsite::open(path.clone()), Err(ApiError::StoreKey { problem: KeyProblem::Wrong, .. })), "the default key file is another key");
    std::fs::remove_file(dir.path().join("d.key")).unwrap();
    assert_eq!(files(), before, "nothing was changed");
    assert_eq!(open(PlatformKey(Ok(vec![7; 32]))).unwrap().orders().list(OrderFilter { statuses: vec![], sort: SortBy::Updated }).unwrap().len(), 3);
}

struct FlakyClock {
    calls: AtomicU64,
}

impl ClockSource for FlakyClock {
    fn now(&self) -> Result<SystemTime, ApiError> {
        if self.calls.fetch_add(1, Ordering::SeqCst).is_multiple_of(2) {
            Err(ApiError::Internal { reason: "clock unavailable".into() })
        } else {
            Ok(UNIX_EPOCH + Duration::from_secs(1_795_000_000))
        }
    }
    fn monotonic_ms(&self) -> Result<u64, ApiError> {
        Err(ApiError::Internal { reason: "no monotonic clock".into() })
    }
}

#[test]
fn failing_foreign_clock_does_not_take_the_core_down() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(FlakyClock { calls: AtomicU64::new(0) });
    let store =
        Onsite::open_with_platform(dir.path().join("d").to_str().unwrap().into(), Some(clock.clone() as Arc<dyn ClockSource>), None, None, None).unwrap();
    store.orders().import_json(SAMPLE_ORDERS.into()).unwrap();
    for _ in 0..4 {
        store.orders().add_note("WO-20261123-0001".into(), "still working".into()).unwrap();
    }
    assert!(clock.calls.load(Ordering::SeqCst) >= 4);
    assert_eq!(store.orders().get("WO-20261123-0001".into()).unwrap().notes.len(), 4);
}
