//! Photo bytes from outside: sniff, JPEG/PNG decode with limits, EXIF, thumbnail, dHash.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let a = onsite_core::evidence::photo::analyze_bytes(data, &Default::default());
    assert!(a.thumbnail.is_some() || !a.problems.is_empty());
});
