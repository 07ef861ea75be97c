//! How the engine runs an entity's code without knowing its type: a live entity is a boxed
//! [`EntityBehavior`] holding the decoded state, made by the registration `#[entity]` writes.

use super::context::{EntityContext, EntityError};
use super::id::EntityId;
use super::operation::OutgoingSignal;
use super::ops::{EntityOps, OutgoingStart};
use crate::payload::Payload;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::future::Future;
use std::pin::Pin;

/// A boxed, sendable future borrowing the entity for the length of one operation.
pub type OperationFuture<'a> =
    Pin<Box<dyn Future<Output = Result<OperationDone, EntityError>> + Send + 'a>>;

/// One operation to run.
#[derive(Clone, Copy, Debug)]
pub struct OperationCall<'a> {
    /// The entity.
    pub entity: &'a EntityId,
    /// The operation's name.
    pub name: &'a str,
    /// Its input.
    pub input: &'a Payload,
}

/// What a successful operation produced besides its effect on the state.
#[derive(Debug, Default)]
pub struct OperationDone {
    /// Its result (`None`: `()`).
    pub(crate) result: Option<Payload>,
    /// The signals it sent.
    pub(crate) signals: Vec<OutgoingSignal>,
    /// The orchestrations it started.
    pub(crate) starts: Vec<OutgoingStart>,
}

impl OperationDone {
    /// A result and no side effects (for generated code).
    pub fn with_result(result: Option<Payload>) -> Self {
        OperationDone {
            result,
            ..OperationDone::default()
        }
    }

    /// Adds the side effects the operation asked for (for generated code).
    #[doc(hidden)]
    pub fn with_ops(mut self, ops: EntityOps) -> Self {
        self.signals.extend(ops.signals);
        self.starts.extend(ops.starts);
        self
    }
}

/// A live entity: its decoded state and the code of its operations. Not public API: what
/// `#[entity]` generates implements it.
#[doc(hidden)]
pub trait EntityBehavior: Send + 'static {
    /// Replaces the state with the stored one (`None`: no state).
    fn restore(&mut self, state: Option<&Payload>) -> Result<(), String>;
    /// The state encoded for the store (`None`: no state).
    fn snapshot(&self) -> Result<Option<Payload>, String>;
    /// Runs one operation on the state. On an error (or a panic) the state may be left half
    /// changed: the engine restores it from the snapshot taken before.
    fn run<'a>(&'a mut self, call: OperationCall<'a>) -> OperationFuture<'a>;
}

/// The body of a function-style entity, as the registration calls it.
pub type EntityFnBody<S> =
    for<'c> fn(
        &'c mut EntityContext<S>,
    ) -> Pin<Box<dyn Future<Output = Result<(), EntityError>> + Send + 'c>>;

/// A function-style entity (`#[entity] async fn name(ctx: &mut EntityContext<S>)`).
#[doc(hidden)]
pub struct FunctionEntity<S> {
    state: Option<S>,
    body: EntityFnBody<S>,
}

impl<S> FunctionEntity<S>
where
    S: Serialize + DeserializeOwned + Send + 'static,
{
    /// A live entity with no state, running `body` for each operation.
    pub fn boxed(body: EntityFnBody<S>) -> Box<dyn EntityBehavior> {
        Box::new(FunctionEntity { state: None, body })
    }
}

impl<S> EntityBehavior for FunctionEntity<S>
where
    S: Serialize + DeserializeOwned + Send + 'static,
{
    fn restore(&mut self, state: Option<&Payload>) -> Result<(), String> {
        self.state = state
            .map(|payload| {
                payload.decode::<S>().map_err(|err| {
                    format!(
                        "the stored state does not decode as `{}`: {err}",
                        std::any::type_name::<S>()
                    )
                })
            })
            .transpose()?;
        Ok(())
    }

    fn snapshot(&self) -> Result<Option<Payload>, String> {
        self.state
            .as_ref()
            .map(|state| Payload::encode(state).map_err(|err| err.to_string()))
            .transpose()
    }

    fn run<'a>(&'a mut self, call: OperationCall<'a>) -> OperationFuture<'a> {
        let body = self.body;
        Box::pin(async move {
            let mut ctx = EntityContext::new(
                call.entity.clone(),
                call.name.to_string(),
                call.input.clone(),
                self.state.take(),
            );
            let outcome = body(&mut ctx).await;
            let (state, result, ops) = ctx.finish();
            self.state = state;
            outcome.map(|()| OperationDone::with_result(result).with_ops(ops))
        })
    }
}

/// Turns what an entity function returns into the operation's outcome: `()` always succeeds,
/// `Result<(), E>` fails with `E`'s message.
#[doc(hidden)]
pub trait EntityReturn {
    /// The outcome.
    fn into_outcome(self) -> Result<(), EntityError>;
}

impl EntityReturn for () {
    fn into_outcome(self) -> Result<(), EntityError> {
        Ok(())
    }
}

impl<E: std::fmt::Display> EntityReturn for Result<(), E> {
    fn into_outcome(self) -> Result<(), EntityError> {
        self.map_err(|err| EntityError::Failed(err.to_string()))
    }
}
