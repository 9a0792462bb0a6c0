//! `onsite-ffi`: the only uniffi crate. Thin: it converts records, maps errors and forwards
//! to `onsite_core`. Kotlin package `com.kuaige.onsite`, Swift module `Onsite`.

uniffi::setup_scaffolding!();

mod checklist;
mod error;
mod evidence;
mod field;
mod receipts;
mod store;
mod sync;
mod task;
mod types;
mod logging;

pub use checklist::*;
pub use error::ApiError;
pub use evidence::*;
pub use field::*;
pub use receipts::*;
pub use logging::*;
pub use store::*;
pub use sync::*;
pub use task::CancelToken;
pub use types::*;
