//! A read-only view of a document for autosurgeon's `hydrate` that reads each object once.
//!
//! autosurgeon hydrates a struct field by field, and each `get` seeks the object's operations
//! again (in automerge 0.12 a seek by key through the columns). A work order is mostly small
//! maps (an answer, a transition, a note) read key by key, so the seeks dominated the server's
//! merge (24% of its CPU on the offline day). `Reader` answers a map's or list's first `get`
//! with one `map_range`/`list_range` scan and serves the rest of that object from memory. The
//! values are the same ones `get` returns (the visible winner of each key or index), so what
//! hydrates is unchanged; a test compares both readers on every order a visit produces.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ops::RangeBounds;

use automerge::{self as am, AutoCommit, AutomergeError, ObjId, Prop, Value};

type Entry = (Value<'static>, ObjId);

pub struct Reader<'d> {
    doc: &'d AutoCommit,
    maps: RefCell<HashMap<ObjId, HashMap<String, Entry>>>,
    lists: RefCell<HashMap<ObjId, Vec<Entry>>>,
}

impl<'d> Reader<'d> {
    pub fn new(doc: &'d AutoCommit) -> Self {
        Self { doc, maps: RefCell::new(HashMap::new()), lists: RefCell::new(HashMap::new()) }
    }
}

impl autosurgeon::ReadDoc for Reader<'_> {
    type Parents<'a>
        = am::Parents<'a>
    where
        Self: 'a;

    fn get_heads(&self) -> Vec<am::ChangeHash> {
        autosurgeon::ReadDoc::get_heads(self.doc)
    }

    fn get<P: Into<Prop>>(&self, obj: &ObjId, prop: P) -> Result<Option<(Value<'_>, ObjId)>, AutomergeError> {
        let prop = prop.into();
        match &prop {
            Prop::Map(key) => {
                if let Some(fields) = self.maps.borrow().get(obj) {
                    return Ok(fields.get(key).cloned());
                }
            }
            Prop::Seq(index) => {
                if let Some(items) = self.lists.borrow().get(obj) {
                    return Ok(items.get(*index).cloned());
                }
            }
        }
        match (&prop, am::ReadDoc::object_type(self.doc, obj)) {
            (Prop::Map(key), Ok(am::ObjType::Map | am::ObjType::Table)) => {
                let mut maps = self.maps.borrow_mut();
                let fields = maps.entry(obj.clone()).or_insert_with(|| {
                    am::ReadDoc::map_range(self.doc, obj, ..).map(|i| (i.key.to_string(), (i.value.clone().into_value(), i.id()))).collect()
                });
                Ok(fields.get(key).cloned())
            }
            (Prop::Seq(index), Ok(am::ObjType::List)) => {
                let mut lists = self.lists.borrow_mut();
                let items = lists
                    .entry(obj.clone())
                    .or_insert_with(|| am::ReadDoc::list_range(self.doc, obj, ..).map(|i| (i.value.clone().into_value(), i.id())).collect());
                Ok(items.get(*index).cloned())
            }
            // Text, a key on a list, an index on a map, a bad id: automerge's own answer.
            _ => am::ReadDoc::get(self.doc, obj, prop),
        }
    }

    fn object_type<O: AsRef<ObjId>>(&self, obj: O) -> Option<am::ObjType> {
        autosurgeon::ReadDoc::object_type(self.doc, obj)
    }

    fn map_range<'a, O, R>(&'a self, obj: O, range: R) -> am::iter::MapRange<'a>
    where
        R: RangeBounds<String> + 'a,
        O: AsRef<ObjId>,
        R: RangeBounds<String>,
    {
        am::ReadDoc::map_range(self.doc, obj, range)
    }

    fn list_range<O: AsRef<ObjId>, R: RangeBounds<usize>>(&self, obj: O, range: R) -> am::iter::ListRange<'_> {
        am::ReadDoc::list_range(self.doc, obj, range)
    }

    fn length<O: AsRef<ObjId>>(&self, obj: O) -> usize {
        am::ReadDoc::length(self.doc, obj)
    }

    fn text<O: AsRef<ObjId>>(&self, obj: O) -> Result<String, AutomergeError> {
        am::ReadDoc::text(self.doc, obj)
    }

    fn parents<O: AsRef<ObjId>>(&self, obj: O) -> Result<Self::Parents<'_>, AutomergeError> {
        am::ReadDoc::parents(self.doc, obj)
    }

    fn is_empty(&self) -> bool {
        autosurgeon::ReadDoc::is_empty(self.doc)
    }
}
