//! Sync bodies from the network: the CBOR request and response, the deflate layer, and the
//! Automerge changes a device pushes, applied to a real order and checked for ownership, the
//! lifecycle path and the document's exact shape as the server does.
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
        if let Ok(built) = onsite_core::sync::journal_wire::expand_built(&upload.compact, "dev", onsite_core::evidence::journal::ZERO_HASH, |_| None) {
            // The server verifies an expanded entry by the body it was built from: that body
            // must be what the bytes parse to.
            for (e, b) in &built {
                assert_eq!(e.body().ok().as_ref(), Some(b.body()));
            }
            let entries: Vec<_> = built.into_iter().map(|(e, _)| e).collect();
            let keys = onsite_core::evidence::journal::Keys::device(&[4u8; 65]);
            let _ = onsite_core::evidence::journal::verify(&entries, &keys, "dev", None);
        }
    }
    let Ok(req) = protocol::decode_request(data) else { return };
    for push in req.push.iter().take(4) {
        // The push mark reads hashes and dependencies from chunk headers: where the full parse
        // accepts the bytes, the headers say what it says.
        if let Ok(changes) = onsite_core::order::document::parse_changes(&[&push.changes]) {
            let full: Vec<_> = changes.iter().map(|c| (c.hash(), c.deps().to_vec())).collect();
            assert_eq!(onsite_core::order::document::change_links(&[&push.changes]).ok(), Some(full));
        }
        // As the server applies a push; an empty document has the shape trivially, so the
        // check of what the push wrote must agree with the whole check.
        let mut doc = automerge::AutoCommit::new();
        if let Ok(pushed) = onsite_core::order::document::apply_pushed(&mut doc, &push.changes) {
            match autosurgeon::hydrate::<_, onsite_core::WorkOrder>(&doc) {
                Ok(after) => {
                    let _ = authz::check_engineer_change(&after, &after, &[], "dev", &[]);
                    let _ = authz::check_history(&after, &authz::LifecycleRule { author: None, delivered_receipts: None });
                    let whole = onsite_core::sync::shape::check_document(&doc, &after);
                    if let Ok((_, reader)) = onsite_core::order::document::hydrate_reading(&doc) {
                        assert_eq!(onsite_core::sync::shape::check_read(&reader, &after), whole);
                        if let Some(written) = pushed.written {
                            assert_eq!(onsite_core::sync::shape::check_touched(&reader, &after, &written).is_ok(), whole.is_ok());
                        }
                    }
                    let _ = authz::rebase(&after, &after);
                }
                Err(_) => {
                    // What the server names when a push no longer hydrates.
                    if let Ok(base) = onsite_core::order::import::parse_orders(include_str!("../../cli/samples/orders.json"), onsite_core::order::Timestamp(0)) {
                        if let Some(o) = base.first() {
                            let _ = onsite_core::sync::shape::explain_unreadable(&doc, o);
                        }
                    }
                }
            }
        }
    }
});
