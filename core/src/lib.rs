//! Onsite core: the offline-first logic of the field engineer's app.
//!
//! Rooms (see ARCHITECTURE.md): `order` (model, Automerge document, checklist, lifecycle,
//! import; pure), `sla` and `sop` (pure rules), `signature`, `evidence` (keys, journal, log,
//! time, blobs, photos), `receipt` and `bundle` (what third parties verify), `sync` (what
//! device and server share), `store` (SQLite + Automerge persistence), `device` (the entry
//! point that ties them to injected clock, signer and location). Nothing here knows FFI.

pub mod attest;
pub mod bundle;
pub mod cancel;
pub mod changes;
pub mod clock;
pub mod crypt;
pub mod device;
pub mod error;
pub mod evidence;
pub mod hash;
pub mod jcs;
pub mod location;
pub mod migrate;
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
pub use device::{Device, DeviceOptions, OrderFilter, OrderScreen, OrderView};
pub use error::{Error, Result};
pub use location::LocationSource;
pub use order::{Actor, Event, GpsFix, Status, WorkOrder};
pub use store::OrderSummary;
