//! An order as the tree autosurgeon would write into an empty document, without building the
//! document. The shape check compares a pushed document against this tree; building a real
//! document from the order and hydrating it back cost the server's merge ~10% of its CPU.
//!
//! autosurgeon writes into an empty document in one step: it turns the value into an
//! `automerge::hydrate::Map` and hands it to `init_root_from_hydrate`. `Capture` is a `Doc`
//! that is always empty and keeps that map; any other write is refused (autosurgeon makes
//! none on an empty document).

use std::ops::RangeBounds;

use automerge::{self as am, AutoCommit, AutomergeError, ObjId, Value};

use super::WorkOrder;

/// The tree of `order` as autosurgeon reconciles it into a fresh document.
pub fn of(order: &WorkOrder) -> Result<am::hydrate::Map, autosurgeon::ReconcileError> {
    let mut capture = Capture { empty: AutoCommit::new(), root: None };
    autosurgeon::reconcile(&mut capture, order)?;
    capture.root.ok_or(autosurgeon::ReconcileError::TopLevelNotMap)
}

struct Capture {
    /// Answers the reads autosurgeon makes before writing (an empty document's).
    empty: AutoCommit,
    root: Option<am::hydrate::Map>,
}

impl autosurgeon::ReadDoc for Capture {
    type Parents<'a>
        = am::Parents<'a>
    where
        Self: 'a;

    fn get_heads(&self) -> Vec<am::ChangeHash> {
        autosurgeon::ReadDoc::get_heads(&self.empty)
    }
    fn get<P: Into<am::Prop>>(&self, obj: &ObjId, prop: P) -> Result<Option<(Value<'_>, ObjId)>, AutomergeError> {
        autosurgeon::ReadDoc::get(&self.empty, obj, prop)
    }
    fn object_type<O: AsRef<ObjId>>(&self, obj: O) -> Option<am::ObjType> {
        autosurgeon::ReadDoc::object_type(&self.empty, obj)
    }
    fn map_range<'a, O, R>(&'a self, obj: O, range: R) -> am::iter::MapRange<'a>
    where
        R: RangeBounds<String> + 'a,
        O: AsRef<ObjId>,
        R: RangeBounds<String>,
    {
        autosurgeon::ReadDoc::map_range(&self.empty, obj, range)
    }
    fn list_range<O: AsRef<ObjId>, R: RangeBounds<usize>>(&self, obj: O, range: R) -> am::iter::ListRange<'_> {
        autosurgeon::ReadDoc::list_range(&self.empty, obj, range)
    }
    fn length<O: AsRef<ObjId>>(&self, obj: O) -> usize {
        autosurgeon::ReadDoc::length(&self.empty, obj)
    }
    fn text<O: AsRef<ObjId>>(&self, obj: O) -> Result<String, AutomergeError> {
        autosurgeon::ReadDoc::text(&self.empty, obj)
    }
    fn parents<O: AsRef<ObjId>>(&self, obj: O) -> Result<Self::Parents<'_>, AutomergeError> {
        autosurgeon::ReadDoc::parents(&self.empty, obj)
    }
    fn is_empty(&self) -> bool {
        true
    }
}

impl autosurgeon::Doc for Capture {
    fn put<O: AsRef<ObjId>, P: Into<am::Prop>, V: Into<am::ScalarValue>>(&mut self, _: O, _: P, _: V) -> Result<(), AutomergeError> {
        Err(AutomergeError::Fail)
    }
    fn put_object<O: AsRef<ObjId>, P: Into<am::Prop>>(&mut self, _: O, _: P, _: am::ObjType) -> Result<ObjId, AutomergeError> {
        Err(AutomergeError::Fail)
    }
    fn insert<O: AsRef<ObjId>, V: Into<am::ScalarValue>>(&mut self, _: O, _: usize, _: V) -> Result<(), AutomergeError> {
        Err(AutomergeError::Fail)
    }
    fn insert_object<O: AsRef<ObjId>>(&mut self, _: O, _: usize, _: am::ObjType) -> Result<ObjId, AutomergeError> {
        Err(AutomergeError::Fail)
    }
    fn increment<O: AsRef<ObjId>, P: Into<am::Prop>>(&mut self, _: O, _: P, _: i64) -> Result<(), AutomergeError> {
        Err(AutomergeError::Fail)
    }
    fn delete<O: AsRef<ObjId>, P: Into<am::Prop>>(&mut self, _: O, _: P) -> Result<(), AutomergeError> {
        Err(AutomergeError::Fail)
    }
    fn splice_text<O: AsRef<ObjId>>(&mut self, _: O, _: usize, _: isize, _: &str) -> Result<(), AutomergeError> {
        Err(AutomergeError::Fail)
    }
    fn update_text<O: AsRef<ObjId>>(&mut self, _: O, _: &str) -> Result<(), AutomergeError> {
        Err(AutomergeError::Fail)
    }
    fn batch_create<O: AsRef<ObjId>, P: Into<am::Prop>>(&mut self, _: O, _: P, _: am::hydrate::Value, _: bool) -> Result<(), AutomergeError> {
        Err(AutomergeError::Fail)
    }
    fn init_root_from_hydrate(&mut self, value: &am::hydrate::Map) -> Result<(), AutomergeError> {
        self.root = Some(value.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use automerge::ReadDoc;

    use crate::order::import::{parse_orders, tests::sample_json};
    use crate::order::Timestamp;

    /// The captured tree is what a real document built from the order hydrates to.
    #[test]
    fn the_tree_is_the_reconciled_documents() {
        let order = parse_orders(&sample_json("WO-1"), Timestamp(0)).unwrap().remove(0);
        let mut doc = automerge::AutoCommit::new();
        autosurgeon::reconcile(&mut doc, &order).unwrap();
        let real = doc.hydrate(automerge::ROOT, None).unwrap();
        assert_eq!(automerge::hydrate::Value::Map(super::of(&order).unwrap()), real);
    }
}
