//! A work order as an Automerge document: load (snapshot + incremental chunks), hydrate,
//! create and commit. The one place device store and server turn bytes into a `WorkOrder`
//! and back; the typed model is `model.rs` (autosurgeon).

use automerge::transaction::CommitOptions;
use automerge::{ActorId, AutoCommit, ReadDoc};

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
}

/// Loads a stored document: its snapshot, then each change chunk after it, in order.
pub fn load<'a>(snapshot: &[u8], chunks: impl IntoIterator<Item = &'a [u8]>) -> Result<AutoCommit, Error> {
    let mut doc = AutoCommit::load(snapshot)?;
    for c in chunks {
        doc.load_incremental(c)?;
    }
    Ok(doc)
}

/// [`load`] for storage that hands the snapshot and chunks back as one list.
pub fn load_stored(stored: &[Vec<u8>]) -> Result<AutoCommit, Error> {
    let (snapshot, chunks) = stored.split_first().ok_or(Error::Empty)?;
    load(snapshot, chunks.iter().map(Vec::as_slice))
}

pub fn hydrate(doc: &AutoCommit) -> Result<WorkOrder, Error> {
    Ok(autosurgeon::hydrate(doc)?)
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
