//! The errors a runtime, client or store call can return.

use std::time::Duration;

/// What went wrong in a runtime or client call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Two functions of one kind were registered under one name.
    #[error(
        "two {kind} functions are registered as '{name}': {first} and {second}; \
         give one another name with #[{kind}(name = \"...\")]"
    )]
    DuplicateRegistration {
        /// `activity` or `orchestrator`.
        kind: &'static str,
        /// The shared name.
        name: String,
        /// Where the first is defined (`file:line`).
        first: String,
        /// Where the second is defined (`file:line`).
        second: String,
    },
    /// No orchestrator with this name is registered in the program.
    #[error("no orchestrator named '{0}' is registered in this program")]
    UnknownOrchestrator(String),
    /// `start` was given a function that is not marked `#[orchestrator]` (named by its path),
    /// or a reference to one.
    #[error("{}", not_an_orchestrator(.0))]
    NotAnOrchestrator(&'static str),
    /// `start` was given an instance id that is already in use.
    #[error("an instance with id '{0}' already exists")]
    InstanceAlreadyExists(String),
    /// No instance has this id.
    #[error("no instance with id '{0}'")]
    InstanceNotFound(String),
    /// The instance has finished and takes no more events.
    #[error("instance '{instance_id}' is {status} and takes no more events")]
    InstanceFinished {
        /// The instance.
        instance_id: String,
        /// Its final status.
        status: crate::RuntimeStatus,
    },
    /// A management operation does not apply to the instance in its status: terminating or
    /// suspending a finished instance, resuming one that is not suspended, restarting (under
    /// its id) or purging one that has not finished. Nothing was changed.
    #[error("cannot {operation} instance '{instance_id}': it is {status}")]
    NotApplicable {
        /// What was asked (`terminate`, `suspend`, `resume`, `restart`, `purge`).
        operation: &'static str,
        /// The instance.
        instance_id: String,
        /// Its status.
        status: crate::RuntimeStatus,
    },
    /// The instance id is not acceptable.
    #[error("invalid instance id '{id}': {reason}")]
    InvalidInstanceId {
        /// The id given.
        id: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A payload is larger than the runtime's limit (`RuntimeBuilder::max_payload_size`).
    #[error("the {what} is {size} bytes, over the payload limit of {limit} bytes")]
    PayloadTooLarge {
        /// Which payload.
        what: &'static str,
        /// Its encoded size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A value could not be encoded as JSON.
    #[error("the input does not serialize as JSON: {0}")]
    Serialize(#[source] serde_json::Error),
    /// An output could not be decoded into the type asked for.
    #[error("the output of instance '{instance_id}' does not decode as `{expected}`: {source}")]
    Decode {
        /// The instance.
        instance_id: String,
        /// The Rust type asked for.
        expected: &'static str,
        /// The decoder's complaint.
        #[source]
        source: serde_json::Error,
    },
    /// An output was asked of an instance that has none (yet).
    #[error("instance '{instance_id}' has no output: it is {status}{}", failure.as_ref().map(|f| format!(" ({f})")).unwrap_or_default())]
    NoOutput {
        /// The instance.
        instance_id: String,
        /// Its status.
        status: crate::RuntimeStatus,
        /// Its failure message, if it failed.
        failure: Option<String>,
    },
    /// The instance did not finish in time.
    #[error("instance '{instance_id}' did not finish within {timeout:?}")]
    Timeout {
        /// The instance.
        instance_id: String,
        /// How long was waited.
        timeout: Duration,
    },
    /// The store could not take the write now (a full disk, an I/O error); nothing was
    /// recorded. The call may be made again later; [`Runtime::health`](crate::Runtime::health)
    /// says when the store takes writes again.
    #[error("the store is not taking writes now; nothing was recorded: {0}")]
    StoreUnavailable(#[source] crate::store::StoreError),
    /// The storage backend failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// No entity with this name is registered in the program.
    #[error("no entity named '{0}' is registered in this program")]
    UnknownEntity(String),
    /// The entity id is not valid.
    #[error(transparent)]
    InvalidEntityId(#[from] crate::entity::EntityIdError),
    /// A typed operation of one entity was sent to an entity of another name.
    #[error("operation '{operation}' belongs to entity '{expected}', not to '{entity_id}'")]
    WrongEntity {
        /// The operation.
        operation: String,
        /// The entity it belongs to.
        expected: &'static str,
        /// Where it was sent.
        entity_id: String,
    },
    /// The operation name is reserved for the runtime (it starts with `__durable.`).
    #[error("operation name '{0}' is reserved for the runtime")]
    ReservedOperation(String),
    /// An entity's stored state does not decode as the type asked for.
    #[error("the state of entity '{entity_id}' does not decode as `{expected}`: {source}")]
    EntityState {
        /// The entity.
        entity_id: String,
        /// The Rust type asked for.
        expected: &'static str,
        /// The decoder's complaint.
        #[source]
        source: serde_json::Error,
    },
    /// The runtime is shutting down or gone.
    #[error("the runtime has shut down")]
    ShutDown,
}

fn not_an_orchestrator(function: &str) -> String {
    match function.strip_prefix('&') {
        // `&f` is a `Fn` too, of another type than `f`'s.
        Some(itself) => format!(
            "`{function}` is a reference to a function: pass the function itself, \
             `start({itself}, ..)`"
        ),
        None => {
            format!("`{function}` is not an orchestrator: mark the function with #[orchestrator]")
        }
    }
}
