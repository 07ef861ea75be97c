//! # durable
//!
//! Durable workflows for Rust. Write orchestrations as plain `async fn`s; every `.await` on the
//! [`OrchestrationContext`] is checkpointed into an append-only history, and after a crash the
//! orchestration is rebuilt by replaying its code against that history.
//!
//! ```no_run
//! use durable_runtime::prelude::*;
//!
//! #[activity]
//! async fn say_hello(city: String) -> Result<String, ActivityError> {
//!     Ok(format!("Hello {city}!"))
//! }
//!
//! #[orchestrator]
//! async fn hello_sequence(ctx: OrchestrationContext) -> Result<Vec<String>, OrchestrationError> {
//!     let mut out = Vec::new();
//!     for city in ["Tokyo", "Seattle", "London"] {
//!         out.push(ctx.call_activity(say_hello, city.to_string()).await?);
//!     }
//!     Ok(out)
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), durable_runtime::Error> {
//!     let runtime = Runtime::builder().sqlite("durable.db").start().await?;
//!     let client = runtime.client();
//!     let id = client.start(hello_sequence, ()).await?;
//!     println!("{:?}", client.wait_for_completion(&id, Duration::from_secs(30)).await?);
//!     Ok(())
//! }
//! ```
//!
//! The annotated functions stay plain `async fn`s: `say_hello(city).await` calls the activity
//! directly (in a test, say), and its name is what `ctx.call_activity` and `client.start` take.
//!
//! Modules, by concept: [`registry`] (what the macros register), [`function`] (which functions
//! a typed call accepts, and their input and output types), [`outcome`] (success or failure, by
//! the return type), [`context`] (the orchestration API), [`history`] (the event log),
//! [`store`] (backends), [`testing`] (virtual time, mocks, the replay tester), plus the replay engine, dispatcher and workers inside the runtime.

pub mod activity_context;
pub mod client;
pub mod clock;
pub mod context;
mod dispatch;
pub mod entity;
pub mod error;
pub mod failure;
pub mod function;
mod generated;
mod health;
pub mod history;
#[cfg(feature = "http")]
pub mod http;
pub mod instance;
mod logging;
pub mod outcome;
pub mod payload;
pub mod registry;
mod replay;
pub mod runtime;
pub mod store;
pub mod testing;
mod worker;

pub use activity_context::ActivityContext;
pub use client::{Client, StartOptions};
pub use context::{
    ContinueAsNew, CustomStatusError, DurableFuture, Either, EntityLock, EventWithTimeout,
    LOCKING_RULES, OrchestrationContext, RetryFuture, RetryIf, RetryPolicy, TaskFuture,
    TimerFuture, WhenAny, WhenAny2,
};
#[doc(hidden)]
pub use dispatch::CacheCounters;
pub use durable_macros::{activity, entity, orchestrator};
pub use entity::{EntityContext, EntityError, EntityId, EntityOps, Operation};
pub use error::Error;
pub use failure::{ActivityError, EventWaitError, FailureDetails, OrchestrationError, TaskFailed};
pub use function::{ActivityFn, OrchestratorFn};
pub use health::{DEFAULT_WRITE_RETRY_INTERVAL, Health};
pub use history::{
    CarriedEvent, EntityCallEvent, ExecutionStartedEvent, HistoryEvent, HistoryRecord,
    ParentInstance, SubOrchestrationCreatedEvent,
};
pub use instance::{InstancePage, InstanceQuery, InstanceStatus, RuntimeStatus};
pub use outcome::{Outcome, PlainOutput};
pub use payload::Payload;
pub use runtime::{Runtime, RuntimeBuilder};
pub use store::PurgeFilter;
pub use uuid::Uuid;

/// Everything a typical program needs: `use durable_runtime::prelude::*;`.
pub mod prelude {
    pub use crate::{
        ActivityContext, ActivityError, ActivityFn, Client, DurableFuture, Either, EntityContext,
        EntityError, EntityId, EntityOps, EventWaitError, InstanceStatus, Operation,
        OrchestrationContext, OrchestrationError, OrchestratorFn, RetryPolicy, Runtime,
        RuntimeStatus, TaskFailed, activity, entity, orchestrator,
    };
    pub use std::time::Duration;
}

/// What macro-generated code uses. Not public API: may change in any release.
#[doc(hidden)]
pub mod __private {
    pub use crate::entity::{
        EntityBehavior, EntityOps, EntityRegistration, EntityReturn, FunctionEntity, ImplEntity,
        OperationCall, OperationDone, OperationFuture, decode_input, result_output,
        unknown_operation, value_output,
    };
    pub use crate::failure::FailureDetails;
    pub use crate::generated::*;
    pub use crate::payload::Payload;
    pub use ::tracing;
}
