//! Service records from anyone (an engineer showing a résumé to another provider): the
//! verifier must never panic, and never call a record valid without its device signature.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let report = onsite_core::profile::verify_record(data, &Default::default());
    if report.ok {
        assert!(report.checks.iter().any(|c| c.check == "record.signature" && c.passed));
    }
});
