//! The exact shape of a work-order document, checked on the Automerge document itself (not
//! on its hydrated winner): the server runs [`check_document`] after merging a push, so a
//! device cannot smuggle unknown keys at any depth, oversized values, or conflicting values
//! on fields it does not own (docs/sync-protocol.md, "What a push may change").
//!
//! The reference shape is the hydrated order as autosurgeon would write it into a fresh
//! document (`order::tree`, no document built): every map key of the pushed document must
//! exist there at the same path with the same kind of value.

use automerge::hydrate::Value as Tree;
use automerge::{AutoCommit, ObjId, ObjType, ReadDoc, ScalarValue, Value, ROOT};

use super::authz::Forbidden;
use crate::order::document::Written;
use crate::order::ownership::{owner_of, Owner};
use crate::order::WorkOrder;

/// Largest string (or byte string) anywhere in a work-order document, in bytes.
pub const MAX_STRING: usize = 16 * 1024;
/// Most entries of any list in a work-order document.
pub const MAX_LIST: usize = 10_000;

fn refuse(path: &str, reason: impl Into<String>) -> Forbidden {
    Forbidden { field: path.to_string(), reason: reason.into() }
}

/// Checks that `doc` holds exactly the shape of `order` (its hydrated form).
/// Checks every value of the merged document, conflicting ones included, against the
/// reference shape. One scan per object (`map_range`/`list_range`) against the reference's
/// hydrated tree; only conflicted properties are read value by value (`get_all`).
pub fn check_document(doc: &AutoCommit, order: &WorkOrder) -> Result<(), Forbidden> {
    let root = reference(order)?;
    check_root(doc, &root, usize::MAX, None)
}

/// [`check_document`] for a document that had the shape before a push wrote into the
/// objects of `written` (`order::document::Pushed`): only those objects are scanned, each one
/// level deep (its own properties, and the kind and size of each value), which is all the
/// push can have altered. The scan starts at the written objects the push did not create
/// (placed by Automerge's `parents`, so only a few) and goes down into written children
/// wherever it meets them, conflicting values included; an object it created is written
/// as soon as it holds anything. A written object the scan never reaches (in a deleted
/// subtree, or under a losing value) gets the whole check.
pub fn check_touched(doc: &AutoCommit, order: &WorkOrder, written: &Written) -> Result<(), Forbidden> {
    let root = reference(order)?;
    let touched = Touched { written: written.objects.iter().collect(), reached: Default::default() };
    let made: std::collections::HashSet<&ObjId> = written.made.iter().collect();
    let mut starts: Vec<(Vec<automerge::Prop>, &ObjId)> = Vec::new();
    for obj in written.objects.iter().filter(|o| !made.contains(o)) {
        if *obj == ROOT {
            starts.push((Vec::new(), obj));
            continue;
        }
        // Automerge's path walk unwraps internally: a document it cannot walk gets the whole check.
        let path = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| doc.parents(obj).ok().and_then(|p| p.visible_path())));
        let Ok(Some(path)) = path else { return check_root(doc, &root, usize::MAX, None) };
        starts.push((path.into_iter().map(|(_, prop)| prop).collect(), obj));
    }
    // Parents before children and keys in order, as the whole check meets them.
    starts.sort_by(|a, b| a.0.iter().map(PathKey::of).cmp(b.0.iter().map(PathKey::of)));
    for (path, obj) in starts {
        if touched.reached.borrow().contains(obj) {
            continue;
        }
        let Some((automerge::Prop::Map(first), rest)) = path.split_first() else {
            touched.reached.borrow_mut().insert(ROOT);
            check_root(doc, &root, 1, Some(&touched))?;
            continue;
        };
        let owner = owner_of(first).ok_or_else(|| refuse(first, "not a field of a work order"))?;
        let mut at = root.get(first);
        let mut text = first.clone();
        for prop in rest {
            at = match (at, prop) {
                (Some(Tree::Map(m)), automerge::Prop::Map(k)) => m.get(k),
                (Some(Tree::List(l)), automerge::Prop::Seq(i)) => l.iter().nth(*i).map(|v| &v.value),
                _ => None,
            };
            match prop {
                automerge::Prop::Map(k) => text = format!("{text}.{k}"),
                automerge::Prop::Seq(i) => text = format!("{text}[{i}]"),
            }
        }
        let kind = doc.object_type(obj).map_err(|e| refuse(&text, e.to_string()))?;
        touched.reached.borrow_mut().insert(obj.clone());
        Scan { doc, owner, touched: Some(&touched) }.value(Value::Object(kind), obj, at, &text, 1)?;
    }
    if written.objects.iter().any(|o| !touched.reached.borrow().contains(o)) {
        return check_root(doc, &root, usize::MAX, None);
    }
    Ok(())
}

/// The objects a push wrote into, and those of them a scan has read.
struct Touched<'a> {
    written: std::collections::HashSet<&'a ObjId>,
    reached: std::cell::RefCell<std::collections::HashSet<ObjId>>,
}

/// A path component in the order the whole check walks them.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
enum PathKey<'a> {
    Key(&'a str),
    Index(usize),
}

impl<'a> PathKey<'a> {
    fn of(p: &'a automerge::Prop) -> Self {
        match p {
            automerge::Prop::Map(k) => PathKey::Key(k),
            automerge::Prop::Seq(i) => PathKey::Index(*i),
        }
    }
}

fn reference(order: &WorkOrder) -> Result<automerge::hydrate::Map, Forbidden> {
    crate::order::tree::of(order).map_err(|e| refuse("*", format!("not a work order: {e}")))
}

/// The root's keys and values; `depth` 1 reads the root's own properties only, as
/// [`Scan::value`] reads an object's.
fn check_root(doc: &AutoCommit, root: &automerge::hydrate::Map, depth: usize, touched: Option<&Touched<'_>>) -> Result<(), Forbidden> {
    let depth = depth.saturating_sub(1);
    for item in doc.map_range(ROOT, ..) {
        let key = item.key.to_string();
        let owner = owner_of(&key).ok_or_else(|| refuse(&key, "not a field of a work order"))?;
        let scan = Scan { doc, owner, touched };
        let id = item.id();
        scan.prop(&ROOT, automerge::Prop::Map(key.clone()), item.value.into_value(), id, item.conflict, root.get(&key), &key, depth)?;
    }
    Ok(())
}

/// The shape check as one scan per object (see [`check_document`]).
struct Scan<'a> {
    doc: &'a AutoCommit,
    owner: Owner,
    /// With [`check_touched`]: an object a push wrote into is read even at depth 0.
    touched: Option<&'a Touched<'a>>,
}

impl Scan<'_> {
    /// One property: its winning `value` (object `id`), or every value when it is conflicted.
    #[allow(clippy::too_many_arguments)] // a property's every input, named at the two callers
    fn prop(
        &self,
        obj: &ObjId,
        prop: automerge::Prop,
        value: Value<'_>,
        id: ObjId,
        conflict: bool,
        reference: Option<&Tree>,
        path: &str,
        depth: usize,
    ) -> Result<(), Forbidden> {
        if !conflict {
            return self.value(value, &id, reference, path, depth);
        }
        if self.owner != Owner::Engineer {
            return Err(refuse(path, "conflicting values on a field the device does not own"));
        }
        // Every conflicting value must have the shape too (only the winner is hydrated).
        for (value, id) in self.doc.get_all(obj, prop).map_err(|e| refuse(path, e.to_string()))? {
            self.value(value, &id, reference, path, depth)?;
        }
        Ok(())
    }

    /// A value against its reference; an object's own properties are read while `depth` > 0,
    /// or when the push being checked wrote into it.
    fn value(&self, value: Value<'_>, id: &ObjId, reference: Option<&Tree>, path: &str, depth: usize) -> Result<(), Forbidden> {
        let Some(reference) = reference else { return Err(refuse(path, "not a field of a work order")) };
        let depth = match (depth, &value, self.touched) {
            (0, Value::Object(_), Some(t)) if t.written.contains(id) => {
                t.reached.borrow_mut().insert(id.clone());
                1
            }
            _ => depth,
        };
        match (value, reference) {
            (Value::Object(ObjType::Map), Tree::Map(r)) => {
                if depth == 0 {
                    return Ok(());
                }
                for item in self.doc.map_range(id, ..) {
                    let key = item.key.to_string();
                    let sub = format!("{path}.{key}");
                    let vid = item.id();
                    self.prop(id, automerge::Prop::Map(key.clone()), item.value.into_value(), vid, item.conflict, r.get(&key), &sub, depth - 1)?;
                }
                Ok(())
            }
            (Value::Object(ObjType::List), Tree::List(r)) => {
                if self.doc.length(id) > MAX_LIST {
                    return Err(refuse(path, format!("more than {MAX_LIST} entries")));
                }
                if depth == 0 {
                    return Ok(());
                }
                let refs: Vec<&Tree> = r.iter().map(|v| &v.value).collect();
                for item in self.doc.list_range(id, ..) {
                    let sub = format!("{path}[{}]", item.index);
                    let vid = item.id();
                    let (i, conflict, v) = (item.index, item.conflict, item.value.into_value());
                    self.prop(id, automerge::Prop::Seq(i), v, vid, conflict, refs.get(i).copied(), &sub, depth - 1)?;
                }
                Ok(())
            }
            (Value::Object(ObjType::Text), Tree::Text(_)) => {
                if self.doc.length(id) > MAX_STRING {
                    return Err(refuse(path, format!("longer than {MAX_STRING} bytes")));
                }
                Ok(())
            }
            (Value::Scalar(s), Tree::Scalar(r)) => scalar(&s, r, path),
            _ => Err(refuse(path, "a value of the wrong kind")),
        }
    }
}

/// When a merged document no longer hydrates as a work order, names the first field whose
/// kind of value differs from the order as it was (`before`), so the refusal says which.
pub fn explain_unreadable(doc: &AutoCommit, before: &WorkOrder) -> Forbidden {
    let mut reference = AutoCommit::new();
    if autosurgeon::reconcile(&mut reference, before).is_ok() {
        for key in doc.keys(ROOT) {
            let Some(owner) = owner_of(&key) else { return refuse(&key, "not a field of a work order") };
            let walker = Walker { doc, reference: &reference, owner, lenient: true };
            if let Err(f) = walker.prop(&ROOT, &ROOT, &key, &key) {
                return f;
            }
        }
    }
    refuse("*", "the merged document is not a work order")
}

struct Walker<'a> {
    doc: &'a AutoCommit,
    reference: &'a AutoCommit,
    owner: Owner,
    /// Skip what the reference lacks (naming a kind mismatch, not checking the schema).
    lenient: bool,
}

enum Prop<'a> {
    Key(&'a str),
    Index(usize),
}

impl Walker<'_> {
    fn prop(&self, obj: &ObjId, ref_obj: &ObjId, key: &str, path: &str) -> Result<(), Forbidden> {
        self.value(obj, ref_obj, Prop::Key(key), path)
    }

    fn value(&self, obj: &ObjId, ref_obj: &ObjId, prop: Prop<'_>, path: &str) -> Result<(), Forbidden> {
        let (all, reference) = match prop {
            Prop::Key(k) => (self.doc.get_all(obj, k), self.reference.get(ref_obj, k)),
            Prop::Index(i) => (self.doc.get_all(obj, i), self.reference.get(ref_obj, i)),
        };
        let all = all.map_err(|e| refuse(path, e.to_string()))?;
        if all.len() > 1 && self.owner != Owner::Engineer {
            return Err(refuse(path, "conflicting values on a field the device does not own"));
        }
        let reference = reference.map_err(|e| refuse(path, e.to_string()))?;
        let Some((ref_value, ref_id)) = reference else {
            if self.lenient {
                return Ok(());
            }
            return Err(refuse(path, "not a field of a work order"));
        };
        // Every conflicting value must have the shape too (only the winner is hydrated).
        for (value, id) in &all {
            match (value, &ref_value) {
                (Value::Object(kind), Value::Object(ref_kind)) if kind == ref_kind => self.object(*kind, id, &ref_id, path)?,
                (Value::Object(_), _) | (_, Value::Object(_)) => return Err(refuse(path, "a value of the wrong kind")),
                (Value::Scalar(s), Value::Scalar(r)) => scalar(s, r, path)?,
            }
        }
        Ok(())
    }

    fn object(&self, kind: ObjType, id: &ObjId, ref_id: &ObjId, path: &str) -> Result<(), Forbidden> {
        match kind {
            ObjType::Map | ObjType::Table => {
                for key in self.doc.keys(id) {
                    self.prop(id, ref_id, &key, &format!("{path}.{key}"))?;
                }
            }
            ObjType::List => {
                let n = self.doc.length(id);
                if n > MAX_LIST {
                    return Err(refuse(path, format!("more than {MAX_LIST} entries")));
                }
                for i in 0..n {
                    self.value(id, ref_id, Prop::Index(i), &format!("{path}[{i}]"))?;
                }
            }
            ObjType::Text => {
                if self.doc.length(id) > MAX_STRING {
                    return Err(refuse(path, format!("longer than {MAX_STRING} bytes")));
                }
            }
        }
        Ok(())
    }
}

fn scalar(value: &ScalarValue, reference: &ScalarValue, path: &str) -> Result<(), Forbidden> {
    let size = match value {
        ScalarValue::Str(s) => s.len(),
        ScalarValue::Bytes(b) => b.len(),
        _ => 0,
    };
    if size > MAX_STRING {
        return Err(refuse(path, format!("longer than {MAX_STRING} bytes")));
    }
    if std::mem::discriminant(value) != std::mem::discriminant(reference) {
        return Err(refuse(path, format!("a value of the wrong type ({value:?} where the schema has {reference:?})")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order::import::{parse_orders, tests::sample_json};
    use crate::order::Timestamp;
    use automerge::transaction::Transactable;

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
            assert_eq!(check_touched(&server, &after, &pushed.written.unwrap()).unwrap_err().field, "notes[0]");
            return;
        }
        panic!("the smuggling replica never lost");
    }

    /// A push that appends a new entry holding a smuggled key: the scan reaches the new
    /// object from the list it was inserted into (both written by the push).
    #[test]
    fn a_new_entry_holding_a_smuggled_key_is_refused() {
        let (mut base, order) = doc();
        let mut o = order.clone();
        o.notes.push(crate::order::model::EngineerNote { at: crate::order::Timestamp(5), text: "n".into(), device: "d".into() });
        autosurgeon::reconcile(&mut base, &o).unwrap();
        base.commit();
        let heads = base.get_heads();
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
        assert_eq!(check_touched(&server, &after, &written).unwrap_err().field, "notes[1].smuggled");
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
                // The server's check of only what the push wrote into, from the pushed bytes.
                let push = d.save_after(&heads);
                if push.is_empty() {
                    continue;
                }
                let mut server = base.fork();
                let pushed = crate::order::document::apply_pushed(&mut server, &push).unwrap();
                assert_eq!(check_touched(&server, &after, &pushed.written.unwrap()), verdict);
                checked += 1;
                refused += usize::from(verdict.is_err());
            }
        }
        // Mutations that still hydrate (the rest never reach the shape check): both verdicts seen.
        assert!(checked >= 50 && refused >= 20 && checked - refused >= 5, "{checked} checked, {refused} refused");
    }
}
