//! The one public error type. Variants are what an app can act on; the mapping from the
//! core's internal errors lives here and nowhere else.

use onsite_core::{bundle, order, receipt, signature, sop, store};

use crate::orders::OrderStatus;

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
    /// The checklist refused an answer for this step (not open yet, not applicable, closed).
    #[error("step `{step}` refused: {reason}")]
    StepRefused { step: String, reason: String },
    /// Completion refused while checklist steps still block it (`blockers()` lists them).
    #[error("{count} checklist step(s) still block completion (first: {first_step})")]
    Blocked { count: u32, first_step: String },
    /// The server could not be reached or failed; the work stays queued and is retried.
    #[error("network: {reason}")]
    Network { reason: String },
    /// Not enrolled, or the server refused this device's credentials (revoked): enrol again.
    #[error("unauthorized: {reason}")]
    Unauthorized { reason: String },
    /// "前件不还后件不借": parts of earlier orders must be returned before a new borrow.
    #[error("{count} part(s) of earlier orders not returned yet (first: {first})")]
    PartsOutstanding { count: u32, first: String },
    /// The `Onsite` object this sub-area came from was closed: open it again.
    #[error("the store is closed")]
    Closed,
    /// The call was cancelled (its coroutine or task); what it committed stays committed.
    #[error("cancelled")]
    Cancelled,
    #[error("internal error: {reason}")]
    Internal { reason: String },
    /// The store's key: unavailable (the keystore is locked: retry after unlock), wrong or
    /// missing (the store cannot be read with it). Nothing was changed or deleted.
    #[error("store key ({problem:?}): {reason}")]
    StoreKey { problem: KeyProblem, reason: String },
}

/// Why the store's key did not open it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum KeyProblem {
    /// The platform could not give the key now (locked keystore, unreadable key file).
    Unavailable,
    /// A key was given but the store was encrypted with another one.
    Wrong,
    /// The store is encrypted and no key was given.
    Missing,
}

impl From<onsite_core::crypt::KeyError> for ApiError {
    fn from(e: onsite_core::crypt::KeyError) -> Self {
        use onsite_core::crypt::KeyError as K;
        let reason = e.to_string();
        let problem = match e {
            K::Unavailable { .. } | K::Length { .. } => KeyProblem::Unavailable,
            K::Wrong { .. } => KeyProblem::Wrong,
            K::Missing { .. } => KeyProblem::Missing,
        };
        ApiError::StoreKey { problem, reason }
    }
}

impl From<onsite_core::Error> for ApiError {
    fn from(e: onsite_core::Error) -> Self {
        match e {
            onsite_core::Error::Order(e) => e.into(),
            onsite_core::Error::Store(e) => e.into(),
            onsite_core::Error::Sop(e) => e.into(),
            onsite_core::Error::Signature(e) => ApiError::InvalidInput { field: "strokes".into(), reason: e.to_string() },
            onsite_core::Error::Evidence(e) => e.into(),
            onsite_core::Error::Receipt(e) => e.into(),
            onsite_core::Error::Bundle(e) => e.into(),
            onsite_core::Error::Sync(e) => e.into(),
            onsite_core::Error::Cancelled => ApiError::Cancelled,
            onsite_core::Error::Parts(e) => e.into(),
            onsite_core::Error::Profile(e) => e.into(),
        }
    }
}

impl From<onsite_core::profile::Error> for ApiError {
    fn from(e: onsite_core::profile::Error) -> Self {
        use onsite_core::profile::Error as E;
        let reason = e.to_string();
        match e {
            E::NoLogKey => ApiError::Unauthorized { reason },
            E::Certification(_) | E::OtherEngineer => ApiError::InvalidInput { field: "certification".into(), reason },
            E::Io(_) => ApiError::Storage { reason },
            E::Record(_) => ApiError::Internal { reason },
        }
    }
}

impl From<order::Error> for ApiError {
    fn from(e: order::Error) -> Self {
        match e {
            order::Error::Invalid { field, reason } => ApiError::InvalidInput { field, reason },
            order::Error::IllegalTransition { from, event } => ApiError::IllegalTransition { from: from.into(), event },
            e @ order::Error::NotPermitted { .. } => ApiError::NotPermitted { reason: e.to_string() },
            order::Error::UnknownStatus { value } => ApiError::InvalidInput { field: "status".into(), reason: format!("unknown status `{value}`") },
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
            store::Error::Meta { .. } => ApiError::Corrupt { reason },
            store::Error::Document { .. } | store::Error::Refused { .. } => ApiError::InvalidInput { field: "document".into(), reason },
            store::Error::MissingHistory { .. } => ApiError::Conflict { reason },
            store::Error::Journal(_) | store::Error::NoSigner => ApiError::Internal { reason },
            store::Error::Parts(e) => e.into(),
            store::Error::Key(e) => e.into(),
        }
    }
}

impl From<sop::Error> for ApiError {
    fn from(e: sop::Error) -> Self {
        let reason = e.to_string();
        match e {
            sop::Error::Template { file, step, field, reason } => ApiError::InvalidInput {
                field: match step {
                    Some(step) => format!("{file}: step {step}: {field}"),
                    None => format!("{file}: {field}"),
                },
                reason,
            },
            sop::Error::VersionExists { .. } | sop::Error::NotStarted | sop::Error::AlreadyStarted { .. } => ApiError::Conflict { reason },
            sop::Error::UnknownTemplate { id } => ApiError::NotFound { id },
            sop::Error::TemplateMissing { id, version } => ApiError::NotFound { id: format!("{id} v{version}") },
            sop::Error::UnknownStep { step } => ApiError::NotFound { id: step },
            sop::Error::OutOfOrder { step, .. } | sop::Error::NotApplicable { step } | sop::Error::Closed { step, .. } | sop::Error::NaNotAllowed { step } => {
                ApiError::StepRefused { step, reason }
            }
            sop::Error::WrongType { step, .. } => ApiError::InvalidInput { field: step, reason },
            sop::Error::Invalid { step, field, reason } => ApiError::InvalidInput { field: format!("{step}.{field}"), reason },
            sop::Error::Blocked { count, first } => ApiError::Blocked { count: count as u32, first_step: first },
        }
    }
}

impl From<onsite_core::evidence::EvidenceError> for ApiError {
    fn from(e: onsite_core::evidence::EvidenceError) -> Self {
        use onsite_core::evidence::{blob, EvidenceError as E};
        let reason = e.to_string();
        match e {
            E::KeyMismatch => ApiError::Conflict { reason },
            E::Blob(blob::Error::Empty) => ApiError::InvalidInput { field: "photo".into(), reason },
            E::Blob(blob::Error::TooLarge { .. }) => ApiError::InvalidInput { field: "photo".into(), reason },
            E::Blob(blob::Error::Missing { sha256 }) => ApiError::NotFound { id: sha256 },
            E::Blob(blob::Error::Corrupt { .. }) => ApiError::Corrupt { reason },
            E::Blob(blob::Error::Io { .. }) | E::Io(_) => ApiError::Storage { reason },
            E::Ticket(_) | E::NoAuthority => ApiError::NotPermitted { reason },
        }
    }
}

impl From<receipt::Error> for ApiError {
    fn from(e: receipt::Error) -> Self {
        let reason = e.to_string();
        match e {
            receipt::Error::Invalid { field, reason } => ApiError::InvalidInput { field, reason },
            receipt::Error::Strokes(e) => ApiError::InvalidInput { field: "strokes".into(), reason: e.to_string() },
            receipt::Error::WrongStatus { .. } => ApiError::NotPermitted { reason },
            receipt::Error::NotFound { order, revision } => ApiError::NotFound { id: format!("{order} receipt r{revision}") },
            receipt::Error::Canonical(_) | receipt::Error::Signer(_) => ApiError::Internal { reason },
        }
    }
}

impl From<bundle::Error> for ApiError {
    fn from(e: bundle::Error) -> Self {
        let reason = e.to_string();
        match e {
            bundle::Error::Archive(_) | bundle::Error::Member { .. } => ApiError::InvalidInput { field: "bundle".into(), reason },
            bundle::Error::Io(_) => ApiError::Storage { reason },
            bundle::Error::Build(_) => ApiError::Internal { reason },
        }
    }
}

impl From<signature::Error> for ApiError {
    fn from(e: signature::Error) -> Self {
        ApiError::InvalidInput { field: "strokes".into(), reason: e.to_string() }
    }
}

/// An exception thrown inside a Kotlin/Swift callback arrives here instead of panicking.
impl From<uniffi::UnexpectedUniFFICallbackError> for ApiError {
    fn from(e: uniffi::UnexpectedUniFFICallbackError) -> Self {
        ApiError::Internal { reason: format!("callback failed: {}", e.reason) }
    }
}

impl From<onsite_core::device::SyncError> for ApiError {
    fn from(e: onsite_core::device::SyncError) -> Self {
        use onsite_core::device::SyncError as E;
        let reason = e.to_string();
        match e {
            E::NotEnrolled | E::Unauthorized(_) => ApiError::Unauthorized { reason },
            E::Refused(_) => ApiError::NotPermitted { reason },
            E::Network(_) | E::Server { .. } => ApiError::Network { reason },
            E::Protocol(_) => ApiError::Internal { reason },
            E::Journal(_) | E::LocalBlob(_) | E::LogFork(_) => ApiError::Corrupt { reason },
            E::Cancelled => ApiError::Cancelled,
        }
    }
}

impl From<onsite_core::parts::Error> for ApiError {
    fn from(e: onsite_core::parts::Error) -> Self {
        use onsite_core::parts::Error as E;
        let reason = e.to_string();
        match e {
            E::Invalid { field, reason } => ApiError::InvalidInput { field, reason },
            E::BorrowRefused { outstanding, first } => ApiError::PartsOutstanding { count: outstanding, first },
            E::Custody(_) => ApiError::Conflict { reason },
        }
    }
}
