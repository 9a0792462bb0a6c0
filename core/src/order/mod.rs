//! Work orders: the document model, its Automerge form (`document`), the checklist inside
//! it, the dispatcher import, the lifecycle state machine and field ownership. Pure logic;
//! persistence lives in `store` (device) and the server's storage.

pub mod checklist;
mod chunks;
pub mod document;
pub mod import;
pub mod lifecycle;
pub mod model;
pub mod ownership;
pub mod reader;
pub mod tree;

pub use lifecycle::{Actor, Event, Status};
pub use model::*;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Error {
    #[error("invalid `{field}`: {reason}")]
    Invalid { field: String, reason: String },
    #[error("`{event}` is not allowed while the order is {from}")]
    IllegalTransition { from: Status, event: String },
    #[error("`{event}` may not be raised by the {actor:?}")]
    NotPermitted { event: String, actor: Actor },
    #[error("unknown status `{value}`")]
    UnknownStatus { value: String },
}
