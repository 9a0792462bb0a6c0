//! Evidence: device keys (`signer`), the signed hash-chained operation log (`journal`),
//! trusted time (`time`), content-addressed blobs (`blob`) and photo analysis (`photo`).

pub mod blob;
pub mod journal;
pub mod photo;
pub mod signer;
pub mod time;

pub use journal::{Draft, Entry};
pub use signer::{Signer, SoftwareSigner};
