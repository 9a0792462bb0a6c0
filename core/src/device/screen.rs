//! The order detail screen in one value, assembled here once for every front end (FFI and
//! CLI): the order's document is loaded once and every part is computed from it.

use super::{ChecklistView, Closeout, Device, HelpThread, OrderView};
use crate::evidence::photo::PhotoRecord;
use crate::order::document::FieldConflict;
use crate::receipt::SignedReceipt;
use crate::sop::Blocker;
use crate::Result;

/// Everything the order detail screen shows.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OrderScreen {
    pub view: OrderView,
    /// `None` until the checklist is started.
    pub checklist: Option<ChecklistView>,
    /// Why the order cannot be completed yet (empty when it can).
    pub blockers: Vec<Blocker>,
    pub photos: Vec<PhotoRecord>,
    pub receipts: Vec<SignedReceipt>,
    /// Fields whose concurrent edits a merge resolved.
    pub conflicts: Vec<FieldConflict>,
    pub help: Vec<HelpThread>,
    /// Spare parts the order still owes before close-out.
    pub closeout: Closeout,
}

impl Device {
    /// The detail screen of one order. One document load; the rest reads rows.
    pub fn screen(&self, id: &str) -> Result<OrderScreen> {
        let loaded = self.store.open_document(id)?;
        let conflicts = loaded.conflicts()?;
        let order = loaded.order;
        let checklist = match order.checklist.template {
            Some(_) => Some(self.checklist_view(order.clone())?),
            None => None,
        };
        Ok(OrderScreen {
            checklist,
            blockers: self.blockers_of(&order)?,
            photos: self.store.photos(id)?,
            receipts: self.store.receipts(id)?,
            conflicts,
            help: self.help_threads_of(&order)?,
            closeout: self.closeout_of(id)?,
            view: self.view(order),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit;

    #[test]
    fn the_screen_loads_the_document_once() {
        let dir = tempfile::tempdir().unwrap();
        let clock = testkit::clock();
        let d = testkit::device(dir.path(), clock.clone());
        testkit::worked_order(&d, &clock, "WO-1");
        d.add_note("WO-1", "a note").unwrap();
        let before = d.store().document_loads();
        let screen = d.screen("WO-1").unwrap();
        assert_eq!(d.store().document_loads() - before, 1, "one document load for the whole screen");
        assert!(screen.checklist.is_some() && !screen.photos.is_empty(), "the screen is complete");
        assert_eq!(screen.view.order.notes.len(), 1);
        // The same answers as the single-purpose calls.
        assert_eq!(screen.closeout, d.closeout("WO-1").unwrap());
        assert_eq!(screen.photos, d.photos("WO-1").unwrap());
        assert_eq!(screen.blockers, d.blockers("WO-1").unwrap());
        assert_eq!(screen.help, d.help_threads("WO-1").unwrap());
        assert_eq!(screen.conflicts, d.conflicts("WO-1").unwrap());
    }
}
