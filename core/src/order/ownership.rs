//! Who may change which part of a work-order document. The sync server enforces this table
//! (an engineer device's change that touches a dispatcher-owned field is refused); the
//! device uses it to never produce such a change in the first place.

/// The party that owns a top-level field of the work-order document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// Set by the dispatcher (派工): assignment, customer, site, equipment, priority, fault.
    Dispatcher,
    /// Written by the engineer's device while working the order.
    Engineer,
    /// Written once when the document is created, never changed after.
    Immutable,
}

/// Top-level document keys and their owner. Keys not listed belong to nobody: a change
/// that creates them is refused.
pub const FIELD_OWNERS: &[(&str, Owner)] = &[
    ("schema", Owner::Immutable),
    ("id", Owner::Immutable),
    ("created_at", Owner::Immutable),
    ("provider", Owner::Dispatcher),
    ("customer", Owner::Dispatcher),
    ("site", Owner::Dispatcher),
    ("equipment", Owner::Dispatcher),
    ("fault", Owner::Dispatcher),
    ("priority", Owner::Dispatcher),
    ("engineer", Owner::Dispatcher),
    // The appointment is agreed by the engineer with the customer (seed 003: 承诺上门时间)
    // and recorded in the transition that set it; the dispatcher may also move it.
    ("appointment", Owner::Engineer),
    ("status", Owner::Engineer),
    ("transitions", Owner::Engineer),
    ("notes", Owner::Engineer),
    ("checklist", Owner::Engineer),
    // Signed receipts: appended by the engineer's device when the customer signs; a signed
    // revision is never changed (the server refuses edits to an existing entry).
    ("receipts", Owner::Engineer),
    // Expert help: the engineer appends requests; the platform (routing) and the experts
    // append answers, through the server, never the device.
    ("help", Owner::Engineer),
    ("help_answers", Owner::Dispatcher),
];

pub fn owner_of(key: &str) -> Option<Owner> {
    FIELD_OWNERS.iter().find(|(k, _)| *k == key).map(|(_, o)| *o)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order::import::{parse_orders, tests::sample_json};

    /// Every field of the document has an owner: adding a field without deciding fails here.
    #[test]
    fn every_document_key_has_an_owner() {
        let order = parse_orders(&sample_json("WO-1"), crate::order::Timestamp(0)).unwrap().remove(0);
        let value = serde_json::to_value(&order).unwrap();
        for key in value.as_object().unwrap().keys() {
            assert!(owner_of(key).is_some(), "no owner for `{key}`");
        }
        assert_eq!(owner_of("priority"), Some(Owner::Dispatcher));
        assert_eq!(owner_of("transitions"), Some(Owner::Engineer));
        assert_eq!(owner_of("hacked"), None);
    }
}
