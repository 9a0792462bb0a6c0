//! Evidence: device keys (`signer`), the signed hash-chained operation log (`journal`),
//! the provider's Merkle log with checkpoints and proofs (`log`), trusted time (`time`),
//! content-addressed blobs (`blob`), photo analysis and records (`photo`).

pub mod blob;
pub mod journal;
pub mod log;
pub mod photo;
pub mod signer;
pub mod time;

pub use photo::Analysis;

pub use journal::{Draft, Entry};
pub use signer::{Signer, SoftwareSigner};

/// Errors of the evidence capability as the device reports them.
#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    #[error("this device's journal is signed by another key; open it with the key it was created with")]
    KeyMismatch,
    #[error(transparent)]
    Blob(#[from] blob::Error),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("time ticket refused: {0}")]
    Ticket(String),
    #[error("no time authority is configured on this device")]
    NoAuthority,
}

#[cfg(test)]
mod tests;
