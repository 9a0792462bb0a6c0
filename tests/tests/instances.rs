//! Two `onsite-server` instances on one database (SQLite here; `postgres.rs` and
//! `multi_instance.rs` run the same shape on PostgreSQL): what one instance remembers of an
//! order must never stand in for a write made through the other.

use std::sync::Arc;

use onsite_core::device::SyncOptions;
use onsite_core::sync::transport::HttpTransport;
use onsite_core::Device;
use onsite_server::client::{create_provider, sample_orders, DispatcherClient};

fn instance(dir: &std::path::Path, storage: Arc<dyn onsite_server::storage::Storage>) -> onsite_server::Running {
    let mut config = onsite_server::Config::new(dir.to_path_buf());
    config.admin_token = Some("admin-two".into());
    config.storage = Some(storage);
    onsite_server::spawn(config).unwrap()
}

/// Instance A keeps the order each write through it leaves behind, to check the next push
/// against. The dispatcher then changes a dispatcher-owned field through B. A device's push
/// through A must be checked against the order with B's change: checked against what A
/// remembered, the push would seem to change the priority back and be refused.
#[test]
fn a_push_is_checked_against_the_order_as_stored_not_as_another_instance_left_it() {
    let dir = tempfile::tempdir().unwrap();
    let storage: Arc<dyn onsite_server::storage::Storage> = Arc::new(onsite_server::storage::SqliteStorage::open(&dir.path().join("shared.sqlite3")).unwrap());
    // One data directory: the instances share the server's keys as well as the database.
    let a = instance(&dir.path().join("shared"), storage.clone());
    let b = instance(&dir.path().join("shared"), storage);
    let token = create_provider(&a.url(), "admin-two", "prov", "P").unwrap();
    let (via_a, via_b) = (DispatcherClient::new(&a.url(), &token).unwrap(), DispatcherClient::new(&b.url(), &token).unwrap());
    let id = via_a.create_orders(&sample_orders("prov", "eng-1", "WO-I", 1)).unwrap().remove(0);

    let device_dir = tempfile::tempdir().unwrap();
    let device = Device::open(onsite_tests::options(device_dir.path())).unwrap();
    let t = HttpTransport::new(&a.url()).unwrap();
    device.enrol(&t, &a.url(), &via_a.enrolment_code("eng-1").unwrap()).unwrap();
    let options = SyncOptions { base_backoff_ms: 1, max_backoff_ms: 5, max_attempts: 3, ..SyncOptions::default() };
    for (round, priority) in ["low", "normal", "low"].into_iter().enumerate() {
        // A write through A (the first round: the dispatcher's import; later: a push).
        via_b.set_priority(&id, priority).unwrap();
        let pulled = device.sync(&t, &options, None).unwrap();
        assert!(pulled.orders_rejected.is_empty(), "{pulled:?}");
        assert_eq!(device.get(&id).unwrap().order.priority.as_str(), priority);
        device.add_note(&id, &format!("note {round}")).unwrap();
        let pushed = device.sync(&t, &options, None).unwrap();
        assert!(pushed.orders_rejected.is_empty(), "round {round}: {:?}", pushed.orders_rejected);
        let on_server = via_b.order(&id).unwrap();
        assert_eq!(on_server["priority"].as_str(), Some(priority));
        assert_eq!(on_server["notes"].as_array().map(Vec::len), Some(round + 1), "{on_server}");
    }
    // A dispatcher's edit through A starts from B's change too.
    via_b.set_priority(&id, "urgent").unwrap();
    via_a.assign(&id, "eng-2", "王工").unwrap();
    let on_server = via_b.order(&id).unwrap();
    assert_eq!((on_server["priority"].as_str(), on_server["engineer"]["id"].as_str()), (Some("urgent"), Some("eng-2")));
}
