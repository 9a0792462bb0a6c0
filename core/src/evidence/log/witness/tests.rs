use super::*;
use crate::evidence::log::note::NoteSigner;
use crate::evidence::log::tree::MemoryNodes;
use crate::evidence::log::{leaf_hash, tree};

const ORIGIN: &str = "onsite/prov-w";

struct Log {
    signer: NoteSigner,
    nodes: MemoryNodes,
    size: u64,
}

impl Log {
    fn new(seed: u8) -> Self {
        Self { signer: NoteSigner::from_seed(ORIGIN, &[seed; 32]).expect("seed"), nodes: MemoryNodes::default(), size: 0 }
    }
    fn grow(&mut self, n: u64, tag: &str) {
        let leaves: Vec<Hash> = (0..n).map(|i| leaf_hash(format!("{tag} {}", self.size + i).as_bytes())).collect();
        self.size = self.nodes.push(self.size, &leaves).expect("append");
    }
    fn root(&mut self) -> Hash {
        tree::root(&mut self.nodes, self.size).expect("root")
    }
    fn checkpoint(&mut self) -> String {
        let root = self.root();
        self.signer.sign(&CheckpointBody { origin: ORIGIN.into(), size: self.size, root }.text())
    }
    fn request(&mut self, old: u64) -> AddCheckpoint {
        let proof = if old == 0 || old == self.size { Vec::new() } else { tree::consistency_proof(&mut self.nodes, old, self.size).expect("proof") };
        AddCheckpoint { old, proof, checkpoint: self.checkpoint() }
    }
}

/// A witness's state for one log, and its decisions.
fn submit(log_vkey: &str, held: &mut Option<(u64, Hash)>, req: &AddCheckpoint) -> Result<(), Refusal> {
    let v = Verifier::parse(log_vkey).expect("vkey");
    let body = decide(req, |o| (o == ORIGIN).then(|| v.clone()), |_| *held)?;
    *held = Some((body.size, body.root));
    Ok(())
}

#[test]
fn a_growing_log_is_cosigned_and_a_split_view_is_refused() {
    let mut log = Log::new(1);
    let vkey = log.signer.verifier_key();
    let mut held = None;
    log.grow(5, "a");
    submit(&vkey, &mut held, &log.request(0)).expect("first checkpoint");
    log.grow(9, "a");
    // Asking with a stale old size is a 409 that names the size the witness holds.
    assert_eq!(submit(&vkey, &mut held, &log.request(0)), Err(Refusal::Conflict(5)));
    submit(&vkey, &mut held, &log.request(5)).expect("consistent growth");
    assert_eq!(held.map(|h| h.0), Some(14));
    // The same size again with the same root: fine (idempotent).
    submit(&vkey, &mut held, &log.request(14)).expect("same checkpoint");

    // A fork: the same key signs another history of the same size, and a longer one.
    let mut fork = Log { signer: NoteSigner::from_seed(ORIGIN, &[1; 32]).expect("seed"), nodes: MemoryNodes::default(), size: 0 };
    fork.grow(14, "b");
    assert_eq!(submit(&vkey, &mut held, &fork.request(14)), Err(Refusal::Conflict(14)));
    fork.grow(3, "b");
    assert_eq!(submit(&vkey, &mut held, &fork.request(14)), Err(Refusal::BadProof));
    assert_eq!(held.map(|h| h.0), Some(14), "nothing recorded for the fork");

    // Wrong key, unknown origin, old past the checkpoint, garbage.
    let mut stranger = Log::new(2);
    stranger.grow(20, "a");
    assert_eq!(submit(&vkey, &mut held, &stranger.request(14)), Err(Refusal::Forbidden));
    let other = NoteSigner::from_seed("onsite/other", &[1; 32]).expect("seed");
    let req = AddCheckpoint { old: 0, proof: vec![], checkpoint: other.sign(&CheckpointBody { origin: "onsite/other".into(), size: 1, root: [0; 32] }.text()) };
    assert_eq!(submit(&vkey, &mut held, &req), Err(Refusal::UnknownLog("onsite/other".into())));
    let mut r = log.request(14);
    r.old = 99;
    assert!(matches!(submit(&vkey, &mut held, &r), Err(Refusal::BadRequest(_))));
    r.checkpoint = "not a note".into();
    assert!(matches!(submit(&vkey, &mut held, &r), Err(Refusal::BadRequest(_))));
}

#[test]
fn requests_round_trip_and_malformed_ones_are_refused() {
    let mut log = Log::new(3);
    log.grow(10, "a");
    let cp = log.checkpoint();
    log.grow(7, "a");
    let req = log.request(10);
    assert_eq!(AddCheckpoint::parse(&req.to_body()), Ok(req.clone()));
    let body = req.to_body();
    for bad in [
        body.replacen("old 10", "old 010", 1),
        body.replacen("old 10", "old -1", 1),
        body.replacen("old 10\n", "old 10 \n", 1),
        body.replacen("\n\n", "\n", 1),
        body.replacen("old 10\n", "old 10\n!!!\n", 1),
        format!("old 10\n{}\n{cp}", "AAAA\n".repeat(64)),
    ] {
        assert!(AddCheckpoint::parse(&bad).is_err(), "{bad:?}");
    }
}

#[test]
fn cosignatures_verify_under_a_policy_with_a_quorum() {
    let mut log = Log::new(4);
    log.grow(3, "a");
    let cp = log.checkpoint();
    let w1 = Cosigner::from_seed("witness.example/w1", &[5; 32]).expect("seed");
    let w2 = Cosigner::from_seed("witness.example/w2", &[6; 32]).expect("seed");
    let text = Note::parse(&cp).expect("note").text;
    let cosigned = format!("{cp}{}", w1.cosign(&text, 1_795_000_000));
    let policy =
        |quorum| Policy { witnesses: vec![Witness::parse(&w1.verifier_key()).expect("vkey"), Witness::parse(&w2.verifier_key()).expect("vkey")], quorum };
    let note = Note::parse(&cosigned).expect("note");
    assert_eq!(policy(1).check(&note), Ok(vec!["witness.example/w1".to_string()]));
    assert_eq!(policy(2).check(&note), Err(Error::Quorum { got: 1, need: 2 }));
    assert_eq!(Witness::parse(&w1.verifier_key()).expect("vkey").cosigned(&note), Some(1_795_000_000));
    // A cosignature moved to another checkpoint, or with its time changed, does not verify.
    let mut other = Log::new(4);
    other.grow(4, "a");
    let moved = Note::parse(&format!("{}{}", other.checkpoint(), w1.cosign(&text, 1_795_000_000))).expect("note");
    assert_eq!(policy(1).check(&moved), Err(Error::Quorum { got: 0, need: 1 }));
    let line = w1.cosign(&text, 1_795_000_000);
    let b64 = line.trim_end().rsplit(' ').next().expect("b64");
    let mut raw = B64.decode(b64).expect("b64");
    raw[11] ^= 1;
    let retimed = Note::parse(&format!("{cp}\u{2014} witness.example/w1 {}\n", B64.encode(raw))).expect("note");
    assert_eq!(policy(1).check(&retimed), Err(Error::Quorum { got: 0, need: 1 }));
    // Witness keys are cosignature keys (0x04), not note keys.
    assert!(Witness::parse(&log.signer.verifier_key()).is_err());
}
