//! Every enum with an `as_str` spells each variant exactly as serde does (the stored and
//! wire form), so the two can never drift apart.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use onsite_core::evidence::photo::Format;
use onsite_core::order::{Channel, Status, WarrantyStatus};
use onsite_core::sla::SlaKind;
use onsite_core::sync::protocol::RejectCode;

fn serde_name<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v).unwrap().as_str().unwrap().to_string()
}

#[test]
fn as_str_matches_serde_for_every_variant() {
    for v in Status::ALL {
        assert_eq!(v.as_str(), serde_name(&v));
    }
    for v in WarrantyStatus::ALL {
        assert_eq!(v.as_str(), serde_name(&v));
    }
    for v in Channel::ALL {
        assert_eq!(v.as_str(), serde_name(&v));
    }
    for v in SlaKind::ALL {
        assert_eq!(v.as_str(), serde_name(&v));
    }
    for v in Format::ALL {
        assert_eq!(v.as_str(), serde_name(&v));
    }
    for v in RejectCode::ALL {
        assert_eq!(v.as_str(), serde_name(&v));
    }
}
