//! The one public error type. Variants are what an app can act on; the mapping from the
//! core's internal errors lives here and nowhere else.

use onsite_core::{order, store};

use crate::types::OrderStatus;

#[derive(Debug, thiserror::Error, uniffi::Error)]
pub enum ApiError {
    #[error("not found: {id}")]
    NotFound { id: String },
    #[error("invalid `{field}`: {reason}")]
    InvalidInput { field: String, reason: String },
    #[error("`{event}` is not allowed while the order is {from:?}")]
    IllegalTransition { from: OrderStatus, event: String },
    #[error("not permitted: {reason}")]
    NotPermitted { reason: String },
    #[error("conflict: {reason}")]
    Conflict { reason: String },
    #[error("the database was written by a newer app (schema {found}, this app reads up to {supported})")]
    DatabaseTooNew { found: u32, supported: u32 },
    #[error("the database file is damaged or not an Onsite database: {reason}")]
    Corrupt { reason: String },
    #[error("storage failure: {reason}")]
    Storage { reason: String },
    #[error("internal error: {reason}")]
    Internal { reason: String },
}

impl From<onsite_core::Error> for ApiError {
    fn from(e: onsite_core::Error) -> Self {
        match e {
            onsite_core::Error::Order(e) => e.into(),
            onsite_core::Error::Store(e) => e.into(),
        }
    }
}

impl From<order::Error> for ApiError {
    fn from(e: order::Error) -> Self {
        match e {
            order::Error::Invalid { field, reason } => ApiError::InvalidInput { field, reason },
            order::Error::IllegalTransition { from, event } => ApiError::IllegalTransition { from: from.into(), event },
            e @ order::Error::NotPermitted { .. } => ApiError::NotPermitted { reason: e.to_string() },
            order::Error::UnknownStatus { value } => {
                ApiError::InvalidInput { field: "status".into(), reason: format!("unknown status `{value}`") }
            }
        }
    }
}

impl From<store::Error> for ApiError {
    fn from(e: store::Error) -> Self {
        let reason = e.to_string();
        match e {
            store::Error::NotFound { id } => ApiError::NotFound { id },
            store::Error::AlreadyExists { .. } => ApiError::Conflict { reason },
            store::Error::TooNew { found, supported } => ApiError::DatabaseTooNew { found, supported },
            store::Error::Corrupt { .. } => ApiError::Corrupt { reason },
            store::Error::Open { .. } | store::Error::Sqlite(_) => ApiError::Storage { reason },
            store::Error::Document { .. } => ApiError::InvalidInput { field: "document".into(), reason },
        }
    }
}

/// An exception thrown inside a Kotlin/Swift callback arrives here instead of panicking.
impl From<uniffi::UnexpectedUniFFICallbackError> for ApiError {
    fn from(e: uniffi::UnexpectedUniFFICallbackError) -> Self {
        ApiError::Internal { reason: format!("callback failed: {}", e.reason) }
    }
}
