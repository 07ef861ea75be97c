//! `EntityContext`: what a function-style entity's operation sees and changes.

use super::id::EntityId;
use super::operation::Operation;
use super::ops::EntityOps;
use crate::function::OrchestratorFn;
use crate::payload::Payload;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// What an operation on an entity failed with: returned by the entity's code (`Err(..)`), or
/// made by the runtime for an input that does not decode or an unknown operation. The
/// operation alone fails: the entity's state is left as it was before it, and the entity keeps
/// serving.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EntityError {
    /// The operation's input does not decode as the type asked for.
    #[error("the input of operation '{operation}' does not decode as `{expected}`: {reason}")]
    Input {
        /// The operation.
        operation: String,
        /// The Rust type asked for.
        expected: &'static str,
        /// The decoder's complaint.
        reason: String,
    },
    /// The entity has no operation of this name.
    #[error("entity '{entity}' has no operation '{operation}'")]
    UnknownOperation {
        /// The entity's name.
        entity: String,
        /// The operation asked for.
        operation: String,
    },
    /// A value does not serialize as JSON.
    #[error("a value of operation '{operation}' does not serialize: {reason}")]
    Encode {
        /// The operation.
        operation: String,
        /// The encoder's complaint.
        reason: String,
    },
    /// An entity id the operation used is not valid.
    #[error(transparent)]
    InvalidId(#[from] super::id::EntityIdError),
    /// The entity's code failed the operation with this message.
    #[error("{0}")]
    Failed(String),
}

impl EntityError {
    /// An operation failure with `message`.
    pub fn new(message: impl Into<String>) -> Self {
        EntityError::Failed(message.into())
    }
}

/// The context of one operation on a function-style entity (`#[entity] async fn`): which
/// operation it is, its input, the entity's state, and the operation's result.
///
/// ```
/// use durable_runtime::prelude::*;
///
/// #[entity]
/// async fn counter(ctx: &mut EntityContext<i64>) -> Result<(), EntityError> {
///     match ctx.operation_name() {
///         "add" => *ctx.state_mut() += ctx.input::<i64>()?,
///         "get" => ctx.return_value(ctx.state().copied().unwrap_or(0))?,
///         "delete" => ctx.delete_state(),
///         other => return Err(EntityError::new(format!("no operation {other}"))),
///     }
///     Ok(())
/// }
/// ```
pub struct EntityContext<S> {
    id: EntityId,
    operation: String,
    input: Payload,
    state: Option<S>,
    result: Option<Payload>,
    ops: EntityOps,
}

impl<S> EntityContext<S> {
    pub(crate) fn new(id: EntityId, operation: String, input: Payload, state: Option<S>) -> Self {
        EntityContext {
            ops: EntityOps::new(&id, &operation),
            id,
            operation,
            input,
            state,
            result: None,
        }
    }

    /// The entity this operation runs on.
    pub fn id(&self) -> &EntityId {
        &self.id
    }

    /// The operation's name.
    pub fn operation_name(&self) -> &str {
        &self.operation
    }

    /// The operation's input, decoded as `T`.
    pub fn input<T: DeserializeOwned>(&self) -> Result<T, EntityError> {
        self.input.decode().map_err(|err| EntityError::Input {
            operation: self.operation.clone(),
            expected: std::any::type_name::<T>(),
            reason: err.to_string(),
        })
    }

    /// The operation's input as it was sent (JSON).
    pub fn raw_input(&self) -> &Payload {
        &self.input
    }

    /// Whether the entity has a state (it has none before its first `set_state` /
    /// `state_mut`, and after `delete_state`).
    pub fn has_state(&self) -> bool {
        self.state.is_some()
    }

    /// The entity's state, if it has one.
    pub fn state(&self) -> Option<&S> {
        self.state.as_ref()
    }

    /// The entity's state to change, created with `S::default()` if it has none.
    pub fn state_mut(&mut self) -> &mut S
    where
        S: Default,
    {
        self.state.get_or_insert_with(S::default)
    }

    /// Replaces the entity's state.
    pub fn set_state(&mut self, state: S) {
        self.state = Some(state);
    }

    /// Deletes the entity's state: reads then see none, and the entity can be purged (see
    /// `Client::purge_entities`). A later operation may create it again.
    pub fn delete_state(&mut self) {
        self.state = None;
    }

    /// Sets the operation's result (what a caller waiting for it receives).
    pub fn return_value<T: Serialize>(&mut self, value: T) -> Result<(), EntityError> {
        self.result = Some(Payload::encode(&value).map_err(|err| EntityError::Encode {
            operation: self.operation.clone(),
            reason: err.to_string(),
        })?);
        Ok(())
    }

    /// Sends `operation` to the entity `id` (itself included), one way. It is queued in the
    /// same commit as this operation's effect on the state: if this operation fails, it is not
    /// sent.
    pub fn signal_entity<R>(
        &mut self,
        id: &EntityId,
        operation: Operation<R>,
    ) -> Result<(), EntityError> {
        self.ops.signal_entity(id, operation)
    }

    /// Starts `orchestrator` with `input` under a fresh instance id, which it returns, in the
    /// same commit as this operation's effect on the state (see [`EntityOps::start_new`]).
    pub fn start_new<F: OrchestratorFn<M>, M>(
        &mut self,
        orchestrator: F,
        input: F::Input,
    ) -> Result<String, EntityError> {
        self.ops.start_new(orchestrator, input)
    }

    /// Starts the orchestrator registered as `name` (see [`EntityOps::start_new_by_name`]).
    pub fn start_new_by_name(
        &mut self,
        name: &str,
        input: impl Serialize,
    ) -> Result<String, EntityError> {
        self.ops.start_new_by_name(name, input)
    }

    /// Takes the state back from a finished operation, with its result and side effects.
    pub(crate) fn finish(self) -> (Option<S>, Option<Payload>, EntityOps) {
        (self.state, self.result, self.ops)
    }
}
