//! Entities from orchestrations: one-way signals and two-way calls, recorded in history as
//! `EntityOperationCalled` and queued for the entity in the same commit as the step; a call's
//! result comes back as a stored message (`EntityOperationCompleted` / `EntityOperationFailed`),
//! the same path as an activity's result.

use super::{Action, EntityAction, OrchestrationContext, TaskFuture};
use crate::entity::{EntityId, Operation};
use crate::failure::{FailureDetails, TaskFailed};
use crate::store::{LOCK_OPERATION, UNLOCK_OPERATION};
use serde::de::DeserializeOwned;

/// How a locking-rule violation's failure message starts (Durable Functions'
/// `LockingRulesViolationException`).
pub const LOCKING_RULES: &str = "locking rules violation";

/// A critical section on entities ([`OrchestrationContext::lock_entities`]): the locks are
/// held until it is dropped or released.
#[must_use = "dropping the lock ends the critical section at once"]
pub struct EntityLock {
    ctx: OrchestrationContext,
    held: Vec<EntityId>,
}

impl EntityLock {
    /// The locked entities, sorted.
    pub fn entities(&self) -> &[EntityId] {
        &self.held
    }

    /// Ends the critical section: the other operations waiting for these entities run.
    pub fn release(self) {
        drop(self);
    }
}

impl Drop for EntityLock {
    fn drop(&mut self) {
        // The section ends (also when taking its locks failed or was abandoned).
        self.ctx.state.lock().critical_section = None;
        for id in self.held.drain(..) {
            self.ctx
                .send_signal(&id, Operation::<()>::reserved(UNLOCK_OPERATION));
        }
    }
}

impl std::fmt::Debug for EntityLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntityLock")
            .field("held", &self.held)
            .finish()
    }
}

impl OrchestrationContext {
    /// Calls `operation` on the entity `id` and resolves to its result, typed by the
    /// operation (`Counter::get_op()` resolves to the `i64` that `get` returns). An operation
    /// that fails (returns an error, panics, or is unknown) resolves to a
    /// [`TaskFailed`] with its message; the entity keeps serving. The call
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
        if operation.is_reserved() {
            let message = format!(
                "operation name '{}' is reserved for the runtime",
                operation.name()
            );
            return self.failed(&format!("{id}.{}", operation.name()), message);
        }
        let outside = self
            .state
            .lock()
            .critical_section
            .as_ref()
            .filter(|locked| !locked.contains(&id.to_string()))
            .cloned();
        if let Some(locked) = outside {
            let message = format!(
                "{LOCKING_RULES}: a critical section may call only the entities it locked \
                 ({}), not '{id}'",
                locked.join(", ")
            );
            return self.failed(&format!("{id}.{}", operation.name()), message);
        }
        self.entity_operation(id, operation, false)
    }

    /// Why a sub-orchestration may not be created now: inside a critical section (it could
    /// wait for the section's own locks, a deadlock).
    pub(super) fn child_in_critical_section(&self, name: &str) -> Option<String> {
        let state = self.state.lock();
        let locked = state.critical_section.as_ref()?;
        Some(format!(
            "{LOCKING_RULES}: a critical section (on {}) may not create sub-orchestrations \
             ('{name}')",
            locked.join(", ")
        ))
    }

    /// Sends `operation` to the entity `id`, one way: it is queued with this step's commit
    /// and runs exactly once, in the order this orchestration sent its operations. An id or
    /// input that cannot be sent is logged and nothing is sent (a signal has no result to fail).
    pub fn signal_entity<R>(&self, id: &EntityId, operation: Operation<R>) {
        if operation.is_reserved() {
            self.refuse_reserved(id, &operation);
            return;
        }
        self.send_signal(id, operation);
    }

    fn send_signal<R>(&self, id: &EntityId, operation: Operation<R>) {
        let task: TaskFuture<R> = self.entity_operation(id, operation, true);
        // No result comes back: nobody waits for one.
        drop(task);
    }

    fn refuse_reserved<R>(&self, id: &EntityId, operation: &Operation<R>) {
        if !self.state.lock().is_replaying {
            tracing::warn!(entity = %id, operation = operation.name(), "operation names starting with `__durable.` are reserved for the runtime: not sent");
        }
    }

    /// Enters a critical section on `ids`: resolves once this orchestration holds the lock of
    /// every one of them. While it does, only this orchestration's operations run on them;
    /// other orchestrations' and clients' operations wait, in order, until the lock is
    /// released. Locks are taken one at a time in the ids' sorted order, so two
    /// orchestrations locking overlapping sets never deadlock.
    ///
    /// The section ends when the returned [`EntityLock`] is dropped or
    /// [released](EntityLock::release), and at the latest when the orchestration ends
    /// (completes, fails or is terminated).
    ///
    /// The locking rules (as Durable Functions'), each enforced with a [`TaskFailed`] whose
    /// message starts with [`LOCKING_RULES`] (the same on every replay; `?` fails the
    /// orchestration with it):
    /// - sections do not nest: `lock_entities` inside a section fails;
    /// - inside a section, [`call_entity`](Self::call_entity) may call only the locked
    ///   entities (a call to another could wait for a lock held by an orchestration waiting
    ///   for ours);
    /// - inside a section, no sub-orchestration may be created (it could wait for our locks).
    ///
    /// Signals may go anywhere: one to a locked entity runs inside the section, in order.
    ///
    /// An orchestration that fails inside a section cannot be
    /// [rewound](crate::Client::rewind) (its locks were released when it failed).
    ///
    /// ```
    /// use durable_runtime::prelude::*;
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(Default, Serialize, Deserialize)]
    /// struct Account(i64);
    ///
    /// #[entity]
    /// impl Account {
    ///     pub fn balance(&self) -> i64 { self.0 }
    ///     pub fn set(&mut self, balance: i64) { self.0 = balance; }
    /// }
    ///
    /// #[orchestrator]
    /// async fn transfer(ctx: OrchestrationContext, amount: i64) -> Result<(), OrchestrationError> {
    ///     let (from, to) = (Account::entity_id("a"), Account::entity_id("b"));
    ///     let lock = ctx.lock_entities(&[from.clone(), to.clone()]).await?;
    ///     // Nobody else changes either account between these reads and writes.
    ///     let a = ctx.call_entity(&from, Account::balance_op()).await?;
    ///     let b = ctx.call_entity(&to, Account::balance_op()).await?;
    ///     ctx.signal_entity(&from, Account::set_op(a - amount));
    ///     ctx.signal_entity(&to, Account::set_op(b + amount));
    ///     lock.release();
    ///     Ok(())
    /// }
    /// ```
    pub async fn lock_entities(&self, ids: &[EntityId]) -> Result<EntityLock, TaskFailed> {
        let mut sorted: Vec<EntityId> = ids.to_vec();
        sorted.sort_by_key(|id| id.to_string());
        sorted.dedup();
        let names: Vec<String> = sorted.iter().map(ToString::to_string).collect();
        let nested = {
            let mut state = self.state.lock();
            match &state.critical_section {
                Some(held) => Some(held.join(", ")),
                None => {
                    state.critical_section = Some(names.clone());
                    None
                }
            }
        };
        if let Some(held) = nested {
            let message = format!(
                "{LOCKING_RULES}: lock_entities inside a critical section (on {held}); \
                 sections cannot be nested: release the held lock first, or lock every \
                 entity in one call"
            );
            let refused: TaskFuture<()> = self.failed("lock_entities", message.clone());
            // A task failed before scheduling resolves to its failure, in the slot it takes
            // (so replay takes the same task ids).
            return Err(refused.await.err().unwrap_or_else(|| {
                TaskFailed::from_details("lock_entities", FailureDetails::new(message))
            }));
        }
        let mut lock = EntityLock {
            ctx: self.clone(),
            held: Vec::with_capacity(sorted.len()),
        };
        for id in sorted {
            let request: Operation<()> = Operation::reserved(LOCK_OPERATION);
            // On failure, dropping `lock` releases what was taken.
            self.entity_operation(&id, request, false).await?;
            lock.held.push(id);
        }
        Ok(lock)
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
