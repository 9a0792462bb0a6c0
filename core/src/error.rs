//! The crate-level error: each module's own error, wrapped. The FFI crate maps this to the
//! one public `ApiError`.

use crate::{evidence, order, signature, sop, store};

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
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
