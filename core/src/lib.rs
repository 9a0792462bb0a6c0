//! Onsite core: the offline-first logic of the field engineer's app.
//!
//! Layers (see ARCHITECTURE.md): `order` (model, lifecycle, import; pure), `sla` (pure),
//! `sop` (checklist templates and gate evaluation; pure), `signature` (stroke encoding),
//! `store` (SQLite + Automerge persistence), `device` (the entry point that ties them to an
//! injected clock). Nothing here knows about FFI.

pub mod bundle;
pub mod cancel;
pub mod changes;
pub mod clock;
pub mod device;
pub mod error;
pub mod evidence;
pub mod hash;
pub mod jcs;
pub mod location;
pub mod money;
pub mod order;
pub mod parts;
pub mod profile;
pub mod receipt;
pub mod signature;
pub mod sla;
pub mod sop;
pub mod store;
pub mod sync;

pub use cancel::Cancel;
pub use changes::{ChangeFeed, ChangeListener, ChangeOrigin, Subscription};
pub use clock::{Clock, ManualClock, SystemClock};
pub use location::LocationSource;
pub use device::{Device, DeviceOptions, OrderFilter, OrderView};
pub use error::{Error, Result};
pub use order::{Actor, Event, GpsFix, Status, WorkOrder};
pub use store::OrderSummary;
