//! The client operations a store applies: terminate, suspend, resume, restart, rewind and
//! purge ([`Manage`]), and scheduled starts ([`START_TIMER_TASK`]).

use super::{ActivityWorkItem, Message, TimerWorkItem};
#[cfg(doc)]
use super::{StoreError, Write};
use crate::instance::RuntimeStatus;
use std::sync::Arc;

/// The task id of the timer that starts an instance with a scheduled start
/// ([`Write::ScheduleInstance`]). An orchestrator's own task ids count up from 0 and never
/// reach it.
pub const START_TIMER_TASK: u64 = i64::MAX as u64;

/// A client operation on instances, applied atomically with everything it implies.
///
/// The status state machine: `terminate` moves a `Pending`, `Running` or `Suspended` instance
/// to `Terminated`; `suspend` moves a `Pending` or `Running` one to `Suspended`; `resume` moves
/// a `Suspended` one back (to `Running`, or `Pending` if it never ran a step); `restart` and
/// `purge` take a finished one (`Completed`, `Failed`, `Terminated`). Any other status is
/// refused with [`StoreError::NotApplicable`], changing nothing.
#[derive(Clone, Debug)]
pub enum Manage {
    /// Ends the instance `Terminated`: appends `ExecutionTerminated` to its history (so a step
    /// computed against the old history or status is fenced), stores the reason as its output,
    /// deletes its armed timers, queued activities and unconsumed messages, sends its parent
    /// (if any, and running) a `SubOrchestrationInstanceFailed`, and terminates its running
    /// sub-orchestrations the same way, recursively, in the same transaction. Their parents
    /// are terminated first, so no outcome of a terminated child reaches them. The answer is
    /// `Managed`.
    Terminate {
        /// The instance.
        instance_id: String,
        /// Why.
        reason: String,
        /// When (ms since the epoch).
        timestamp_ms: i64,
    },
    /// Marks the instance `Suspended` and sends it an `ExecutionSuspended` message. Steps
    /// against a suspended instance are fenced; messages sent to it stay in the store.
    Suspend {
        /// The instance.
        instance_id: String,
        /// Why.
        reason: String,
        /// When (ms since the epoch).
        timestamp_ms: i64,
    },
    /// Moves a suspended instance back to `Running` (or `Pending`) and sends it an
    /// `ExecutionResumed` message.
    Resume {
        /// The instance.
        instance_id: String,
        /// Why.
        reason: String,
        /// When (ms since the epoch).
        timestamp_ms: i64,
    },
    /// Starts a finished instance again under its id, with its orchestrator, version and
    /// input: its history, output, failure, idempotency keys and work rows are deleted, its
    /// row starts over as `Pending` on the run `execution_id` (no longer a sub-orchestration:
    /// the parent's call was answered already), and its `ExecutionStarted` is sent. The answer
    /// is `Instance`.
    Restart {
        /// The instance.
        instance_id: String,
        /// The new run's id.
        execution_id: Arc<str>,
        /// When (ms since the epoch); its new creation time.
        timestamp_ms: i64,
    },
    /// Deletes finished instances with everything stored about them: history, input, output,
    /// idempotency keys, and any message, activity or timer row left. The answer is `Purged`.
    Purge(PurgeTarget),
    /// Rewinds a `Failed` instance: appends `ExecutionRewound`, moves it back to `Running`,
    /// and runs again the failures the code did not handle
    /// (see `HistoryEvent::ExecutionRewound`): a failed activity is enqueued again (its
    /// `TaskScheduled` name and input, same task id); a failed sub-orchestration that is
    /// itself `Failed` is rewound the same way, recursively, and its outcome goes to this run
    /// again; any other failed child's failure is sent again. Replay skips the rewound
    /// failures and the `ExecutionFailed` (see `HistoryEvent::ExecutionRewound`). An instance
    /// with no such failure (its own code failed) is refused with
    /// [`StoreError::NotApplicable`], and so is one (or a failed child of one) that failed
    /// inside a critical section, with [`REWIND_HOLDING_LOCKS`] as the operation. The answer
    /// is `Managed`.
    Rewind {
        /// The instance.
        instance_id: String,
        /// Why.
        reason: String,
        /// When (ms since the epoch).
        timestamp_ms: i64,
    },
}

/// Which instances a purge removes.
#[derive(Clone, Debug, PartialEq)]
pub enum PurgeTarget {
    /// This one; [`StoreError::InstanceNotFound`] if it does not exist and
    /// [`StoreError::NotApplicable`] if it is not finished.
    Instance(String),
    /// Up to `limit` finished instances matching the filter (a caller purging more asks again
    /// until fewer come back: each write stays a short transaction).
    Matching {
        /// Which.
        filter: PurgeFilter,
        /// At most this many.
        limit: u32,
    },
}

/// A filter for purging finished instances; every field narrows it.
///
/// ```
/// use durable_runtime::RuntimeStatus;
/// use durable_runtime::store::PurgeFilter;
/// // Failed instances created before a moment.
/// let filter = PurgeFilter {
///     created_to_ms: Some(1_700_000_000_000),
///     statuses: vec![RuntimeStatus::Failed],
///     ..PurgeFilter::default()
/// };
/// # let _ = filter;
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PurgeFilter {
    /// Only instances created at or after this time (ms since the epoch).
    pub created_from_ms: Option<i64>,
    /// Only instances created before this time (ms since the epoch).
    pub created_to_ms: Option<i64>,
    /// Only instances last updated (finished) before this time (ms since the epoch).
    pub updated_to_ms: Option<i64>,
    /// Only these statuses (every finished one when empty). A status that is not finished
    /// (`Pending`, `Running`, `Suspended`, `ContinuedAsNew`) never matches: a running instance
    /// is never purged.
    pub statuses: Vec<RuntimeStatus>,
}

/// What a client operation changed, for the runtime to dispatch.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ManagedWork {
    /// Instances whose status changed (the one addressed, and the sub-orchestrations a
    /// terminate reached): the runtime forgets their cached executions and wakes their
    /// waiters.
    pub changed: Vec<String>,
    /// Messages the operation sent (`ExecutionSuspended`, `ExecutionResumed`, outcomes to
    /// parents).
    pub messages: Vec<Message>,
    /// Activities it enqueued (a rewind's).
    pub activities: Vec<ActivityWorkItem>,
    /// Timers it armed (a rewind's: those its failure had disarmed).
    pub timers: Vec<TimerWorkItem>,
    /// Entity operations it sent (a terminate's: the release of the locks the terminated
    /// instances held or asked for).
    pub entity_messages: Vec<super::EntityMessage>,
}

/// The operation [`StoreError::NotApplicable`] names when a rewind is refused because the
/// instance (or a failed sub-orchestration it would rewind) failed inside a critical section
/// (`lock_entities`): the store released its entity locks when it failed, and the rewound code
/// would continue its section without them, interleaving with other orchestrations. Restart
/// it instead (a new run takes its locks again).
pub const REWIND_HOLDING_LOCKS: &str =
    "rewind (it failed inside a critical section whose entity locks were released; restart it)";
