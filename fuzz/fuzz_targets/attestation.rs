//! Attestation evidence from anyone enrolling: the KeyDescription parser, an Android chain
//! (the input split into certificates at 0xFF 0x00 0xFF) and an App Attest object must never
//! panic, and nothing built from fuzz bytes may verify against the pinned roots.
#![no_main]
use libfuzzer_sys::fuzz_target;
use onsite_core::attest::{android, apple, Expected, Trust};

fuzz_target!(|data: &[u8]| {
    let _ = android::parse_key_description(data);
    let trust = Trust::pinned();
    let apps = vec!["ABCDE12345.com.example".to_string()];
    let ex = Expected { public_key: &[4; 65], challenge: None, client_data: b"fuzz", apple_app_ids: &apps, android_packages: &[], at: 1_750_000_000 };
    assert!(apple::verify(&[0; 32], data, &ex, &trust).is_err());
    let chain: Vec<Vec<u8>> = data.split(|b| *b == 0xff).map(<[u8]>::to_vec).collect();
    assert!(android::verify(&chain, &ex, &trust).is_err());
});
