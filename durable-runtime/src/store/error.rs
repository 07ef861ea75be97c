//! How a store fails: [`StoreError`], independent of any backend, and the [`ErrorClass`] the
//! engine's retry logic reads instead of a backend's own error type.

use crate::instance::RuntimeStatus;

/// How a caller should react to a [`StoreError`]: the worker's retry logic reads only this,
/// never a backend's own error type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// Nothing was applied and the same write may succeed later (a busy or full disk, an I/O
    /// error, a rolled-back transaction): retry with back-off, never give up on it.
    Transient,
    /// Nothing was applied because the store is not where the write expected it to be (fenced:
    /// another step, a client or an earlier attempt changed it first). Re-read and decide again.
    Conflict,
    /// The addressed instance does not exist.
    NotFound,
    /// A stored row does not decode: only the instance it belongs to is affected.
    Corrupt,
    /// The write can never succeed as it is (too large, refused by a constraint) or the store
    /// cannot be used at all: retrying is pointless.
    Fatal,
}

/// What a storage backend failed at. Independent of any backend: a backend maps its own errors
/// into these variants, and callers decide by [`StoreError::class`].
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend could not apply the write now; nothing was applied (class `Transient`).
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// The backend refused the write as it is, and always will (class `Fatal`).
    #[error("the store refused the write: {0}")]
    Refused(String),
    /// The write's expectations about the store no longer hold (history length, messages it
    /// consumes, the instance's status); nothing was applied (class `Conflict`).
    #[error("the write was fenced off: {0}")]
    Fenced(String),
    /// The store file is used by another process.
    #[error("the store {path} is in use by another process or runtime")]
    Locked {
        /// The store.
        path: String,
    },
    /// The store was written by an unknown release (or is not a durable store at all).
    #[error("the store {path} {reason}")]
    IncompatibleSchema {
        /// The store.
        path: String,
        /// What does not match.
        reason: String,
    },
    /// A file operation failed.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A stored row does not decode; nothing is guessed or dropped.
    #[error("corrupt {table} row {key}: {reason}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// The row's key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `CreateInstance` named an id that exists.
    #[error("an instance with id '{0}' already exists")]
    InstanceExists(String),
    /// No instance has this id.
    #[error("no instance with id '{0}'")]
    InstanceNotFound(String),
    /// A client operation does not apply to the instance in its status (terminating a
    /// finished instance, resuming one that is not suspended, purging a running one...);
    /// nothing was changed.
    #[error("cannot {operation} instance '{instance_id}': it is {status}")]
    NotApplicable {
        /// What was asked (`terminate`, `suspend`, `resume`, `restart`, `purge`).
        operation: &'static str,
        /// The instance.
        instance_id: String,
        /// Its status.
        status: RuntimeStatus,
    },
    /// The instance has finished and takes no more events.
    #[error("instance '{instance_id}' is {status} and takes no more events")]
    InstanceFinished {
        /// The instance.
        instance_id: String,
        /// Its final status.
        status: RuntimeStatus,
    },
    /// A step tried to record activity results whose work items are already gone (recorded by
    /// an earlier step); the step was not applied.
    #[error("the results of activity work items {0:?} are already recorded")]
    AlreadyRecorded(Vec<i64>),
    /// A step tried to record the firing of timers that are already gone (fired before, or
    /// discarded with their run); the step was not applied.
    #[error("timers {0:?} fired or were discarded before")]
    TimersGone(Vec<i64>),
    /// A step tried to consume messages that are already gone (consumed by an earlier step);
    /// the step was not applied.
    #[error("messages {0:?} were consumed before")]
    MessagesGone(Vec<i64>),
    /// A backend answered a write with the wrong kind of result (a bug in the backend).
    #[error("the store answered a {0} write with another kind of result")]
    UnexpectedAnswer(&'static str),
    /// The store's writer stopped (after an earlier fatal error or at shutdown).
    #[error("the store is closed")]
    Closed,
    /// A step or entity batch of a partition whose lease this runtime does not hold (it
    /// expired, or another runtime took it over) in a store shared by many runtimes (see
    /// [`Leases`](super::Leases)); nothing was applied. The holder of the lease runs that
    /// work now.
    #[error("this runtime does not hold the lease on '{0}' (any more)")]
    LeaseLost(String),
}

impl StoreError {
    /// How to react to this error.
    ///
    /// ```
    /// use durable_runtime::store::{ErrorClass, StoreError};
    /// assert_eq!(StoreError::Unavailable("disk full".into()).class(), ErrorClass::Transient);
    /// assert_eq!(StoreError::Refused("string or blob too big".into()).class(), ErrorClass::Fatal);
    /// ```
    pub fn class(&self) -> ErrorClass {
        match self {
            StoreError::Unavailable(_) | StoreError::Io { .. } => ErrorClass::Transient,
            StoreError::Fenced(_)
            | StoreError::InstanceExists(_)
            | StoreError::InstanceFinished { .. }
            | StoreError::NotApplicable { .. }
            | StoreError::AlreadyRecorded(_)
            | StoreError::TimersGone(_)
            | StoreError::MessagesGone(_)
            | StoreError::LeaseLost(_) => ErrorClass::Conflict,
            StoreError::InstanceNotFound(_) => ErrorClass::NotFound,
            StoreError::Corrupt { .. } => ErrorClass::Corrupt,
            StoreError::Refused(_)
            | StoreError::Locked { .. }
            | StoreError::IncompatibleSchema { .. }
            | StoreError::UnexpectedAnswer(_)
            | StoreError::Closed => ErrorClass::Fatal,
        }
    }
}
