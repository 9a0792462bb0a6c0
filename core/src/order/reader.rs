//! A read-only view of a document for autosurgeon's `hydrate` that reads each object once.
//!
//! autosurgeon hydrates a struct field by field, and each `get` seeks the object's operations
//! again (in automerge 0.12 a seek by key through the columns). A work order is mostly small
//! maps (an answer, a transition, a note) read key by key, so the seeks dominated the server's
//! merge (24% of its CPU on the offline day). `Reader` answers a map's or list's first `get`
//! with one `map_range`/`list_range` scan and serves the rest of that object from memory. The
//! values are the same ones `get` returns (the visible winner of each key or index), so what
//! hydrates is unchanged; a test compares both readers on every order a visit produces.
//!
//! The scans stay in the reader after the hydrate (`document::hydrate_reading`): the shape
//! check of the same document (`sync::shape`) walks them instead of scanning each object a
//! second time.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ops::RangeBounds;
use std::rc::Rc;

use automerge::{self as am, AutoCommit, AutomergeError, ObjId, Prop, Value};

/// One visible property of a map, as `map_range` yields it.
pub struct MapItem {
    pub key: String,
    pub value: Value<'static>,
    pub id: ObjId,
    /// Other replicas wrote conflicting values here (only the winner is `value`).
    pub conflict: bool,
}

/// One visible element of a list, as `list_range` yields it.
pub struct ListItem {
    pub value: Value<'static>,
    pub id: ObjId,
    pub conflict: bool,
}

pub struct Reader<'d> {
    doc: &'d AutoCommit,
    /// Each map's properties in key order (as `map_range` yields them).
    maps: RefCell<HashMap<ObjId, Rc<[MapItem]>>>,
    lists: RefCell<HashMap<ObjId, Rc<[ListItem]>>>,
}

impl<'d> Reader<'d> {
    pub fn new(doc: &'d AutoCommit) -> Self {
        Self { doc, maps: RefCell::new(HashMap::new()), lists: RefCell::new(HashMap::new()) }
    }

    pub fn doc(&self) -> &'d AutoCommit {
        self.doc
    }

    /// The visible properties of map `obj`, scanned once.
    pub fn map(&self, obj: &ObjId) -> Rc<[MapItem]> {
        if let Some(items) = self.maps.borrow().get(obj) {
            return items.clone();
        }
        let mut items: Vec<MapItem> = am::ReadDoc::map_range(self.doc, obj, ..)
            .map(|i| MapItem { key: i.key.to_string(), id: i.id(), conflict: i.conflict, value: i.value.into_value().to_owned() })
            .collect();
        // Already in key order; sorting keeps lookups right whatever the iterator's order.
        items.sort_by(|a, b| a.key.cmp(&b.key));
        let items: Rc<[MapItem]> = items.into();
        self.maps.borrow_mut().insert(obj.clone(), items.clone());
        items
    }

    /// The visible elements of list `obj`, scanned once.
    pub fn list(&self, obj: &ObjId) -> Rc<[ListItem]> {
        if let Some(items) = self.lists.borrow().get(obj) {
            return items.clone();
        }
        let items: Rc<[ListItem]> =
            am::ReadDoc::list_range(self.doc, obj, ..).map(|i| ListItem { id: i.id(), conflict: i.conflict, value: i.value.into_value().to_owned() }).collect();
        self.lists.borrow_mut().insert(obj.clone(), items.clone());
        items
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
        // An object read before is answered from its scan without asking for its type.
        let kind = match &prop {
            Prop::Map(_) if self.maps.borrow().contains_key(obj) => Ok(am::ObjType::Map),
            Prop::Seq(_) if self.lists.borrow().contains_key(obj) => Ok(am::ObjType::List),
            _ => am::ReadDoc::object_type(self.doc, obj),
        };
        match (&prop, kind) {
            (Prop::Map(key), Ok(am::ObjType::Map | am::ObjType::Table)) => {
                let items = self.map(obj);
                Ok(items.binary_search_by(|i| i.key.as_str().cmp(key)).ok().map(|at| (items[at].value.clone(), items[at].id.clone())))
            }
            (Prop::Seq(index), Ok(am::ObjType::List)) => Ok(self.list(obj).get(*index).map(|i| (i.value.clone(), i.id.clone()))),
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
