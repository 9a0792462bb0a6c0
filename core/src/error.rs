//! The crate-level error: each module's own error, wrapped. The FFI crate maps this to the
//! one public `ApiError`.

use crate::{bundle, device, evidence, order, parts, profile, receipt, signature, sop, store};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Order(#[from] order::Error),
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error(transparent)]
    Sop(#[from] sop::Error),
    #[error(transparent)]
    Signature(#[from] signature::Error),
    #[error(transparent)]
    Evidence(#[from] evidence::EvidenceError),
    #[error(transparent)]
    Receipt(#[from] receipt::Error),
    #[error(transparent)]
    Bundle(#[from] bundle::Error),
    #[error(transparent)]
    Sync(#[from] device::SyncError),
    #[error(transparent)]
    Profile(#[from] profile::Error),
    #[error(transparent)]
    Parts(#[from] parts::Error),
    /// The caller cancelled the operation; what was committed before stays committed.
    #[error("cancelled")]
    Cancelled,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
