//! Sync bodies from the network: the CBOR request and response, the deflate layer, and the
//! Automerge changes a device pushes, applied to a real order and checked for ownership as
//! the server does.
#![no_main]
use libfuzzer_sys::fuzz_target;
use onsite_core::sync::{authz, protocol};

fuzz_target!(|data: &[u8]| {
    let _ = protocol::inflate(data, 1 << 20);
    let _ = protocol::decode_response(data);
    if let Ok(upload) = protocol::decode_journal_upload(data) {
        for e in upload.entries.into_iter().take(8) {
            let _ = e.into_entry().body();
        }
    }
    let Ok(req) = protocol::decode_request(data) else { return };
    for push in req.push.iter().take(4) {
        let mut doc = automerge::AutoCommit::new();
        if doc.load_incremental(&push.changes).is_ok() {
            if let Ok(after) = autosurgeon::hydrate::<_, onsite_core::WorkOrder>(&doc) {
                let _ = authz::check_engineer_change(&after, &after, &[], "dev", &[]);
                let _ = authz::rebase(&after, &after);
            }
        }
    }
});
