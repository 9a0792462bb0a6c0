use super::*;
use proptest::prelude::*;

fn mv(id: &str, kind: Kind, serial: Option<&str>, qty: u32, order: Option<&str>, at: i64) -> Movement {
    Movement {
        id: id.into(),
        kind,
        engineer: "eng-1".into(),
        part_number: "FRU-5B20W77543".into(),
        serial: serial.map(String::from),
        quantity: qty,
        order_id: order.map(String::from),
        removed_serial: None,
        at_ms: at,
        actor: "device:d1".into(),
        note: String::new(),
        lamport: at as u64,
    }
}

#[test]
fn borrow_install_return_and_clerk_receive() {
    let mut l = Ledger::default();
    let borrow = mv("m1", Kind::Borrow, Some("SN-1"), 1, Some("WO-1"), 1);
    l.check(&borrow, BorrowPolicy::Strict).unwrap();
    l.apply(&borrow).unwrap();
    let mut install = mv("m2", Kind::Install, Some("SN-1"), 1, Some("WO-1"), 2);
    install.removed_serial = Some("OLD-9".into());
    l.check(&install, BorrowPolicy::Strict).unwrap();
    l.apply(&install).unwrap();
    assert_eq!(l.installed.get("SN-1"), Some(&Some("WO-1".to_string())));
    let (held, _) = l.unaccounted("WO-1");
    assert_eq!(held.len(), 1);
    assert!(held[0].faulty, "the removed part is held as faulty until returned");
    l.apply(&mv("m3", Kind::Return, Some("OLD-9"), 1, Some("WO-1"), 3)).unwrap();
    let (held, pending) = l.unaccounted("WO-1");
    assert!(held.is_empty());
    assert_eq!(pending.len(), 1);
    l.apply(&mv("c1", Kind::ClerkReceive, Some("OLD-9"), 1, None, 4)).unwrap();
    assert_eq!(l.unaccounted("WO-1"), (vec![], vec![]));
}

#[test]
fn the_borrow_rule_and_custody_are_enforced() {
    let mut l = Ledger::default();
    l.apply(&mv("m1", Kind::Borrow, Some("SN-1"), 1, Some("WO-1"), 1)).unwrap();
    // Same order: more parts may be borrowed.
    l.check(&mv("m2", Kind::Borrow, Some("SN-2"), 1, Some("WO-1"), 2), BorrowPolicy::Strict).unwrap();
    // Another order: refused while SN-1 is out, allowed with a tolerance or the rule off.
    let next = mv("m3", Kind::Borrow, Some("SN-3"), 1, Some("WO-2"), 3);
    assert!(matches!(l.check(&next, BorrowPolicy::Strict), Err(Error::BorrowRefused { outstanding: 1, .. })));
    l.check(&next, BorrowPolicy::Tolerance { max: 1 }).unwrap();
    l.check(&next, BorrowPolicy::Off).unwrap();
    // The same serial twice, an install of a part not held, a return of a part not held.
    assert!(matches!(l.check(&mv("x", Kind::Borrow, Some("SN-1"), 1, Some("WO-1"), 4), BorrowPolicy::Off), Err(Error::Custody(_))));
    assert!(matches!(l.check(&mv("x", Kind::Install, Some("SN-9"), 1, Some("WO-1"), 4), BorrowPolicy::Off), Err(Error::Custody(_))));
    assert!(matches!(l.check(&mv("x", Kind::Return, Some("SN-9"), 1, None, 4), BorrowPolicy::Off), Err(Error::Custody(_))));
    // Bulk stock never goes negative.
    let pads = |id: &str, kind, qty, at| Movement { part_number: "PAD".into(), ..mv(id, kind, None, qty, Some("WO-1"), at) };
    l.apply(&pads("p1", Kind::Borrow, 3, 5)).unwrap();
    l.apply(&pads("p2", Kind::Install, 2, 6)).unwrap();
    assert!(matches!(l.check(&pads("p3", Kind::Install, 2, 7), BorrowPolicy::Off), Err(Error::Custody(_))));
    assert!(matches!(l.check(&pads("p3", Kind::Return, 2, 7), BorrowPolicy::Off), Err(Error::Custody(_))));
    l.check(&pads("p3", Kind::Return, 1, 7), BorrowPolicy::Off).unwrap();
    // Clerk records are not the engineer's to write; shapes are checked.
    assert!(matches!(l.check(&mv("c", Kind::ClerkIssue, Some("SN-7"), 1, Some("WO-1"), 8), BorrowPolicy::Off), Err(Error::Invalid { .. })));
    assert!(matches!(l.check(&mv("q", Kind::Borrow, Some("SN-8"), 2, Some("WO-1"), 8), BorrowPolicy::Off), Err(Error::Invalid { .. })));
    assert!(matches!(l.check(&mv("q", Kind::Borrow, Some("SN-8"), 1, None, 8), BorrowPolicy::Off), Err(Error::Invalid { .. })));
}

#[test]
fn the_clerks_issue_confirms_the_engineers_borrow_and_contradictions_become_anomalies() {
    let engineer = mv("m1", Kind::Borrow, Some("SN-1"), 1, Some("WO-1"), 10);
    let clerk = Movement { actor: "clerk:李".into(), ..mv("c1", Kind::ClerkIssue, Some("SN-1"), 1, Some("WO-1"), 9) };
    let l = Ledger::replay([&engineer, &clerk]);
    assert_eq!(l.serials.len(), 1);
    assert!(l.serials["SN-1"].clerk_confirmed);
    assert!(l.anomalies.is_empty());
    // The clerk issues a serial the engineer already installed elsewhere: kept, flagged.
    let install = mv("m2", Kind::Install, Some("SN-1"), 1, Some("WO-1"), 11);
    let again = Movement { actor: "clerk:李".into(), ..mv("c2", Kind::ClerkIssue, Some("SN-1"), 1, Some("WO-2"), 12) };
    let l = Ledger::replay([&engineer, &clerk, &install, &again]);
    assert_eq!(l.anomalies.len(), 1, "{:?}", l.anomalies);
}

fn arb_movement() -> impl Strategy<Value = Movement> {
    (0u8..5, 0u8..4, 1u32..3, 0u8..3, 0i64..40, 0u32..1000).prop_map(|(k, s, q, o, at, id)| {
        let kind = [Kind::Borrow, Kind::Install, Kind::Return, Kind::ClerkIssue, Kind::ClerkReceive][k as usize];
        let serial = if s == 0 { None } else { Some(format!("SN-{s}")) };
        let quantity = if serial.is_some() { 1 } else { q };
        let order = if o == 0 && !matches!(kind, Kind::Borrow | Kind::Install) { None } else { Some(format!("WO-{o}")) };
        Movement { part_number: "P".into(), ..mv(&format!("m{id}"), kind, serial.as_deref(), quantity, order.as_deref(), at) }
    })
}

proptest! {
    /// Merge is the union of movements: any interleaving of two replicas, with repeats,
    /// folds to the same ledger.
    #[test]
    fn merge_commutes_and_repeats_harmlessly(a in prop::collection::vec(arb_movement(), 0..30), b in prop::collection::vec(arb_movement(), 0..30)) {
        let mut union: BTreeMap<String, Movement> = BTreeMap::new();
        for m in a.iter().chain(b.iter()) {
            union.entry(m.id.clone()).or_insert_with(|| m.clone());
        }
        let ab: Vec<&Movement> = union.values().collect();
        let mut ba = ab.clone();
        ba.reverse();
        let doubled: Vec<&Movement> = ab.iter().chain(ab.iter()).copied().collect::<Vec<_>>();
        let mut dedup: BTreeMap<&str, &Movement> = BTreeMap::new();
        for m in doubled { dedup.insert(&m.id, m); }
        prop_assert_eq!(Ledger::replay(ab.iter().copied()), Ledger::replay(ba));
        prop_assert_eq!(Ledger::replay(ab.iter().copied()), Ledger::replay(dedup.into_values()));
    }

    /// Movements that pass `check` one after another never produce an anomaly, and bulk
    /// quantities never underflow.
    #[test]
    fn checked_movements_fold_cleanly(ms in prop::collection::vec(arb_movement(), 0..60)) {
        let mut l = Ledger::default();
        let mut accepted = Vec::new();
        for (i, mut m) in ms.into_iter().enumerate() {
            m.at_ms = 0; // wall clocks that repeat: the Lamport clock keeps the order
            m.lamport = i as u64 + 1;
            m.id = format!("a{i}");
            if l.check(&m, BorrowPolicy::Off).is_ok() {
                l.apply(&m).unwrap();
                accepted.push(m);
            }
        }
        let replayed = Ledger::replay(accepted.iter());
        prop_assert!(replayed.anomalies.is_empty());
        prop_assert_eq!(replayed, l);
    }
}
