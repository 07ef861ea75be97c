//! Storage: the `Backend` trait every store implements, and the units of work it commits.
//!
//! The runtime never writes row by row: each orchestration step (which also records the results
//! of the activities it consumed), new instance, raised event or fired timer is one [`Write`],
//! applied atomically. A backend may group many writes into one
//! transaction (one fsync), but must acknowledge a write only once it is durable.
//!
//! Work reaches workers in two ways: at once, in-process, when the write that created it is
//! acknowledged (the [`Written`] answer carries the new work items), and through the paged
//! [`Backend::pending_messages`], [`Backend::pending_activities`] and
//! [`Backend::pending_timers`] at startup for whatever an earlier process left. The embedded
//! store is owned by one process (it locks its file), so that is all it needs.
//!
//! A store shared by many runtimes (PostgreSQL's shared mode) also answers
//! [`Backend::leases`]: it divides the work into partitions leased to one runtime at a time
//! (see [`Leases`]). The shape stays the same: a runtime dispatches in memory only the work of
//! the partitions it holds, reads the rest of what it holds from the store by adopting it
//! ([`Leases::adopt`], when a partition is gained, when the store signals work created by
//! another process, and at every renewal), and the store refuses a step or an entity batch of a
//! partition its writer does not hold ([`StoreError::LeaseLost`]), in the write's own
//! transaction. An activity finished by a runtime that no longer holds its orchestration sends
//! its result as a stored message ([`Write::CompleteActivity`]), instead of handing it over in
//! memory. The `Write` units and their atomicity stay as they are.

mod check;
mod entity;
mod error;
mod lease;
mod manage;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod sqlite;

pub use entity::{
    CorruptEntityMessage, ENTITY_LOG_LEN, EntityCommit, EntityLogEntry, EntityMessage, EntityPage,
    EntityQuery, EntityRecord, EntityReply, EntitySnapshot, EntityState, EntityWork,
    LOCK_OPERATION, NewEntityMessage, UNLOCK_OPERATION,
};
pub(crate) use entity::{RawEntityMessage, decode_state, entity_key_scope};
pub use error::{ErrorClass, StoreError};
pub use lease::{Adopted, LeaseChange, LeaseId, Leases};
pub use manage::{
    Manage, ManagedWork, PurgeFilter, PurgeTarget, REWIND_HOLDING_LOCKS, START_TIMER_TASK,
};

use crate::failure::FailureDetails;
use crate::history::{HistoryEvent, HistoryRecord};
use crate::instance::{InstancePage, InstanceQuery, InstanceStatus, RuntimeStatus};
use crate::payload::Payload;
use async_trait::async_trait;
use std::sync::Arc;

/// A message waiting to be consumed by an instance's next step.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    /// Store-assigned id; the consuming step deletes it by id.
    pub id: i64,
    /// The addressee.
    pub instance_id: String,
    /// The run of the addressee it belongs to (a timer's or an activity's result); empty for
    /// messages to whatever run is current (raised events).
    pub execution_id: Arc<str>,
    /// The event it becomes in the addressee's history.
    pub event: HistoryEvent,
}

/// An activity waiting to run.
#[derive(Clone, Debug, PartialEq)]
pub struct ActivityWorkItem {
    /// Store-assigned id; the completion deletes it by id.
    pub id: i64,
    /// The orchestration that scheduled it.
    pub instance_id: String,
    /// The run of the orchestration that scheduled it.
    pub execution_id: Arc<str>,
    /// The orchestration's sequence number for it.
    pub task_id: u64,
    /// Registered activity name.
    pub name: String,
    /// Encoded input.
    pub input: Payload,
}

/// A durable timer waiting to fire.
#[derive(Clone, Debug, PartialEq)]
pub struct TimerWorkItem {
    /// Store-assigned id; firing deletes it by id.
    pub id: i64,
    /// The orchestration that created it.
    pub instance_id: String,
    /// The run of the orchestration that created it.
    pub execution_id: Arc<str>,
    /// The orchestration's sequence number for it.
    pub task_id: u64,
    /// When it fires (ms since the epoch).
    pub fire_at_ms: i64,
}

impl TimerWorkItem {
    /// Where it stands in due order.
    pub fn due_key(&self) -> DueKey {
        DueKey {
            fire_at_ms: self.fire_at_ms,
            id: self.id,
        }
    }
}

/// A timer's place in due order: its due time, then its id (ties fire in the order they were
/// armed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DueKey {
    /// When it fires (ms since the epoch).
    pub fire_at_ms: i64,
    /// Its store-assigned id.
    pub id: i64,
}

impl DueKey {
    /// Before every timer: where reading in due order starts.
    pub const FIRST: DueKey = DueKey {
        fire_at_ms: i64::MIN,
        id: i64::MIN,
    };
}

/// A new instance: its row plus its `ExecutionStarted` message.
#[derive(Clone, Debug, PartialEq)]
pub struct NewInstance {
    /// The id; must not exist yet.
    pub instance_id: String,
    /// The id of its first run; every work item and result of the run carries it.
    pub execution_id: Arc<str>,
    /// Orchestrator name.
    pub name: String,
    /// Orchestrator version.
    pub version: Option<String>,
    /// Encoded input.
    pub input: Payload,
    /// Creation time (ms since the epoch).
    pub created_ms: i64,
}

/// A sub-orchestration an orchestration step creates, in the step's own commit.
///
/// The child is linked to the step's instance, run and `task_id` (on its row and in its
/// `ExecutionStarted`), and its outcome goes back to that run as a stored message
/// (`SubOrchestrationInstanceCompleted` / `SubOrchestrationInstanceFailed`) written in the
/// commit that finishes the child. If an instance with the child's id exists already, no
/// instance is created: the step still commits, and sends its own instance
/// `SubOrchestrationInstanceFailed` for `task_id` saying so.
#[derive(Clone, Debug)]
pub struct NewChild {
    /// The parent's sequence number for the call.
    pub task_id: u64,
    /// The child instance.
    pub instance: NewInstance,
}

/// Everything one orchestration step changes, committed atomically.
#[derive(Clone, Debug)]
pub struct StepCommit {
    /// The instance.
    pub instance_id: String,
    /// The run the step belongs to. A step of another run than the instance's current one is
    /// refused whole with [`StoreError::Fenced`]; the work items it creates carry it.
    pub execution_id: Arc<str>,
    /// History position of the first appended event, which is also the history length the step
    /// was computed against (fencing): when `events` is not empty and the stored history has
    /// another length, the write is refused whole with [`StoreError::Fenced`].
    pub first_seq: u64,
    /// When the step ran (ms since the epoch); the timestamp of every appended event.
    pub timestamp_ms: i64,
    /// Events to append.
    pub events: Vec<HistoryEvent>,
    /// Ids of the messages this step consumed; they are deleted. Each must still be there: if
    /// one is gone (consumed by another step), the write is refused whole with
    /// [`StoreError::MessagesGone`] naming them.
    pub consumed: Vec<i64>,
    /// Activity work items whose results (`TaskCompleted` / `TaskFailed` in `events`) this
    /// step records; they are deleted. If one is already gone, its result was recorded before,
    /// and the write fails with [`StoreError::AlreadyRecorded`] so nothing is recorded twice.
    pub completed_activities: Vec<i64>,
    /// Armed timers whose firing (`TimerFired` in `events`) this step records; they are
    /// deleted. The timer service hands a due timer to its instance in memory, so that firing
    /// it costs no write of its own. If one is already gone (fired before, or discarded when
    /// its run ended), the write fails with [`StoreError::TimersGone`] and nothing is applied.
    pub fired_timers: Vec<i64>,
    /// Activities to enqueue: `(task_id, name, input)`.
    pub activities: Vec<(u64, String, Payload)>,
    /// Timers to arm: `(task_id, fire_at_ms)`.
    pub timers: Vec<(u64, i64)>,
    /// Sub-orchestrations to create (see [`NewChild`]).
    pub children: Vec<NewChild>,
    /// The instance's status after the step; `None` leaves the row as it is (a step that only
    /// consumes messages sent to a finished or unknown instance; refused with
    /// [`StoreError::Fenced`] if the instance exists and is not finished, so that late work
    /// is never deleted from under an instance a client brought back). Statuses are a state machine
    /// the store enforces: a step may move only a `Pending`, `Running` or `ContinuedAsNew` (the
    /// new run's first step) instance, so a step
    /// against an instance a client terminated or suspended (or one already finished) is
    /// refused whole with [`StoreError::Fenced`]. A step that finishes the instance also deletes
    /// its armed timers and, if the instance is a sub-orchestration, sends its outcome to its
    /// parent's run (unless the parent is gone or finished).
    pub status: Option<RuntimeStatus>,
    /// The output, if the step completed the instance.
    pub output: Option<Payload>,
    /// The failure, if the step failed the instance.
    pub failure: Option<FailureDetails>,
    /// The orchestrator's custom status, when the step changed it (`None` leaves it as it is;
    /// a JSON `null` clears it). It outlives the run: a run started by `continue_as_new` keeps
    /// it until it sets its own.
    pub custom_status: Option<Payload>,
    /// Set when the step ends the run by continuing as new (its `status` is then
    /// `ContinuedAsNew`): see [`ContinueAsNew`]. Boxed: rare, and every write carries the
    /// field.
    pub continue_as_new: Option<Box<ContinueAsNew>>,
}

/// A step that ends its run with `continue_as_new`, committed atomically with it: the
/// instance's history is deleted (the step's `events` only fence it, they are not appended),
/// its armed timers and the activity work items of the ending run are deleted, its input
/// becomes `input`, its current run becomes `execution_id`, and the new run's
/// `ExecutionStarted` (same name, version and parent, with `carried_events`) is sent to it.
/// The step may create no work (no activities, timers or children); one that does is refused.
/// Its output, failure and parent link are left as they are; nothing is sent to the parent:
/// a parent hears only of its child's last run.
#[derive(Clone, Debug)]
pub struct ContinueAsNew {
    /// The new run's id.
    pub execution_id: Arc<str>,
    /// The new run's input.
    pub input: Payload,
    /// Raised events the ending run received and did not consume, in arrival order, handed to
    /// the new run first.
    pub carried_events: Vec<CarriedEvent>,
}

pub use crate::history::CarriedEvent;

/// One atomic unit of work.
#[derive(Clone, Debug)]
pub enum Write {
    /// Create an instance and send it `ExecutionStarted`.
    CreateInstance(NewInstance),
    /// Apply an orchestration step.
    Step(StepCommit),
    /// Mark an instance failed without touching its history (which cannot be trusted), delete
    /// its armed timers and, if it is a sub-orchestration, send the failure to its parent
    /// (the answer is then `Delivered(Some(message))`). If it held or asked for entity locks,
    /// they are released (the answer is then `Step`, with the parent's message and the
    /// unlocks). Refused with [`StoreError::Fenced`] if
    /// the instance has already finished.
    FailInstance {
        /// The instance.
        instance_id: String,
        /// Why.
        failure: FailureDetails,
        /// When (ms since the epoch).
        timestamp_ms: i64,
    },
    /// Send an external event to a running instance.
    RaiseEvent {
        /// The addressee; must exist and not be finished.
        instance_id: String,
        /// The event's name.
        name: String,
        /// Its payload.
        input: Payload,
        /// Set by callers that may retry (an HTTP request): an event raised to this instance
        /// with this key before is not recorded again, and the answer is `Delivered(None)`.
        idempotency_key: Option<String>,
    },
    /// Record a finished activity's result as a stored message (`TaskCompleted` / `TaskFailed`
    /// in `event`) and delete its work item, atomically: the path for a worker that does not
    /// hold the orchestration in memory. If the work item is already gone (its result was
    /// recorded before), nothing is written and the answer is `Delivered(None)`.
    CompleteActivity {
        /// The activity's work item.
        work_item_id: i64,
        /// Its orchestration.
        instance_id: String,
        /// The result event.
        event: HistoryEvent,
    },
    /// Create an instance whose start waits until `start_at_ms` (a scheduled start): its row
    /// (`Pending`) and input now, and instead of its `ExecutionStarted` message a timer with
    /// task id [`START_TIMER_TASK`]; firing that timer sends the `ExecutionStarted`. The answer
    /// is `Step` with that timer. [`StoreError::InstanceExists`] if the id is taken.
    ScheduleInstance {
        /// The instance.
        instance: NewInstance,
        /// When it starts (ms since the epoch).
        start_at_ms: i64,
    },
    /// A client operation on an instance (terminate, suspend, resume, restart, purge); see
    /// [`Manage`].
    Manage(Manage),
    /// Delete a due timer and send `TimerFired` to its instance as a stored message (or, for a
    /// timer with task id [`START_TIMER_TASK`], the instance's `ExecutionStarted`). The timer
    /// service uses it for scheduled starts, and for every timer while startup recovery holds
    /// messages back; otherwise a firing travels in memory and its step records it
    /// ([`StepCommit::fired_timers`]).
    FireTimer {
        /// The timer.
        timer_id: i64,
        /// Its instance.
        instance_id: String,
        /// Its task id.
        task_id: u64,
    },
    /// Queue an operation for an entity (creating nothing else: the entity's row appears with
    /// its first batch). The answer is `Entity` with the queued message.
    SignalEntity(NewEntityMessage),
    /// [`SignalEntity`](Self::SignalEntity) for a sender that may send it twice (an HTTP
    /// request retried after a timeout whose write landed): the first signal to the entity
    /// with this key is queued; a later one is not, and the answer is `Entity` with nothing
    /// queued. Keys are kept (they outlive a purge of the entity, so a late retry cannot
    /// create it again).
    SignalEntityOnce {
        /// The operation.
        message: NewEntityMessage,
        /// The sender's key for it.
        idempotency_key: String,
    },
    /// Commit a batch of operations on one entity (see [`EntityCommit`]). The answer is
    /// `Entity` with the signals it queued.
    Entity(EntityCommit),
    /// Delete the entities named whose state is deleted (or was never set) and that have no
    /// operation queued; the answer is `Purged` with how many went.
    PurgeEntities {
        /// The candidates (`@name@key`).
        entity_ids: Vec<String>,
    },
    /// Record whether a runtime runs on the store: set when one starts, cleared when it has
    /// shut down. The answer is `WasRunning` with the value before: set at a start means the
    /// runtime before stopped without shutting down (killed, crashed), and the work it had in
    /// hand may be what stopped it. A store that does not keep it refuses the write.
    MarkRunning(bool),
    /// Count one more attempt at work recovered after an unclean stop (see
    /// [`MarkRunning`](Self::MarkRunning)), before the runtime runs it; with
    /// `unless_counted`, only if its count is 0. The answer is `Attempts` with the count and
    /// whether this write counted (a count of 0 if the work is gone). A step that commits
    /// sets its instance's count back to 0 (so do a restart and a rewind); an activity's
    /// count goes with its work item.
    CountAttempt {
        /// The work.
        of: AttemptOf,
        /// Count only if it is not counted already.
        unless_counted: bool,
    },
    /// Set the count of attempts back to 0 (the process survived the attempt). The answer is
    /// `Attempts` with a count of 0.
    ClearAttempts(AttemptOf),
}

/// Work whose attempts [`Write::CountAttempt`] counts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttemptOf {
    /// An instance's next step (over the messages it has waiting).
    Instance(String),
    /// An activity's work item.
    Activity(i64),
}

/// The work a committed step created.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StepWork {
    /// Activities to run.
    pub activities: Vec<ActivityWorkItem>,
    /// Timers to arm.
    pub timers: Vec<TimerWorkItem>,
    /// Messages the step sent: the `ExecutionStarted` of each sub-orchestration it created,
    /// a `SubOrchestrationInstanceFailed` to itself for a child id that existed already, and
    /// the outcome of a finished sub-orchestration to its parent. A step that finishes its
    /// instance also releases the entity locks it holds or asked for (see
    /// [`UNLOCK_OPERATION`]).
    pub messages: Vec<Message>,
    /// Entity operations the step sent (one per `EntityOperationCalled` event it appended).
    pub entity_messages: Vec<EntityMessage>,
}

/// What a write created, with store-assigned ids, for the runtime to dispatch.
#[derive(Clone, Debug, PartialEq)]
pub enum Written {
    /// The instance exists; its first message.
    Instance(Message),
    /// The step is durable; the work it created.
    Step(StepWork),
    /// The event (or timer firing) is durable; the message it sent. `None` when the timer was
    /// already gone (fired before a crash): nothing is sent twice.
    Delivered(Option<Message>),
    /// A client operation is durable; what it changed.
    Managed(ManagedWork),
    /// A purge is durable; how many instances (or entities) it removed.
    Purged(u64),
    /// An entity write is durable; the operations it queued.
    Entity(EntityWork),
    /// An attempt count was written ([`Write::CountAttempt`], [`Write::ClearAttempts`]).
    Attempts {
        /// The count now.
        count: u32,
        /// Whether the write counted one more.
        counted: bool,
    },
    /// Whether a runtime was marked running before ([`Write::MarkRunning`]).
    WasRunning(bool),
}

/// A stored work row (message, activity or timer) that does not decode. Recovery reports it
/// instead of failing: it fails only its own instance.
#[derive(Clone, Debug, PartialEq)]
pub struct CorruptRow {
    /// The table.
    pub table: &'static str,
    /// The row's id.
    pub id: i64,
    /// The instance it belongs to, if that much could be read.
    pub instance_id: Option<String>,
    /// What is wrong with it.
    pub reason: String,
}

/// The largest message and activity ids, at one moment (timers are read in due order instead).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Watermarks {
    /// Largest message id (0 if none).
    pub messages: i64,
    /// Largest activity work item id (0 if none).
    pub activities: i64,
}

/// One page of pending work of one kind, in id order.
#[derive(Clone, Debug, PartialEq)]
pub struct PendingPage<T> {
    /// The rows that decoded.
    pub items: Vec<T>,
    /// The rows that did not.
    pub corrupt: Vec<CorruptRow>,
    /// The largest id on this page (decoded or not), to ask for the next page after it; `None`
    /// when the page is empty (there is no more).
    pub last_id: Option<i64>,
}

/// What [`Backend::read_current_run`] reads: where an instance stands, without payloads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CurrentRun {
    /// Its runtime status.
    pub status: RuntimeStatus,
    /// The id of its current run (a new one with each `continue_as_new` and restart); empty
    /// for an instance created before runs had ids.
    pub execution_id: String,
}

/// A place to keep histories and queues. Implemented by the embedded SQLite store; a shared
/// database backend implements the same contract with leased work items.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// Applies `write` atomically and durably, then reports what it created.
    async fn write(&self, write: Write) -> Result<Written, StoreError>;

    /// The instance's row, if it exists.
    async fn read_instance(&self, instance_id: &str) -> Result<Option<InstanceStatus>, StoreError>;

    /// The instance's whole history, in order.
    async fn read_history(&self, instance_id: &str) -> Result<Vec<HistoryRecord>, StoreError>;

    /// One page of instances matching `query`.
    async fn list_instances(&self, query: &InstanceQuery) -> Result<InstancePage, StoreError>;

    /// The instance's runtime status and current run (cheap: no payloads), if it exists.
    async fn read_current_run(&self, instance_id: &str) -> Result<Option<CurrentRun>, StoreError>;

    /// The instance's runtime status alone (cheap: no payloads), if it exists.
    async fn read_runtime_status(
        &self,
        instance_id: &str,
    ) -> Result<Option<RuntimeStatus>, StoreError> {
        Ok(self
            .read_current_run(instance_id)
            .await?
            .map(|run| run.status))
    }

    /// The largest message and activity ids in the store. Ids only grow, so work
    /// created after this call has larger ids: startup recovery reads up to these marks and
    /// leaves everything newer to the process that created it.
    async fn work_watermarks(&self) -> Result<Watermarks, StoreError>;

    /// Up to `limit` unconsumed messages with ids above `after_id`, oldest first.
    async fn pending_messages(
        &self,
        after_id: i64,
        limit: usize,
    ) -> Result<PendingPage<Message>, StoreError>;

    /// Up to `limit` activity work items with ids above `after_id`, oldest first.
    async fn pending_activities(
        &self,
        after_id: i64,
        limit: usize,
    ) -> Result<PendingPage<ActivityWorkItem>, StoreError>;

    /// Up to `limit` armed timers that come after `after` in due order ([`DueKey`]: due time,
    /// then id), earliest first. The timer service keeps only the earliest timers in memory
    /// and reads the later ones with this as their turn comes.
    ///
    /// A page (decoded rows plus corrupt ones) holds fewer than `limit` rows only when no
    /// more timers follow: the caller takes a short page as the end of the store, so a backend
    /// must not cap its pages below `limit`.
    async fn pending_timers(
        &self,
        after: DueKey,
        limit: usize,
    ) -> Result<PendingPage<TimerWorkItem>, StoreError>;

    /// The entity's state and version with every operation queued for it, read at one moment
    /// (an entity that never committed has version 0 and no state).
    async fn load_entity(&self, entity_id: &str) -> Result<EntitySnapshot, StoreError> {
        let _ = entity_id;
        Err(no_entities())
    }

    /// The entity's row (state, version, queued operations counted), if it ever committed.
    async fn read_entity(&self, entity_id: &str) -> Result<Option<EntityRecord>, StoreError> {
        let _ = entity_id;
        Err(no_entities())
    }

    /// Up to `limit` ids of entities with operations queued, after `after` in id order: what
    /// startup recovery wakes.
    async fn entities_with_pending(
        &self,
        after: &str,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let _ = (after, limit);
        Err(no_entities())
    }

    /// One page of entities matching `query`.
    async fn list_entities(&self, query: &EntityQuery) -> Result<EntityPage, StoreError> {
        let _ = query;
        Err(no_entities())
    }

    /// The leases through which this store divides its work among many runtimes; `None` (the
    /// default) for a store one runtime owns, where all the work is this runtime's.
    fn leases(&self) -> Option<Arc<dyn Leases>> {
        None
    }

    /// The entity's last operations (at most [`ENTITY_LOG_LEN`]), oldest first.
    async fn entity_log(&self, entity_id: &str) -> Result<Vec<EntityLogEntry>, StoreError> {
        let _ = entity_id;
        Err(no_entities())
    }
}

/// What a backend without entity support answers to entity reads.
fn no_entities() -> StoreError {
    StoreError::Refused("this store backend does not support durable entities".into())
}
