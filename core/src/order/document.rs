//! A work order as an Automerge document: load (snapshot + incremental chunks), hydrate,
//! create and commit. The one place device store and server turn bytes into a `WorkOrder`
//! and back; the typed model is `model.rs` (autosurgeon).

use automerge::transaction::CommitOptions;
use automerge::{ActorId, AutoCommit, ReadDoc};

pub use super::chunks::split_chunks;
pub use super::chunks::{change_links, parse_changes};
use super::WorkOrder;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("not an Automerge document: {0}")]
    Unreadable(#[from] automerge::AutomergeError),
    #[error("not a work order: {0}")]
    NotAnOrder(#[from] autosurgeon::HydrateError),
    #[error("cannot write the order into its document: {0}")]
    Reconcile(#[from] autosurgeon::ReconcileError),
    #[error("no document bytes")]
    Empty,
    #[error("not Automerge changes: {0}")]
    NotChanges(String),
}

/// Loads a stored document: its snapshot, then the change chunks after it.
pub fn load<'a>(snapshot: &[u8], chunks: impl IntoIterator<Item = &'a [u8]>) -> Result<AutoCommit, Error> {
    let mut doc = AutoCommit::load(snapshot)?;
    let chunks: Vec<&[u8]> = chunks.into_iter().collect();
    load_chunks(&mut doc, &chunks)?;
    Ok(doc)
}

/// Applies stored chunks (each one or more change chunks) to `doc`, as `load_incremental`
/// of each in order would. When every chunk parses as changes whose checksums hold, they are
/// applied in one batch: Automerge applies a batch in one pass over the document, where
/// chunk by chunk it makes one pass each (an order edited 50 times loaded 2.7x slower).
/// Anything else (a whole document among them, a chunk that does not parse) is loaded chunk
/// by chunk, exactly as before.
pub fn load_chunks(doc: &mut AutoCommit, chunks: &[&[u8]]) -> Result<(), Error> {
    match parse_changes(chunks) {
        Ok(changes) => doc.apply_changes(changes)?,
        Err(_) => {
            for c in chunks {
                doc.load_incremental(c)?;
            }
        }
    }
    Ok(())
}

/// [`load`] for storage that hands the snapshot and chunks back as one list.
pub fn load_stored(stored: &[Vec<u8>]) -> Result<AutoCommit, Error> {
    let (snapshot, chunks) = stored.split_first().ok_or(Error::Empty)?;
    load(snapshot, chunks.iter().map(Vec::as_slice))
}

/// What [`apply_pushed`] brought into the document.
#[derive(Debug)]
pub struct Pushed {
    /// What the pushed operations wrote; `None` when a whole document was pushed (every
    /// object may be new), the push holds at least half as many operations as the document
    /// had (it writes into most of it), or an object could not be named. `None` asks for
    /// the whole check.
    pub written: Option<Written>,
    /// The pushed bytes are exactly the changes that were new to the document, each chunk
    /// with a checksum that matches it: they can be stored as they came (no `save_after`).
    pub verbatim: bool,
}

/// The objects a push's operations wrote into, and those it created.
#[derive(Debug, Default, PartialEq)]
pub struct Written {
    /// Every object an operation wrote into (the root included), each once.
    pub objects: Vec<automerge::ObjId>,
    /// Every object the push created.
    pub made: Vec<automerge::ObjId>,
}

/// Applies bytes a device pushed (its changes, or a whole document) to `doc`, parsing each
/// chunk once. Unlike `load_incremental`, which skips what it cannot read, any byte that is
/// not part of a well-formed chunk refuses the whole push and leaves `doc` untouched; so does
/// a change chunk whose checksum is not its hash's (Automerge checks that only on load, and
/// stored bytes must load). Changes whose dependencies `doc` lacks stay queued
/// (`get_missing_deps` names them).
pub fn apply_pushed(doc: &mut AutoCommit, bytes: &[u8]) -> Result<Pushed, Error> {
    let chunks = split_chunks(bytes)?;
    if chunks.iter().any(|(kind, _)| *kind == 0) {
        // A whole document (a device resending everything): load it strictly first.
        let options = automerge::LoadOptions::new().on_partial_load(automerge::OnPartialLoad::Error).verification_mode(automerge::VerificationMode::DontCheck);
        match AutoCommit::load_with_options(bytes, options) {
            Ok(_) | Err(automerge::AutomergeError::MissingDeps) => {}
            Err(e) => return Err(Error::NotChanges(e.to_string())),
        }
        doc.load_incremental(bytes)?;
        return Ok(Pushed { written: None, verbatim: false });
    }
    let changes = parse_changes(&[bytes])?;
    let before = doc.stats();
    let pushed_ops: u64 = changes.iter().map(|c| c.len() as u64).sum();
    // Naming what a push wrote costs a decode of every operation; a push that is a large share
    // of the document writes into most of it anyway, so it is checked whole instead.
    let ops = (pushed_ops.saturating_mul(2) < before.num_ops).then(|| written_ops(&changes));
    let count = changes.len() as u64;
    doc.apply_changes(changes)?;
    let verbatim = doc.stats().num_changes == before.num_changes + count;
    Ok(Pushed { written: ops.and_then(|o| o.resolve(doc)), verbatim })
}

/// An object id as a change names it: (counter, actor), `None` for the root.
type RawObj = Option<(u64, ActorId)>;

/// [`Written`] before the document can name the objects.
struct WrittenOps {
    objects: Vec<RawObj>,
    made: Vec<RawObj>,
}

impl WrittenOps {
    /// Names the objects as `doc` does. Automerge builds an id only from text, so each actor
    /// is looked up once (by its first object) and its other objects reuse that id's actor
    /// index; a push writes hundreds of objects by one or two actors.
    fn resolve(self, doc: &AutoCommit) -> Option<Written> {
        let mut index: std::collections::HashMap<ActorId, usize> = std::collections::HashMap::new();
        let mut id = |o: RawObj| -> Option<automerge::ObjId> {
            let Some((counter, actor)) = o else { return Some(automerge::ROOT) };
            if let Some(&i) = index.get(&actor) {
                return Some(automerge::ObjId::Id(counter, actor, i));
            }
            let found = doc.import_obj(&format!("{counter}@{actor}")).ok()?;
            if let automerge::ObjId::Id(_, _, i) = &found {
                index.insert(actor, *i);
            }
            Some(found)
        };
        let objects = self.objects.into_iter().map(&mut id).collect::<Option<Vec<_>>>()?;
        let made = self.made.into_iter().map(&mut id).collect::<Option<Vec<_>>>()?;
        Some(Written { objects, made })
    }
}

/// The objects `changes` write into, each once, and those they create.
fn written_ops(changes: &[automerge::Change]) -> WrittenOps {
    use automerge::legacy::{ObjectId, OpId, OpType};
    let raw = |o: ObjectId| match o {
        ObjectId::Root => None,
        ObjectId::Id(OpId(counter, actor)) => Some((counter, actor)),
    };
    let mut seen = std::collections::HashSet::new();
    let mut out = WrittenOps { objects: Vec::new(), made: Vec::new() };
    for change in changes {
        let start = change.start_op().get();
        for (i, op) in change.decode().operations.into_iter().enumerate() {
            let parent = raw(op.obj);
            if let OpType::Make(_) = op.action {
                out.made.push(Some((start + i as u64, change.actor_id().clone())));
            }
            if seen.insert(parent.clone()) {
                out.objects.push(parent);
            }
        }
    }
    out
}

/// The typed order in `doc`, each object read in one scan (`reader.rs`).
pub fn hydrate(doc: &AutoCommit) -> Result<WorkOrder, Error> {
    Ok(hydrate_reading(doc)?.0)
}

/// [`hydrate`], keeping the objects' scans for another walk of the same document (the
/// shape check: `sync::shape::check_read`).
pub fn hydrate_reading(doc: &AutoCommit) -> Result<(WorkOrder, super::reader::Reader<'_>), Error> {
    let reader = super::reader::Reader::new(doc);
    let order = autosurgeon::hydrate(&reader)?;
    Ok((order, reader))
}

/// Commits pending operations with a message and the time (UTC ms) of the edit.
pub fn commit(doc: &mut AutoCommit, message: &str, at_ms: i64) {
    doc.commit_with(CommitOptions::default().with_message(message).with_time(at_ms / 1000));
}

/// A new document holding `order`, committed by `actor`.
pub fn create(order: &WorkOrder, actor: ActorId, message: &str, at_ms: i64) -> Result<AutoCommit, Error> {
    let mut doc = AutoCommit::new().with_actor(actor);
    autosurgeon::reconcile(&mut doc, order)?;
    commit(&mut doc, message, at_ms);
    Ok(doc)
}

/// Writes the whole of `order` into `doc` (only what differs becomes operations) and
/// commits it. Returns the change bytes (empty when nothing differed).
pub fn reconcile_commit(doc: &mut AutoCommit, order: &WorkOrder, message: &str, at_ms: i64) -> Result<Vec<u8>, Error> {
    let heads = doc.get_heads();
    autosurgeon::reconcile(doc, order)?;
    commit(doc, message, at_ms);
    Ok(doc.save_after(&heads))
}

/// A top-level field whose concurrent values a merge resolved.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FieldConflict {
    pub field: String,
    /// Every value, the winner first.
    pub values: Vec<ConflictValue>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ConflictValue {
    /// The value as JSON.
    pub value: serde_json::Value,
    /// The author's actor id (hex): a device id, or the server's actor for dispatcher edits.
    pub actor: String,
}

/// The concurrent values Automerge resolved in the document's top-level fields.
pub fn conflicts(doc: &AutoCommit) -> Result<Vec<FieldConflict>, Error> {
    let mut out = Vec::new();
    let keys: Vec<String> = doc.keys(automerge::ROOT).collect();
    for key in keys {
        let all = doc.get_all(automerge::ROOT, key.as_str())?;
        if all.len() < 2 {
            continue;
        }
        let mut values = Vec::new();
        for (value, exid) in all.iter().rev() {
            let json = match value {
                automerge::Value::Scalar(s) => scalar_json(s),
                automerge::Value::Object(_) => object_json(doc, exid, 0),
            };
            values.push(ConflictValue { value: json, actor: actor_of(exid) });
        }
        out.push(FieldConflict { field: key, values });
    }
    Ok(out)
}

fn scalar_json(s: &automerge::ScalarValue) -> serde_json::Value {
    use automerge::ScalarValue as S;
    match s {
        S::Str(t) => serde_json::Value::String(t.to_string()),
        S::Int(i) => (*i).into(),
        S::Uint(u) => (*u).into(),
        S::F64(f) => serde_json::Number::from_f64(*f).map_or(serde_json::Value::Null, serde_json::Value::Number),
        S::Boolean(b) => (*b).into(),
        S::Null => serde_json::Value::Null,
        S::Timestamp(t) => (*t).into(),
        other => serde_json::Value::String(other.to_string()),
    }
}

/// A nested map or list as JSON (depth-limited: documents are shallow).
fn object_json(doc: &AutoCommit, obj: &automerge::ObjId, depth: usize) -> serde_json::Value {
    use automerge::{ObjType, ReadDoc, Value};
    if depth > 16 {
        return serde_json::Value::Null;
    }
    let value = |v: Value<'_>, id: automerge::ObjId| match v {
        Value::Scalar(s) => scalar_json(&s),
        Value::Object(_) => object_json(doc, &id, depth + 1),
    };
    match doc.object_type(obj) {
        Ok(ObjType::Map) | Ok(ObjType::Table) => {
            let mut m = serde_json::Map::new();
            for key in doc.keys(obj) {
                if let Ok(Some((v, id))) = doc.get(obj, key.as_str()) {
                    m.insert(key, value(v, id));
                }
            }
            serde_json::Value::Object(m)
        }
        Ok(ObjType::List) => (0..doc.length(obj)).filter_map(|i| doc.get(obj, i).ok().flatten()).map(|(v, id)| value(v, id)).collect(),
        Ok(ObjType::Text) => doc.text(obj).map(serde_json::Value::String).unwrap_or(serde_json::Value::Null),
        Err(_) => serde_json::Value::Null,
    }
}

/// The actor (hex) of an operation id, `counter@actor` in Automerge's display form.
fn actor_of(id: &automerge::ObjId) -> String {
    let s = id.to_string();
    s.split_once('@').map(|(_, a)| a.to_string()).unwrap_or(s)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use automerge::transaction::Transactable;

    /// The server keeps the order it wrote (a new order, a dispatcher's edit) as what its
    /// document hydrates to, to check the next push against: an order written into a
    /// document reads back as itself, imported or worked on site.
    #[test]
    fn an_order_written_into_a_document_hydrates_back_as_itself() {
        use crate::device::testkit;
        let dir = tempfile::tempdir().unwrap();
        let clock = testkit::clock();
        let d = testkit::device(dir.path(), clock.clone());
        testkit::worked_order(&d, &clock, "WO-RT");
        d.add_note("WO-RT", "现场记录 / site note").unwrap();
        let worked = d.get("WO-RT").unwrap().order;
        assert!(!worked.transitions.is_empty() && !worked.notes.is_empty());
        let imported = crate::order::import::parse_orders(&crate::order::import::tests::sample_json("WO-1"), crate::order::Timestamp(0)).unwrap().remove(0);
        for o in [imported, worked.clone()] {
            let doc = create(&o, ActorId::random(), "dispatch", 0).unwrap();
            assert_eq!(hydrate(&doc).unwrap(), o);
        }
        let mut doc = load_stored(&[d.document_bytes("WO-RT").unwrap()]).unwrap().with_actor(ActorId::random());
        let mut edited = worked;
        edited.engineer = crate::order::Engineer { id: "eng-2".into(), name: "王工".into() };
        reconcile_commit(&mut doc, &edited, "dispatcher", 1).unwrap();
        assert_eq!(hydrate(&doc).unwrap(), edited);
    }

    /// A document and two changes made on a copy of it, as one push.
    pub(crate) fn base_and_push() -> (AutoCommit, Vec<u8>) {
        let mut base = AutoCommit::new();
        base.put(automerge::ROOT, "status", "assigned").unwrap();
        // A document much larger than the pushes below, as an order is.
        for k in 0..12 {
            base.put(automerge::ROOT, format!("field{k}"), k).unwrap();
        }
        base.commit();
        let mut device = base.fork();
        let heads = base.get_heads();
        device.put(automerge::ROOT, "status", "accepted").unwrap();
        device.commit();
        device.put(automerge::ROOT, "note", "on my way").unwrap();
        device.commit();
        (base, device.save_after(&heads))
    }

    /// Stored chunks load in one batch when they are all changes, and chunk by chunk
    /// otherwise (a whole document among them, an unreadable or mis-checksummed chunk): the
    /// same document either way as `load_incremental` of each in order.
    #[test]
    fn stored_chunks_load_as_load_incremental_of_each_does() {
        let (mut base, push) = base_and_push();
        let snapshot = base.save();
        let mut device = AutoCommit::load(&snapshot).unwrap();
        device.load_incremental(&push).unwrap();
        let one_by_one = |chunks: &[&[u8]]| {
            let mut d = AutoCommit::load(&snapshot).unwrap();
            for c in chunks {
                d.load_incremental(c).unwrap();
            }
            d
        };
        let extra = {
            let mut d = device.fork();
            let heads = d.get_heads();
            d.put(automerge::ROOT, "status", "arrived").unwrap();
            d.commit();
            d.save_after(&heads)
        };
        let whole = device.save();
        let mut bad_checksum = extra.clone();
        bad_checksum[5] ^= 0x01;
        let cases: Vec<Vec<&[u8]>> =
            vec![vec![&push, &extra], vec![&extra, &push], vec![&push, &whole, &extra], vec![&push, &bad_checksum], vec![&push, &[0x85, 0x6f, 0x4a]]];
        for chunks in cases {
            let mut expected = one_by_one(&chunks);
            let mut loaded = AutoCommit::load(&snapshot).unwrap();
            load_chunks(&mut loaded, &chunks).unwrap();
            assert_eq!(loaded.get_heads(), expected.get_heads());
            assert_eq!(loaded.save(), expected.save());
        }
        assert!(parse_changes(&[&push, &extra]).is_ok());
        assert!(parse_changes(&[&push, &bad_checksum]).is_err());
    }

    #[test]
    fn a_push_applies_like_load_incremental() {
        let (base, push) = base_and_push();
        assert_eq!(split_chunks(&push).unwrap().len(), 2);
        let (mut a, mut b) = (base.clone(), base.clone());
        apply_pushed(&mut a, &push).unwrap();
        b.load_incremental(&push).unwrap();
        assert_eq!(a.get_heads(), b.get_heads());
        assert_eq!(a.get(automerge::ROOT, "note").unwrap().map(|(v, _)| v.to_string()), Some("\"on my way\"".into()));
    }

    #[test]
    fn a_whole_document_is_a_valid_push() {
        let (base, push) = base_and_push();
        let mut device = base.clone();
        device.load_incremental(&push).unwrap();
        let mut server = base.clone();
        apply_pushed(&mut server, &device.save()).unwrap();
        assert_eq!(server.get_heads(), device.get_heads());
    }

    /// Every byte must belong to a chunk: garbage after, a cut anywhere inside a chunk, a
    /// flipped magic or a length past the end refuse the push and leave the document as it was.
    #[test]
    fn malformed_pushes_are_refused_whole() {
        let (mut base, push) = base_and_push();
        let first_len = split_chunks(&push).unwrap()[0].1.len();
        let mut bad: Vec<Vec<u8>> = vec![Vec::new(), b"garbage".to_vec(), [push.clone(), b"trailing".to_vec()].concat()];
        bad.extend((1..push.len()).filter(|&cut| cut != first_len).map(|cut| push[..cut].to_vec()));
        let mut flipped = push.clone();
        flipped[0] ^= 0xff;
        bad.push(flipped);
        let mut long = push[..9].to_vec();
        long.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]);
        bad.push(long);
        for b in &bad {
            let mut doc = base.clone();
            assert!(apply_pushed(&mut doc, b).is_err(), "{} bytes accepted", b.len());
            assert_eq!(doc.get_heads(), base.get_heads());
        }
        // A cut exactly between the two changes is the first change alone: valid.
        let mut doc = base.clone();
        apply_pushed(&mut doc, &push[..first_len]).unwrap();
        assert_ne!(doc.get_heads(), base.get_heads());
    }

    /// The server stores pushed bytes as they came only when they are exactly the new changes
    /// and would load again: a chunk whose checksum is not its own is refused (Automerge
    /// checks checksums only on load, so such bytes would have been stored and then break
    /// every later load of the order).
    #[test]
    fn pushed_bytes_are_kept_only_when_they_load_as_they_are() {
        let (mut base, push) = base_and_push();
        let mut doc = base.clone();
        let pushed = apply_pushed(&mut doc, &push).unwrap();
        assert!(pushed.verbatim);
        assert_eq!(pushed.written, Some(Written { objects: vec![automerge::ROOT], made: Vec::new() }));
        let mut reloaded = base.clone();
        reloaded.load_incremental(&push).unwrap();
        assert_eq!(reloaded.get_heads(), doc.get_heads());
        // Sent again (a retry): nothing new, so not stored as it came.
        assert!(!apply_pushed(&mut doc, &push).unwrap().verbatim);
        // One checksum byte off in either chunk: refused, the document untouched.
        let chunks: Vec<usize> = split_chunks(&push).unwrap().iter().map(|(_, c)| c.len()).collect();
        for at in [4, chunks[0] + 4, chunks[0] + 7] {
            let mut bad = push.clone();
            bad[at] ^= 0x01;
            let mut doc = base.clone();
            let e = apply_pushed(&mut doc, &bad).unwrap_err();
            assert!(e.to_string().contains("checksum"), "{e}");
            assert_eq!(doc.get_heads(), base.get_heads());
        }
    }

    /// A push as large as half the document is checked whole: naming what it wrote would
    /// decode every operation to find most of the document anyway.
    #[test]
    fn a_push_as_large_as_half_the_document_asks_for_the_whole_check() {
        let (mut base, _) = base_and_push();
        let heads = base.get_heads();
        let mut device = base.fork();
        for k in 0..7 {
            device.put(automerge::ROOT, format!("extra{k}"), k).unwrap();
        }
        device.commit();
        let mut server = base.clone();
        let pushed = apply_pushed(&mut server, &device.save_after(&heads)).unwrap();
        assert_eq!(pushed.written, None);
        assert!(pushed.verbatim);
        assert_eq!(server.get_heads(), device.get_heads());
        // One operation fewer stays under half (7 of 13 against 6 of 13).
        let mut device = base.fork();
        for k in 0..6 {
            device.put(automerge::ROOT, format!("extra{k}"), k).unwrap();
        }
        device.commit();
        let mut server = base.clone();
        assert!(apply_pushed(&mut server, &device.save_after(&heads)).unwrap().written.is_some());
    }

    #[test]
    fn the_objects_a_push_writes_into_are_named() {
        let (mut base, _) = base_and_push();
        let heads = base.get_heads();
        let mut device = base.fork();
        let list = device.put_object(automerge::ROOT, "notes", automerge::ObjType::List).unwrap();
        let note = device.insert_object(&list, 0, automerge::ObjType::Map).unwrap();
        device.put(&note, "text", "x").unwrap();
        device.commit();
        let mut server = base.clone();
        let written = apply_pushed(&mut server, &device.save_after(&heads)).unwrap().written.unwrap();
        let mut touched = written.objects;
        touched.sort();
        let mut expected = vec![automerge::ROOT, list.clone(), note.clone()];
        expected.sort();
        assert_eq!(written.made, vec![list.clone(), note.clone()]);
        assert_eq!(touched, expected);
        // Equality ignores the actor index an id carries, but reads follow it: every id
        // reads as the one Automerge builds from the same text.
        for id in touched.iter().chain(&written.made) {
            let own = server.import_obj(&id.to_string()).unwrap();
            assert_eq!(server.object_type(id).unwrap(), server.object_type(&own).unwrap());
            assert_eq!(server.parents(id).unwrap().path(), server.parents(&own).unwrap().path());
            assert_eq!(server.length(id), server.length(&own));
        }
        assert_eq!(server.get(&note, "text").unwrap().map(|(v, _)| v.to_string()), Some("\"x\"".to_string()));
    }
}
