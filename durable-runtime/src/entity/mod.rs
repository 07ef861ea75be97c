//! Durable entities: small named objects whose state is stored as JSON and changed by
//! operations, one at a time, exactly once (SPEC §3).
//!
//! An entity is declared with `#[entity]`, either as a function switching on
//! [`EntityContext::operation_name`] or as an `impl` block whose `pub fn`s are its operations.
//! It is addressed by an [`EntityId`] (`@name@key`), created by its first operation, and sent
//! [`Operation`]s by clients (`Client::signal_entity`) and by other entities
//! ([`EntityContext::signal_entity`]).
//!
//! The engine side (a worker per live entity, batching what queued up into one commit) is in
//! the runtime's workers; this module is what user code touches.

mod behavior;
mod context;
mod id;
mod impl_style;
mod operation;
mod ops;

pub use behavior::{
    EntityBehavior, EntityFnBody, EntityReturn, FunctionEntity, OperationCall, OperationDone,
    OperationFuture,
};
pub use context::{EntityContext, EntityError};
pub use id::{EntityId, EntityIdError};
#[doc(hidden)]
pub use impl_style::{
    ImplDispatch, ImplEntity, decode_input, result_output, unknown_operation, value_output,
};
pub use operation::Operation;
pub use ops::EntityOps;

/// An entity as submitted to `inventory` by `#[entity]`.
#[doc(hidden)]
pub struct EntityRegistration {
    /// The registered name (the `name` part of its ids).
    pub name: &'static str,
    /// Makes a live entity with no state.
    pub new: fn() -> Box<dyn EntityBehavior>,
    /// Where it is defined (`file:line`).
    pub location: &'static str,
}

inventory::collect!(EntityRegistration);
