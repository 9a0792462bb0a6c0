//! What the device and the server share about sync: the wire protocol (`protocol`), what a
//! push may change (`authz`: ownership, lifecycle path, rebase; `shape`: exact document
//! shape) and the HTTP transport (`transport`). The client engine is `device::sync`, the
//! server's side `onsite-server`.

pub mod authz;
pub mod journal_wire;
pub mod protocol;
pub mod shape;
pub mod transport;

pub use transport::{HttpTransport, Method, NetError, Request, Response, Transport};
