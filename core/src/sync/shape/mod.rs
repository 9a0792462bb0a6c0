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
use crate::order::reader::Reader;
use crate::order::WorkOrder;

/// Largest string (or byte string) anywhere in a work-order document, in bytes.
pub const MAX_STRING: usize = 16 * 1024;
/// Most entries of any list in a work-order document.
pub const MAX_LIST: usize = 10_000;

fn refuse(path: &(impl std::fmt::Display + ?Sized), reason: impl Into<String>) -> Forbidden {
    Forbidden { field: path.to_string(), reason: reason.into() }
}

/// Checks that `doc` holds exactly the shape of `order` (its hydrated form).
/// Checks every value of the merged document, conflicting ones included, against the
/// reference shape. One scan per object (`map_range`/`list_range`) against the reference's
/// hydrated tree; only conflicted properties are read value by value (`get_all`).
pub fn check_document(doc: &AutoCommit, order: &WorkOrder) -> Result<(), Forbidden> {
    check_read(&Reader::new(doc), order)
}

/// [`check_document`] over the scans a hydrate of the same document already made
/// (`order::document::hydrate_reading`): each object is read once for both.
pub fn check_read(reader: &Reader<'_>, order: &WorkOrder) -> Result<(), Forbidden> {
    let root = reference(order)?;
    check_root(reader, &root, usize::MAX, None)
}

/// [`check_document`] for a document that had the shape before a push wrote into the
/// objects of `written` (`order::document::Pushed`): only those objects are scanned, each one
/// level deep (its own properties, and the kind and size of each value), which is all the
/// push can have altered. The scan starts at the written objects the push did not create
/// (placed by Automerge's `parents`, so only a few) and goes down into written children
/// wherever it meets them, conflicting values included; an object it created is written
/// as soon as it holds anything. A written object the scan never reaches (in a deleted
/// subtree, or under a losing value) gets the whole check. `reader` reads the merged
/// document (the hydrate's, so objects it scanned are not scanned again).
pub fn check_touched(reader: &Reader<'_>, order: &WorkOrder, written: &Written) -> Result<(), Forbidden> {
    let doc = reader.doc();
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
        let Ok(Some(path)) = path else { return check_root(reader, &root, usize::MAX, None) };
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
            check_root(reader, &root, 1, Some(&touched))?;
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
        Scan { reader, owner, touched: Some(&touched) }.value(Value::Object(kind), obj, at, &Path::root(&text), 1)?;
    }
    if written.objects.iter().any(|o| !touched.reached.borrow().contains(o)) {
        return check_root(reader, &root, usize::MAX, None);
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
fn check_root(reader: &Reader<'_>, root: &automerge::hydrate::Map, depth: usize, touched: Option<&Touched<'_>>) -> Result<(), Forbidden> {
    let depth = depth.saturating_sub(1);
    for item in reader.map(&ROOT).iter() {
        let key = item.key.as_str();
        let owner = owner_of(key).ok_or_else(|| refuse(key, "not a field of a work order"))?;
        let scan = Scan { reader, owner, touched };
        scan.prop(&ROOT, &item.value, &item.id, item.conflict, root.get(key), &Path::root(key), depth)?;
    }
    Ok(())
}

/// Where a value sits (`customer.contact`, `notes[3].text`), written out only when a refusal
/// names it: formatting every value's path was most of the whole check's allocations.
#[derive(Clone, Copy)]
struct Path<'a> {
    up: Option<&'a Path<'a>>,
    step: Step<'a>,
}

#[derive(Clone, Copy)]
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

impl<'a> Path<'a> {
    /// A top-level key, or a path already written out (`check_touched`'s starting points).
    fn root(key: &'a str) -> Self {
        Path { up: None, step: Step::Key(key) }
    }

    fn key(&'a self, key: &'a str) -> Path<'a> {
        Path { up: Some(self), step: Step::Key(key) }
    }

    fn index(&'a self, i: usize) -> Path<'a> {
        Path { up: Some(self), step: Step::Index(i) }
    }

    /// The property this path ends at, as Automerge names it.
    fn prop(&self) -> automerge::Prop {
        match self.step {
            Step::Key(k) => automerge::Prop::Map(k.to_string()),
            Step::Index(i) => automerge::Prop::Seq(i),
        }
    }
}

impl std::fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(up) = self.up {
            up.fmt(f)?;
        }
        match (self.up, self.step) {
            (None, Step::Key(k)) => f.write_str(k),
            (Some(_), Step::Key(k)) => write!(f, ".{k}"),
            (_, Step::Index(i)) => write!(f, "[{i}]"),
        }
    }
}

/// The shape check as one scan per object (see [`check_document`]).
struct Scan<'a> {
    reader: &'a Reader<'a>,
    owner: Owner,
    /// With [`check_touched`]: an object a push wrote into is read even at depth 0.
    touched: Option<&'a Touched<'a>>,
}

impl Scan<'_> {
    /// The property at `path` in `obj`: its winning `value` (object `id`), or every value when
    /// it is conflicted.
    #[allow(clippy::too_many_arguments)] // a property's every input, named at the callers
    fn prop(
        &self,
        obj: &ObjId,
        value: &Value<'_>,
        id: &ObjId,
        conflict: bool,
        reference: Option<&Tree>,
        path: &Path<'_>,
        depth: usize,
    ) -> Result<(), Forbidden> {
        if !conflict {
            return self.value(value.clone(), id, reference, path, depth);
        }
        if self.owner != Owner::Engineer {
            return Err(refuse(path, "conflicting values on a field the device does not own"));
        }
        // Every conflicting value must have the shape too (only the winner is hydrated).
        for (value, id) in self.reader.doc().get_all(obj, path.prop()).map_err(|e| refuse(path, e.to_string()))? {
            self.value(value, &id, reference, path, depth)?;
        }
        Ok(())
    }

    /// A value against its reference; an object's own properties are read while `depth` > 0,
    /// or when the push being checked wrote into it.
    fn value(&self, value: Value<'_>, id: &ObjId, reference: Option<&Tree>, path: &Path<'_>, depth: usize) -> Result<(), Forbidden> {
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
                for item in self.reader.map(id).iter() {
                    let key = item.key.as_str();
                    self.prop(id, &item.value, &item.id, item.conflict, r.get(key), &path.key(key), depth - 1)?;
                }
                Ok(())
            }
            (Value::Object(ObjType::List), Tree::List(r)) => {
                if self.reader.doc().length(id) > MAX_LIST {
                    return Err(refuse(path, format!("more than {MAX_LIST} entries")));
                }
                if depth == 0 {
                    return Ok(());
                }
                let mut refs = r.iter().map(|v| &v.value);
                for (i, item) in self.reader.list(id).iter().enumerate() {
                    self.prop(id, &item.value, &item.id, item.conflict, refs.next(), &path.index(i), depth - 1)?;
                }
                Ok(())
            }
            (Value::Object(ObjType::Text), Tree::Text(_)) => {
                if self.reader.doc().length(id) > MAX_STRING {
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

fn scalar(value: &ScalarValue, reference: &ScalarValue, path: &(impl std::fmt::Display + ?Sized)) -> Result<(), Forbidden> {
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
mod tests;
