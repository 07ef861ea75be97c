//! `EntityOps`: what an operation sends besides its effect on the state (signals to entities,
//! orchestrations to start), committed in the same transaction as that effect.

use super::context::EntityError;
use super::id::EntityId;
use super::operation::{Operation, OutgoingSignal};
use crate::function::OrchestratorFn;
use crate::payload::Payload;
use serde::Serialize;

/// An orchestration an operation starts.
#[derive(Clone, Debug)]
pub(crate) struct OutgoingStart {
    /// The new instance's id (fresh).
    pub instance_id: String,
    /// The orchestrator's registered name.
    pub name: String,
    /// Its version, if known from the function; `None` for a start by name (resolved when
    /// the batch is committed, against the runtime's registry).
    pub version: Option<Option<String>>,
    pub input: Payload,
}

/// The side effects of one entity operation: signals to entities and orchestrations to start,
/// sent only if the operation succeeds, in the same commit as its change to the state (a crash
/// before that commit runs the operation again, and sends them once).
///
/// A function-style entity reaches it through its
/// [`EntityContext`](super::EntityContext); an `#[entity] impl` operation takes it as its
/// first parameter after the receiver, `ops: &mut EntityOps`:
///
/// ```
/// use durable_runtime::prelude::*;
/// use serde::{Deserialize, Serialize};
///
/// #[orchestrator]
/// async fn notify(ctx: OrchestrationContext, total: i64) -> Result<(), OrchestrationError> {
///     let _ = (ctx, total);
///     Ok(())
/// }
///
/// #[derive(Default, Serialize, Deserialize)]
/// struct Budget { spent: i64, limit: i64 }
///
/// #[entity]
/// impl Budget {
///     pub fn spend(&mut self, ops: &mut EntityOps, amount: i64) -> Result<(), EntityError> {
///         self.spent += amount;
///         // Tell the ledger, and start a notification once over the limit.
///         ops.signal_entity(&EntityId::new("ledger", ops.id().key()), Operation::named("add", amount))?;
///         if self.spent > self.limit {
///             ops.start_new(notify, self.spent)?;
///         }
///         Ok(())
///     }
/// }
/// ```
#[derive(Debug)]
pub struct EntityOps {
    id: EntityId,
    operation: String,
    pub(crate) signals: Vec<OutgoingSignal>,
    pub(crate) starts: Vec<OutgoingStart>,
}

impl EntityOps {
    /// The side effects of the operation `operation` on `id` (for generated code).
    #[doc(hidden)]
    pub fn new(id: &EntityId, operation: &str) -> Self {
        EntityOps {
            id: id.clone(),
            operation: operation.to_string(),
            signals: Vec::new(),
            starts: Vec::new(),
        }
    }

    /// The entity the operation runs on.
    pub fn id(&self) -> &EntityId {
        &self.id
    }

    /// The operation's name.
    pub fn operation_name(&self) -> &str {
        &self.operation
    }

    /// Sends `operation` to the entity `id` (itself included), one way. It is queued in the
    /// same commit as this operation's effect on the state: if this operation fails, it is not
    /// sent.
    pub fn signal_entity<R>(
        &mut self,
        id: &EntityId,
        operation: Operation<R>,
    ) -> Result<(), EntityError> {
        id.check()?;
        if let Some(expected) = operation.entity_name()
            && expected != id.name()
        {
            return Err(EntityError::new(format!(
                "operation '{}' belongs to entity '{expected}', not to '{id}'",
                operation.name()
            )));
        }
        if operation.is_reserved() {
            return Err(EntityError::new(format!(
                "operation name '{}' is reserved for the runtime",
                operation.name()
            )));
        }
        let (name, input) = operation
            .into_parts()
            .map_err(|reason| EntityError::Encode {
                operation: self.operation.clone(),
                reason,
            })?;
        self.signals.push(OutgoingSignal {
            entity_id: id.clone(),
            operation: name,
            input,
        });
        Ok(())
    }

    /// Starts `orchestrator` (a function marked `#[orchestrator]`) with `input` under a fresh
    /// instance id, which it returns. The instance is created in the same commit as this
    /// operation's effect on the state: if this operation fails, it is not started.
    pub fn start_new<F: OrchestratorFn<M>, M>(
        &mut self,
        orchestrator: F,
        input: F::Input,
    ) -> Result<String, EntityError> {
        let _ = orchestrator;
        let Some(registration) = crate::registry::orchestrator_of::<F>() else {
            return Err(EntityError::new(format!(
                "`{}` is not an orchestrator: mark it #[orchestrator]",
                std::any::type_name::<F>()
            )));
        };
        let version = Some(registration.version.map(str::to_string));
        self.start(registration.name, version, &input)
    }

    /// Starts the orchestrator registered as `name` with `input` (see
    /// [`start_new`](Self::start_new)); a name no orchestrator of this program has fails the
    /// operation.
    pub fn start_new_by_name(
        &mut self,
        name: &str,
        input: impl Serialize,
    ) -> Result<String, EntityError> {
        self.start(name, None, &input)
    }

    fn start(
        &mut self,
        name: &str,
        version: Option<Option<String>>,
        input: &impl Serialize,
    ) -> Result<String, EntityError> {
        let input = Payload::encode(input).map_err(|err| EntityError::Encode {
            operation: self.operation.clone(),
            reason: err.to_string(),
        })?;
        let instance_id = uuid::Uuid::new_v4().simple().to_string();
        self.starts.push(OutgoingStart {
            instance_id: instance_id.clone(),
            name: name.to_string(),
            version,
            input,
        });
        Ok(instance_id)
    }
}
