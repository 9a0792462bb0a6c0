use super::*;
use crate::evidence::log::{self as slice, leaf_hash};
use proptest::prelude::*;

fn leaves(n: u64) -> Vec<Hash> {
    (0..n).map(|i| leaf_hash(format!("entry {i}").as_bytes())).collect()
}

fn tree(n: u64) -> MemoryNodes {
    let mut t = MemoryNodes::default();
    t.push(0, &leaves(n)).expect("append");
    t
}

#[test]
fn roots_and_inclusion_proofs_equal_the_whole_tree_computation() {
    let all = leaves(70);
    let mut t = MemoryNodes::default();
    for n in 1..=70u64 {
        t.push(n - 1, &all[n as usize - 1..n as usize]).expect("append");
        let l = &all[..n as usize];
        assert_eq!(root(&mut t, n).expect("root"), slice::root(l), "n={n}");
        for i in 0..n {
            assert_eq!(inclusion_proof(&mut t, i, n).expect("path"), slice::inclusion_proof(i, l).expect("path"), "n={n} i={i}");
        }
    }
    assert_eq!(root(&mut t, 0).expect("root"), slice::root(&[]));
}

#[test]
fn an_append_stores_each_complete_subtree_once() {
    // 1,000 leaves: 1,000 leaf nodes plus 500 + 250 + ... complete subtrees above them.
    let t = tree(1000);
    let expected: u64 = (0..=10).map(|l| 1000u64 >> l).sum();
    assert_eq!(t.0.len() as u64, expected);
    // Batches of any split give the same nodes as one leaf at a time.
    let all = leaves(1000);
    let mut b = MemoryNodes::default();
    let mut size = 0;
    for chunk in all.chunks(37) {
        size = b.push(size, chunk).expect("append");
    }
    assert_eq!(b.0, t.0);
}

#[test]
fn consistency_proofs_verify_between_every_pair_of_small_sizes_and_bind_both_roots() {
    let mut t = tree(40);
    for n in 1..=40u64 {
        let rn = root(&mut t, n).expect("root");
        for m in 1..=n {
            let rm = root(&mut t, m).expect("root");
            let p = consistency_proof(&mut t, m, n).expect("proof");
            verify_consistency(m, n, &rm, &rn, &p).unwrap_or_else(|e| panic!("m={m} n={n}: {e}"));
            // Another old root (a split view) or another new one fails.
            let other = leaf_hash(b"fork");
            assert!(verify_consistency(m, n, &other, &rn, &p).is_err(), "m={m} n={n}");
            if m < n {
                assert!(verify_consistency(m, n, &rm, &other, &p).is_err(), "m={m} n={n}");
                // Each proof hash matters.
                for k in 0..p.len() {
                    let mut bad = p.clone();
                    bad[k][31] ^= 1;
                    assert!(verify_consistency(m, n, &rm, &rn, &bad).is_err(), "m={m} n={n} k={k}");
                }
                assert!(verify_consistency(m, n, &rm, &rn, &p[..p.len() - 1]).is_err(), "truncated, m={m} n={n}");
            }
        }
    }
    assert!(consistency_proof(&mut t, 0, 5).is_err());
    assert!(consistency_proof(&mut t, 6, 5).is_err());
}

#[test]
fn a_log_from_before_node_storage_is_computed_from_its_leaves() {
    let all = leaves(300);
    let mut only_leaves = MemoryNodes(all.iter().enumerate().map(|(i, h)| ((0u8, i as u64), *h)).collect());
    let mut full = tree(300);
    assert_eq!(root(&mut only_leaves, 300), root(&mut full, 300));
    assert_eq!(inclusion_proof(&mut only_leaves, 123, 300), inclusion_proof(&mut full, 123, 300));
    // The next append completes the old tree: afterwards every complete subtree is stored,
    // exactly as if the log had always kept its nodes.
    let next = leaf_hash(b"entry 300");
    only_leaves.push(300, &[next]).expect("append");
    full.push(300, &[next]).expect("append");
    assert_eq!(only_leaves.0, full.0);
    // A log that keeps its nodes pays one read for that check, not a walk.
    struct Counting<'a>(&'a mut MemoryNodes, usize);
    impl Nodes for Counting<'_> {
        type Error = std::convert::Infallible;
        fn node(&mut self, level: u8, index: u64) -> Result<Option<Hash>, Self::Error> {
            self.1 += 1;
            self.0.node(level, index)
        }
    }
    let mut c = Counting(&mut full, 0);
    append(&mut c, 301, &[leaf_hash(b"entry 301")]).expect("append");
    assert_eq!(c.1, 2, "the largest subtree, and leaf 301's left sibling");
    // A leaf that is missing is an error, not a made-up hash.
    let mut holes = MemoryNodes::default();
    assert_eq!(root(&mut holes, 3), Err(Error::MissingLeaf(0)));
}

proptest! {
    #[test]
    fn consistency_holds_across_random_appends(sizes in proptest::collection::vec(1u64..200, 1..6)) {
        let mut t = MemoryNodes::default();
        let mut size = 0;
        let mut seen: Vec<(u64, Hash)> = Vec::new();
        for (k, s) in sizes.iter().enumerate() {
            let batch: Vec<Hash> = (0..*s).map(|i| leaf_hash(format!("{k}/{i}").as_bytes())).collect();
            size = t.push(size, &batch).expect("append");
            let r = root(&mut t, size).expect("root");
            for (m, rm) in &seen {
                let p = consistency_proof(&mut t, *m, size).expect("proof");
                prop_assert!(verify_consistency(*m, size, rm, &r, &p).is_ok());
            }
            seen.push((size, r));
        }
    }
}
