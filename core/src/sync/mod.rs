//! Sync between devices and the server: the wire protocol, field ownership at the boundary,
//! the evidence log's Merkle proofs, and the client engine (outbox, retries, progress).

pub mod authz;
pub mod client;
pub mod merkle;
pub mod protocol;
pub mod shape;
pub mod transport;

pub use client::{SyncObserver, SyncOptions, SyncProgress, SyncReport, SyncStatus};
pub use transport::{HttpTransport, Method, NetError, Request, Response, Transport};
