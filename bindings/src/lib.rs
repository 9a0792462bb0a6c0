//! `onsite-ffi`: the only uniffi crate. Thin: it converts records, maps errors and forwards
//! to `onsite_core`. Kotlin package `com.kuaige.onsite`, Swift module `Onsite`.

uniffi::setup_scaffolding!();

mod checklist;
mod error;
mod evidence;
mod help;
mod logging;
mod onsite;
mod orders;
mod parts;
mod profile;
mod receipts;
mod signature;
mod sync;
mod task;

pub use checklist::*;
pub use error::{ApiError, KeyProblem};
pub use evidence::*;
pub use help::*;
pub use logging::*;
pub use onsite::*;
pub use orders::*;
pub use parts::*;
pub use profile::*;
pub use receipts::*;
pub use signature::*;
pub use sync::*;
pub use task::CancelToken;
