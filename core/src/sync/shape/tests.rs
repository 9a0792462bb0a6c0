//! The shape checks against each other and against the key-by-key walk they replaced.
use super::*;
use crate::order::import::{parse_orders, tests::sample_json};
use crate::order::Timestamp;
use automerge::transaction::Transactable;

/// The sample order with one note, committed: its document, the order and the heads.
fn noted() -> (AutoCommit, WorkOrder, Vec<automerge::ChangeHash>) {
    let (mut base, mut order) = doc();
    order.notes.push(crate::order::model::EngineerNote { at: crate::order::Timestamp(5), text: "n".into(), device: "d".into() });
    autosurgeon::reconcile(&mut base, &order).unwrap();
    base.commit();
    let heads = base.get_heads();
    (base, order, heads)
}

fn doc() -> (AutoCommit, WorkOrder) {
    let order = parse_orders(&sample_json("WO-1"), Timestamp(0)).unwrap().remove(0);
    let mut doc = AutoCommit::new();
    autosurgeon::reconcile(&mut doc, &order).unwrap();
    (doc, order)
}

#[test]
fn the_reconciled_order_has_its_own_shape() {
    let (doc, order) = doc();
    assert_eq!(check_document(&doc, &order), Ok(()));
}

#[test]
fn unknown_nested_keys_and_huge_strings_are_refused() {
    let (mut d, order) = doc();
    let customer = d.get(ROOT, "customer").unwrap().unwrap().1;
    d.put(&customer, "shadow", "invisible to the dispatcher").unwrap();
    assert_eq!(check_document(&d, &autosurgeon::hydrate(&d).unwrap()).unwrap_err().field, "customer.shadow");

    let (mut d, _) = doc();
    let site = d.get(ROOT, "site").unwrap().unwrap().1;
    d.put(&site, "address", "x".repeat(2 * 1024 * 1024)).unwrap();
    let e = check_document(&d, &autosurgeon::hydrate(&d).unwrap()).unwrap_err();
    assert_eq!(e.field, "site.address");
    let _ = order;
}

#[test]
fn conflicts_on_dispatcher_fields_are_refused_on_engineer_fields_allowed() {
    let (mut base, _) = doc();
    let mut a = base.fork().with_actor(automerge::ActorId::random());
    let mut b = base.fork().with_actor(automerge::ActorId::random());
    a.put(ROOT, "priority", "Low").unwrap();
    b.put(ROOT, "priority", "Normal").unwrap();
    a.merge(&mut b).unwrap();
    let e = check_document(&a, &autosurgeon::hydrate(&a).unwrap()).unwrap_err();
    assert_eq!(e.field, "priority");

    let mut a = base.fork().with_actor(automerge::ActorId::random());
    let mut b = base.fork().with_actor(automerge::ActorId::random());
    a.put(ROOT, "status", "Accepted").unwrap();
    b.put(ROOT, "status", "OnSite").unwrap();
    a.merge(&mut b).unwrap();
    assert_eq!(check_document(&a, &autosurgeon::hydrate(&a).unwrap()), Ok(()));
}

#[test]
fn a_value_of_the_wrong_type_is_refused() {
    let (mut d, _) = doc();
    d.put(ROOT, "schema", ScalarValue::Int(1)).unwrap();
    if let Ok(o) = autosurgeon::hydrate::<_, WorkOrder>(&d) {
        assert_eq!(check_document(&d, &o).unwrap_err().field, "schema");
    }
}

#[test]
fn a_losing_concurrent_value_written_by_the_push_is_checked_whole() {
    let (mut base, _) = doc();
    let heads = base.get_heads();
    // Two replicas replace the (engineer-owned) notes list at once: one with an empty
    // list, one with a list holding something that is not a note. Retry until the
    // smuggling replica loses, so only a check that reads losing values sees it.
    for _ in 0..64 {
        let mut a = base.fork().with_actor(automerge::ActorId::random());
        let mut b = base.fork().with_actor(automerge::ActorId::random());
        a.put_object(ROOT, "notes", ObjType::List).unwrap();
        let hidden = b.put_object(ROOT, "notes", ObjType::List).unwrap();
        b.insert(&hidden, 0, "smuggled").unwrap();
        a.merge(&mut b).unwrap();
        if a.length(a.get(ROOT, "notes").unwrap().unwrap().1) != 0 {
            continue;
        }
        let after: WorkOrder = autosurgeon::hydrate(&a).unwrap();
        assert_eq!(check_document(&a, &after).unwrap_err().field, "notes[0]");
        let mut server = base.fork();
        let pushed = crate::order::document::apply_pushed(&mut server, &a.save_after(&heads)).unwrap();
        assert_eq!(check_touched(&Reader::new(&server), &after, &pushed.written.unwrap()).unwrap_err().field, "notes[0]");
        return;
    }
    panic!("the smuggling replica never lost");
}

/// A push that appends a new entry holding a smuggled key: the scan reaches the new
/// object from the list it was inserted into (both written by the push).
#[test]
fn a_new_entry_holding_a_smuggled_key_is_refused() {
    let (mut base, mut o, heads) = noted();
    let mut device = base.fork();
    o.notes.push(crate::order::model::EngineerNote { at: crate::order::Timestamp(6), text: "m".into(), device: "d".into() });
    autosurgeon::reconcile(&mut device, &o).unwrap();
    let notes = device.get(ROOT, "notes").unwrap().unwrap().1;
    let new = device.get(&notes, 1).unwrap().unwrap().1;
    device.put(&new, "smuggled", "x").unwrap();
    device.commit();
    let after: WorkOrder = autosurgeon::hydrate(&device).unwrap();
    assert_eq!(check_document(&device, &after).unwrap_err().field, "notes[1].smuggled");
    let mut server = base.fork();
    let pushed = crate::order::document::apply_pushed(&mut server, &device.save_after(&heads)).unwrap();
    let written = pushed.written.unwrap();
    assert!(!written.objects.contains(&ROOT), "only the list and the new note were written");
    assert_eq!(check_touched(&Reader::new(&server), &after, &written).unwrap_err().field, "notes[1].smuggled");
}

/// One way of altering a document.
type Mutation = Box<dyn Fn(&mut AutoCommit)>;

/// The key-by-key walk the scan replaced, kept as the test's oracle.
fn by_keys(doc: &AutoCommit, order: &WorkOrder) -> Result<(), Forbidden> {
    let mut reference = AutoCommit::new();
    autosurgeon::reconcile(&mut reference, order).unwrap();
    for key in doc.keys(ROOT) {
        let owner = owner_of(&key).ok_or_else(|| refuse(&key, "not a field of a work order"))?;
        Walker { doc, reference: &reference, owner, lenient: false }.prop(&ROOT, &ROOT, &key, &key)?;
    }
    Ok(())
}

/// Every object path of the document (maps and lists), for mutations everywhere.
fn objects(doc: &AutoCommit, obj: &ObjId, out: &mut Vec<(ObjId, ObjType)>) {
    let kind = doc.object_type(obj).unwrap();
    out.push((obj.clone(), kind));
    let children: Vec<ObjId> = match kind {
        ObjType::Map | ObjType::Table => doc.map_range(obj, ..).filter_map(|i| matches!(i.value, automerge::ValueRef::Object(_)).then(|| i.id())).collect(),
        ObjType::List => doc.list_range(obj, ..).filter_map(|i| matches!(i.value, automerge::ValueRef::Object(_)).then(|| i.id())).collect(),
        ObjType::Text => vec![],
    };
    for c in children {
        objects(doc, &c, out);
    }
}

#[test]
fn the_scan_agrees_with_the_key_by_key_walk_on_every_mutation_everywhere() {
    let (mut base, order) = doc();
    // A richer order: transitions, notes and a checklist answer in lists of maps.
    let mut o = order.clone();
    o.notes.push(crate::order::model::EngineerNote { at: crate::order::Timestamp(5), text: "n".into(), device: "d".into() });
    autosurgeon::reconcile(&mut base, &o).unwrap();
    let heads = base.get_heads();
    let mut objs = Vec::new();
    objects(&base, &ROOT, &mut objs);
    assert!(objs.len() > 5, "{}", objs.len());
    let (mut checked, mut refused) = (0, 0);
    for (obj, kind) in &objs {
        let keys: Vec<automerge::Prop> = match kind {
            ObjType::Map | ObjType::Table => base.keys(obj).map(automerge::Prop::Map).collect(),
            ObjType::List => (0..base.length(obj)).map(automerge::Prop::Seq).collect(),
            ObjType::Text => vec![],
        };
        let mut mutations: Vec<Mutation> = Vec::new();
        if matches!(kind, ObjType::Map) {
            let o2 = obj.clone();
            mutations.push(Box::new(move |d| d.put(&o2, "smuggled", "x").unwrap()));
        }
        for k in keys {
            let (o2, k2) = (obj.clone(), k.clone());
            mutations.push(Box::new(move |d| d.put(&o2, k2.clone(), 12345_i64).unwrap()));
            let (o2, k2) = (obj.clone(), k.clone());
            mutations.push(Box::new(move |d| d.put(&o2, k2.clone(), "y".repeat(MAX_STRING + 1)).unwrap()));
            let (o2, k2) = (obj.clone(), k.clone());
            mutations.push(Box::new(move |d| {
                d.put_object(&o2, k2.clone(), ObjType::Table).unwrap();
            }));
            let (o2, k2) = (obj.clone(), k.clone());
            mutations.push(Box::new(move |d| {
                d.put_object(&o2, k2.clone(), ObjType::Text).unwrap();
            }));
            // A concurrent object holding a smuggled key: it wins or loses at random.
            let (o2, k2) = (obj.clone(), k.clone());
            mutations.push(Box::new(move |d| {
                let mut other = d.fork().with_actor(automerge::ActorId::random());
                if let Ok(Some((Value::Object(kind @ (ObjType::Map | ObjType::List)), _))) = other.get(&o2, k2.clone()) {
                    let inner = other.put_object(&o2, k2.clone(), kind).unwrap();
                    match kind {
                        ObjType::List => drop(other.insert(&inner, 0, "smuggled")),
                        _ => drop(other.put(&inner, "smuggled", "x")),
                    }
                    d.put(&o2, k2.clone(), "conflicting").unwrap();
                    d.merge(&mut other).unwrap();
                }
            }));
            // Deleting the property.
            let (o2, k2) = (obj.clone(), k.clone());
            mutations.push(Box::new(move |d| drop(d.delete(&o2, k2.clone()))));
            // A concurrent write by another device: a conflict on that property.
            let (o2, k2) = (obj.clone(), k.clone());
            mutations.push(Box::new(move |d| {
                let mut other = d.fork().with_actor(automerge::ActorId::random());
                let v = other.get(&o2, k2.clone()).unwrap();
                if let Some((Value::Scalar(s), _)) = v {
                    other.put(&o2, k2.clone(), s.into_owned()).unwrap();
                    d.put(&o2, k2.clone(), "conflicting").unwrap();
                    d.merge(&mut other).unwrap();
                }
            }));
        }
        for m in &mutations {
            let mut d = base.fork().with_actor(automerge::ActorId::random());
            m(&mut d);
            // The one-scan reader hydrates exactly what the key-by-key one does, or fails
            // the same way.
            let direct = autosurgeon::hydrate::<_, WorkOrder>(&d).map_err(|e| e.to_string());
            assert_eq!(crate::order::document::hydrate(&d).map_err(|e| e.to_string().replace("not a work order: ", "")), direct);
            let Ok(after) = direct else { continue };
            let verdict = check_document(&d, &after);
            assert_eq!(verdict, by_keys(&d, &after));
            // Over the scans the hydrate made, as the server checks it.
            let (_, reader) = crate::order::document::hydrate_reading(&d).unwrap();
            assert_eq!(check_read(&reader, &after), verdict);
            // The server's check of only what the push wrote into, from the pushed bytes.
            let push = d.save_after(&heads);
            if push.is_empty() {
                continue;
            }
            let mut server = base.fork();
            let pushed = crate::order::document::apply_pushed(&mut server, &push).unwrap();
            let (_, reader) = crate::order::document::hydrate_reading(&server).unwrap();
            assert_eq!(check_touched(&reader, &after, &pushed.written.unwrap()), verdict);
            checked += 1;
            refused += usize::from(verdict.is_err());
        }
    }
    // Mutations that still hydrate (the rest never reach the shape check): both verdicts seen.
    assert!(checked >= 50 && refused >= 20 && checked - refused >= 5, "{checked} checked, {refused} refused");
}

/// A push of several writes anywhere (new entries with nested values, smuggled keys,
/// wrong kinds, deletions, concurrent writes) gets the same verdict from the check of what
/// it wrote as from the whole check.
#[test]
fn pushes_of_many_writes_get_the_same_verdict_from_both_checks() {
    use proptest::prelude::*;
    let (base, _, heads) = noted();
    let mut objs = Vec::new();
    objects(&base, &ROOT, &mut objs);
    let n = objs.len();
    let (refused, accepted) = (std::cell::Cell::new(0), std::cell::Cell::new(0));
    let write = (0..n, 0usize..8, 0usize..6, any::<bool>());
    proptest!(ProptestConfig::with_cases(400), |(writes in proptest::collection::vec(write, 1..6))| {
        let mut d = base.clone().with_actor(automerge::ActorId::random());
        for (at, kind, key, flag) in writes {
            let (obj, obj_kind) = &objs[at];
            let props: Vec<automerge::Prop> = match obj_kind {
                ObjType::Map | ObjType::Table => d.keys(obj).map(automerge::Prop::Map).collect(),
                ObjType::List => (0..d.length(obj)).map(automerge::Prop::Seq).collect(),
                ObjType::Text => vec![],
            };
            let Some(prop) = props.get(key % props.len().max(1)).cloned() else { continue };
            match kind {
                0 => drop(d.put(obj, prop, 7_i64)),
                1 => drop(d.delete(obj, prop)),
                2 if *obj_kind == ObjType::Map => drop(d.put(obj, "smuggled", "x")),
                3 => {
                    // Copy a property's value as a new object of the same kind, maybe with a smuggled key.
                    if let Ok(Some((Value::Object(k @ (ObjType::Map | ObjType::List)), old))) = d.get(obj, prop.clone()) {
                        let entries: Vec<(String, ScalarValue)> = d.map_range(&old, ..).filter_map(|i| match i.value.into_value() {
                            Value::Scalar(v) => Some((i.key.to_string(), v.into_owned())),
                            _ => None,
                        }).collect();
                        if let Ok(new) = d.put_object(obj, prop, k) {
                            for (ek, ev) in entries {
                                let _ = d.put(&new, ek, ev);
                            }
                            if flag && k == ObjType::Map {
                                let _ = d.put(&new, "smuggled", "x");
                            }
                        }
                    }
                }
                4 => {
                    // A new note as the app writes it, maybe with a smuggled key inside.
                    if let Ok(mut now) = autosurgeon::hydrate::<_, WorkOrder>(&d) {
                        now.notes.push(crate::order::model::EngineerNote { at: crate::order::Timestamp(9), text: "new".into(), device: "d".into() });
                        if autosurgeon::reconcile(&mut d, &now).is_ok() && flag {
                            if let Ok(Some((_, notes))) = d.get(ROOT, "notes") {
                                if let Ok(Some((_, note))) = d.get(&notes, d.length(&notes).saturating_sub(1)) {
                                    let _ = d.put(&note, "smuggled", "x");
                                }
                            }
                        }
                    }
                }
                5 => {
                    // A concurrent write by another device.
                    let mut other = d.fork().with_actor(automerge::ActorId::random());
                    let _ = other.put(obj, prop.clone(), if flag { ScalarValue::Str("y".into()) } else { ScalarValue::Int(1) });
                    let _ = d.merge(&mut other);
                }
                _ => drop(d.put(obj, prop, "y".repeat(if flag { MAX_STRING + 1 } else { 3 }))),
            }
        }
        d.commit();
        let push = d.save_after(&heads);
        if push.is_empty() {
            return Ok(());
        }
        let Ok(after) = autosurgeon::hydrate::<_, WorkOrder>(&d) else { return Ok(()) };
        let whole = check_document(&d, &after);
        let mut server = base.clone();
        let pushed = crate::order::document::apply_pushed(&mut server, &push).unwrap();
        let (_, reader) = crate::order::document::hydrate_reading(&server).unwrap();
        let touched = check_touched(&reader, &after, &pushed.written.unwrap());
        prop_assert_eq!(touched.is_ok(), whole.is_ok(), "{:?} vs {:?}", touched, whole);
        prop_assert_eq!(check_read(&reader, &after), whole.clone());
        let count = if whole.is_ok() { &accepted } else { &refused };
        count.set(count.get() + 1);
    });
    let (refused, accepted) = (refused.get(), accepted.get());
    assert!(refused >= 20 && accepted >= 20, "{refused} refused, {accepted} accepted");
}
