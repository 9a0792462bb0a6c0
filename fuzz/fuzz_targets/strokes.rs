//! Signature stroke encodings from other devices.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(strokes) = onsite_core::signature::decode(data) {
        assert_eq!(onsite_core::signature::encode(&strokes).ok().as_deref(), Some(data));
    }
});
