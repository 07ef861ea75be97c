//! Entities from orchestrations: one-way signals and two-way calls, recorded in history as
//! `EntityOperationCalled` and queued for the entity in the same commit as the step; a call's
//! result comes back as a stored message (`EntityOperationCompleted` / `EntityOperationFailed`),
//! the same path as an activity's result.

use super::{Action, EntityAction, OrchestrationContext, TaskFuture};
use crate::entity::{EntityId, Operation};
use serde::de::DeserializeOwned;

impl OrchestrationContext {
    /// Calls `operation` on the entity `id` and resolves to its result, typed by the
    /// operation (`Counter::get_op()` resolves to the `i64` that `get` returns). An operation
    /// that fails (returns an error, panics, or is unknown) resolves to a
    /// [`TaskFailed`](crate::TaskFailed) with its message; the entity keeps serving. The call
    /// is recorded at once, whether or not the future is awaited, and the entity runs it
    /// exactly once.
    ///
    /// ```
    /// use durable_runtime::prelude::*;
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(Default, Serialize, Deserialize)]
    /// struct Counter(i64);
    ///
    /// #[entity]
    /// impl Counter {
    ///     pub fn add(&mut self, n: i64) { self.0 += n; }
    ///     pub fn get(&self) -> i64 { self.0 }
    /// }
    ///
    /// #[orchestrator]
    /// async fn bump(ctx: OrchestrationContext) -> Result<i64, OrchestrationError> {
    ///     let id = Counter::entity_id("visits");
    ///     ctx.signal_entity(&id, Counter::add_op(1));
    ///     Ok(ctx.call_entity(&id, Counter::get_op()).await?)
    /// }
    /// ```
    pub fn call_entity<R: DeserializeOwned>(
        &self,
        id: &EntityId,
        operation: Operation<R>,
    ) -> TaskFuture<R> {
        self.entity_operation(id, operation, false)
    }

    /// Sends `operation` to the entity `id`, one way: it is queued with this step's commit
    /// and runs exactly once, in the order this orchestration sent its operations. An id or
    /// input that cannot be sent is logged and nothing is sent (a signal has no result to fail).
    pub fn signal_entity<R>(&self, id: &EntityId, operation: Operation<R>) {
        let task: TaskFuture<R> = self.entity_operation(id, operation, true);
        // No result comes back: nobody waits for one.
        drop(task);
    }

    fn entity_operation<R>(
        &self,
        id: &EntityId,
        operation: Operation<R>,
        signal: bool,
    ) -> TaskFuture<R> {
        let label = format!("{id}.{}", operation.name());
        let checked = id
            .check()
            .map_err(|err| err.to_string())
            .and_then(|()| match operation.entity_name() {
                Some(expected) if expected != id.name() => Err(format!(
                    "operation '{}' belongs to entity '{expected}', not to '{id}'",
                    operation.name()
                )),
                _ => Ok(()),
            })
            .and_then(|()| operation.into_parts());
        let prepared = checked.and_then(|(name, input)| {
            let input = self.checked_input(&label, Ok(input))?;
            Ok((name, input))
        });
        match prepared {
            Ok((name, input)) => {
                let action = Action::Entity(Box::new(EntityAction {
                    entity_id: id.to_string(),
                    operation: name,
                    input,
                    signal,
                }));
                let task_id = self.state.lock().schedule(&label, action);
                TaskFuture::new(self.state.clone(), task_id)
            }
            Err(message) => {
                if signal && !self.state.lock().is_replaying {
                    tracing::warn!(entity = %id, %message, "an orchestration's entity signal was not sent");
                }
                self.failed(&label, message)
            }
        }
    }
}
