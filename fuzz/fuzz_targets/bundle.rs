//! Arbitration bundles from anyone: the archive reader and the verifier must never panic,
//! never allocate without bound, and never call a damaged bundle valid.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let report = onsite_core::bundle::verify_bytes(data, &Default::default());
    let _ = report.render_text();
    if report.ok {
        // Only a bundle whose manifest signature holds can be valid.
        assert!(report.checks.iter().any(|c| c.check == "manifest.signature" && c.passed));
    }
});
