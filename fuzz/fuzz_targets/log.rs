//! What the log's standard formats read from outside (ADR 0020): signed notes, checkpoint
//! bodies, a witness's add-checkpoint request and tile paths must never panic, and nothing
//! built from fuzz bytes may open as a checkpoint of a fixed log key or satisfy a witness
//! policy.
#![no_main]
use libfuzzer_sys::fuzz_target;
use onsite_core::evidence::log::note::{open_checkpoint, CheckpointBody, Note, NoteSigner, Verifier};
use onsite_core::evidence::log::witness::{decide, AddCheckpoint, Cosigner, Policy, Witness};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let log = NoteSigner::from_seed("onsite/fuzz", &[1; 32]).expect("seed");
    let key = Verifier::parse(&log.verifier_key()).expect("vkey");
    assert!(open_checkpoint(text, &key).is_err());
    let _ = CheckpointBody::parse(text);
    let _ = Verifier::parse(text);
    let _ = Witness::parse(text);
    if let Ok(note) = Note::parse(text) {
        let w = Witness::parse(&Cosigner::from_seed("w", &[2; 32]).expect("seed").verifier_key()).expect("vkey");
        assert!(Policy { witnesses: vec![w], quorum: 1 }.check(&note).is_err());
    }
    if let Ok(req) = AddCheckpoint::parse(text) {
        assert!(decide(&req, |_| Some(key.clone()), |_| None).is_err());
    }
});
