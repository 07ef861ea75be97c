//! Sub-orchestrations: an orchestrator calling another orchestrator as a task.
//!
//! The child is a real instance (its own id, history, run and status, visible in
//! `Client::list`), created in the same commit as the parent's step that records
//! `SubOrchestrationInstanceCreated`; its outcome comes back to the parent as
//! `SubOrchestrationInstanceCompleted` / `SubOrchestrationInstanceFailed`, written in the commit
//! that finishes the child.

use super::{Action, ChildCall, ChildVersion, OrchestrationContext, TaskFuture, encode_input};
use crate::function::OrchestratorFn;
use crate::payload::Payload;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Namespace of the instance ids generated for sub-orchestrations.
const CHILD_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x3c5e_81a0_7d4f_4b9e_b1c2_58e6_0f9d_2a71);

impl OrchestrationContext {
    /// Runs `orchestrator` with `input` as a sub-orchestration and resolves to its output,
    /// typed by its signature; its failure is a [`TaskFailed`](crate::TaskFailed) naming it,
    /// which the parent can match to compensate.
    ///
    /// The child gets an instance id of its own, derived from this run and the call's place in
    /// it (the same on every replay, different in every run). It is created with the parent's
    /// step, so a parent replayed after a crash never creates it twice. Like
    /// [`call_activity`](Self::call_activity), the call is recorded at once, whether or not the
    /// future is awaited, and runs the version of `orchestrator` it was given.
    ///
    /// ```
    /// use durable_runtime::prelude::*;
    ///
    /// #[activity]
    /// async fn ship(item: String) -> Result<String, ActivityError> {
    ///     Ok(format!("shipped {item}"))
    /// }
    ///
    /// #[orchestrator]
    /// async fn fulfil(ctx: OrchestrationContext, item: String) -> Result<String, OrchestrationError> {
    ///     Ok(ctx.call_activity(ship, item).await?)
    /// }
    ///
    /// #[orchestrator]
    /// async fn order(ctx: OrchestrationContext, items: Vec<String>) -> Result<Vec<String>, OrchestrationError> {
    ///     let children = items.into_iter().map(|item| ctx.call_sub_orchestrator(fulfil, item));
    ///     let mut shipped = Vec::new();
    ///     for result in ctx.when_all(children).await {
    ///         shipped.push(result?);
    ///     }
    ///     Ok(shipped)
    /// }
    /// ```
    pub fn call_sub_orchestrator<F: OrchestratorFn<M>, M>(
        &self,
        orchestrator: F,
        input: F::Input,
    ) -> TaskFuture<F::Output> {
        let _ = orchestrator;
        self.typed_child::<F, M>(None, &input)
    }

    /// [`call_sub_orchestrator`](Self::call_sub_orchestrator) under the instance id
    /// `instance_id`. If an instance with that id exists already (from another parent, a
    /// client, or an earlier call), no instance is created and the task fails with a message
    /// saying so; an id the client would refuse (empty, too long, containing `/ \ # ?` or a
    /// control character) fails the task too.
    ///
    /// ```
    /// use durable_runtime::prelude::*;
    ///
    /// #[orchestrator]
    /// async fn audit(ctx: OrchestrationContext, order: u64) -> String {
    ///     format!("audited {order}")
    /// }
    ///
    /// #[orchestrator]
    /// async fn order(ctx: OrchestrationContext, order: u64) -> Result<String, OrchestrationError> {
    ///     let id = format!("audit-{order}");
    ///     Ok(ctx.call_sub_orchestrator_with_id(audit, id, order).await?)
    /// }
    /// ```
    pub fn call_sub_orchestrator_with_id<F: OrchestratorFn<M>, M>(
        &self,
        orchestrator: F,
        instance_id: impl Into<String>,
        input: F::Input,
    ) -> TaskFuture<F::Output> {
        let _ = orchestrator;
        self.typed_child::<F, M>(Some(instance_id.into()), &input)
    }

    /// Runs the orchestrator registered as `name` (its newest version) as a sub-orchestration;
    /// `O` is the type its output decodes into. An output that does not decode into `O` fails
    /// the task with a message naming both, and a name no orchestrator is registered under
    /// fails the child, and so the task, saying so.
    pub fn call_sub_orchestrator_by_name<O: DeserializeOwned>(
        &self,
        name: &str,
        input: impl Serialize,
    ) -> TaskFuture<O> {
        self.child(name, ChildVersion::Newest, None, encode_input(name, &input))
    }

    /// [`call_sub_orchestrator_by_name`](Self::call_sub_orchestrator_by_name) under the
    /// instance id `instance_id` (see
    /// [`call_sub_orchestrator_with_id`](Self::call_sub_orchestrator_with_id)).
    pub fn call_sub_orchestrator_by_name_with_id<O: DeserializeOwned>(
        &self,
        name: &str,
        instance_id: impl Into<String>,
        input: impl Serialize,
    ) -> TaskFuture<O> {
        let input = encode_input(name, &input);
        self.child(name, ChildVersion::Newest, Some(instance_id.into()), input)
    }

    fn typed_child<F: OrchestratorFn<M>, M>(
        &self,
        instance_id: Option<String>,
        input: &F::Input,
    ) -> TaskFuture<F::Output> {
        match crate::registry::orchestrator_of::<F>() {
            Some(registration) => {
                let version = ChildVersion::Exact(registration.version.map(str::to_string));
                let input = encode_input(registration.name, input);
                self.child(registration.name, version, instance_id, input)
            }
            None => self.failed(std::any::type_name::<F>(), not_an_orchestrator::<F>()),
        }
    }

    /// Creates a sub-orchestration, or fails the task if its input or id cannot be used.
    pub(super) fn child<O>(
        &self,
        name: &str,
        version: ChildVersion,
        instance_id: Option<String>,
        input: Result<Payload, String>,
    ) -> TaskFuture<O> {
        if let Some(violation) = self.child_in_critical_section(name) {
            return self.failed(name, violation);
        }
        let prepared = self
            .checked_input(name, input)
            .and_then(|input| Ok((input, checked_child_id(name, instance_id)?)));
        match prepared {
            Ok((input, instance_id)) => self.schedule_child(name, version, instance_id, input),
            Err(message) => self.failed(name, message),
        }
    }

    /// Records the creation of a sub-orchestration whose input (and id, if given) are checked.
    pub(super) fn schedule_child<O>(
        &self,
        name: &str,
        version: ChildVersion,
        instance_id: Option<String>,
        input: Payload,
    ) -> TaskFuture<O> {
        let mut state = self.state.lock();
        let instance_id = instance_id.unwrap_or_else(|| self.child_id(state.next_task_id()));
        let call = ChildCall {
            name: name.to_string(),
            version,
            instance_id,
            input,
        };
        let task_id = state.schedule(name, Action::SubOrchestration(Box::new(call)));
        drop(state);
        TaskFuture::new(self.state.clone(), task_id)
    }

    /// The instance id of the sub-orchestration created as `task_id` without an id of its own:
    /// the same on every replay of this run, different in any other run.
    fn child_id(&self, task_id: u64) -> String {
        let name = format!("{}:{task_id}", self.seed);
        uuid::Uuid::new_v5(&CHILD_NAMESPACE, name.as_bytes())
            .simple()
            .to_string()
    }
}

/// The explicit id of a sub-orchestration, if it is one a client could start.
pub(super) fn checked_child_id(
    name: &str,
    instance_id: Option<String>,
) -> Result<Option<String>, String> {
    match instance_id {
        Some(id) => match crate::instance::instance_id_problem(&id) {
            Some(reason) => Err(format!(
                "cannot create sub-orchestration '{name}' with instance id '{id}': {reason}"
            )),
            None => Ok(Some(id)),
        },
        None => Ok(None),
    }
}

/// Why a sub-orchestration call failed: the function passed is not marked `#[orchestrator]`.
pub(super) fn not_an_orchestrator<F>() -> String {
    let function = std::any::type_name::<F>();
    match function.strip_prefix('&') {
        // `&f` is a `Fn` too, of another type than `f`'s.
        Some(itself) => format!(
            "`{function}` is a reference to a function: pass the function itself, \
             `call_sub_orchestrator({itself}, ..)`"
        ),
        None => format!(
            "`{function}` is not an orchestrator: mark the function with #[orchestrator] (or \
             call a registered orchestrator by name with `call_sub_orchestrator_by_name`)"
        ),
    }
}
