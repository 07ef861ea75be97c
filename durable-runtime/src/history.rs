//! The append-only history an orchestration is rebuilt from.
//!
//! Event names follow the Durable Functions history event types so that status queries can
//! show them to existing tooling unchanged.

use crate::failure::FailureDetails;
use crate::payload::Payload;
use serde::{Deserialize, Serialize};

/// One event in an orchestration's history (or a message on its way to becoming one).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum HistoryEvent {
    /// The instance was started with this orchestrator and input. Boxed, like the other large
    /// events, so that every event in memory stays small (a fan-out step holds thousands).
    ExecutionStarted(Box<ExecutionStartedEvent>),
    /// A step (episode) of the orchestrator began; its timestamp is the orchestration's "now".
    OrchestratorStarted,
    /// The orchestrator scheduled activity `name`; `task_id` is the orchestrator's sequence number.
    TaskScheduled {
        /// The orchestrator's sequence number for this task.
        task_id: u64,
        /// Registered activity name.
        name: String,
        /// The activity's input.
        input: Payload,
    },
    /// The activity scheduled as `task_id` returned a value.
    TaskCompleted {
        /// Which scheduled task this completes.
        task_id: u64,
        /// The activity's output.
        result: Payload,
    },
    /// The activity scheduled as `task_id` failed.
    TaskFailed {
        /// Which scheduled task this completes.
        task_id: u64,
        /// What went wrong.
        failure: FailureDetails,
    },
    /// The orchestrator created a durable timer; `task_id` is the orchestrator's sequence number.
    TimerCreated {
        /// The orchestrator's sequence number for this timer.
        task_id: u64,
        /// When it fires, in milliseconds since the Unix epoch.
        fire_at_ms: i64,
    },
    /// The timer created as `task_id` fired.
    TimerFired {
        /// Which timer fired.
        task_id: u64,
    },
    /// The orchestrator created a sub-orchestration; `task_id` is the orchestrator's sequence
    /// number. The child instance was created in the same commit as this event.
    SubOrchestrationInstanceCreated(Box<SubOrchestrationCreatedEvent>),
    /// The sub-orchestration created as `task_id` completed.
    SubOrchestrationInstanceCompleted {
        /// Which call this completes.
        task_id: u64,
        /// The child's output.
        result: Payload,
    },
    /// The sub-orchestration created as `task_id` failed (or could not be created).
    SubOrchestrationInstanceFailed {
        /// Which call this completes.
        task_id: u64,
        /// What went wrong.
        failure: FailureDetails,
    },
    /// An external event arrived (`Client::raise_event`).
    EventRaised {
        /// The event's name.
        name: String,
        /// Its payload.
        input: Payload,
    },
    /// The orchestrator returned a value; the instance is complete.
    ExecutionCompleted {
        /// The orchestrator's output.
        result: Payload,
    },
    /// The orchestrator failed (its error, a panic, or non-deterministic replay).
    ExecutionFailed {
        /// What went wrong.
        failure: FailureDetails,
    },
    /// A client terminated the instance (`Client::terminate`); nothing follows it.
    ExecutionTerminated {
        /// The reason the client gave.
        reason: String,
    },
    /// A client suspended the instance (`Client::suspend`): it runs no step until resumed.
    /// Recorded by the step that runs after the resume, in the order the messages arrived.
    ExecutionSuspended {
        /// The reason the client gave.
        reason: String,
    },
    /// A client resumed the suspended instance (`Client::resume`).
    ExecutionResumed {
        /// The reason the client gave.
        reason: String,
    },
    /// The orchestrator sent an operation to an entity (`ctx.call_entity`, which waits for its
    /// result, or `ctx.signal_entity`, one way); `task_id` is its sequence number. The
    /// operation was queued for the entity in the same commit as this event.
    EntityOperationCalled(Box<EntityCallEvent>),
    /// The entity operation called as `task_id` returned (its result, `null` for none).
    EntityOperationCompleted {
        /// Which call this completes.
        task_id: u64,
        /// The operation's result.
        result: Payload,
    },
    /// The entity operation called as `task_id` failed.
    EntityOperationFailed {
        /// Which call this completes.
        task_id: u64,
        /// What went wrong.
        failure: FailureDetails,
    },
    /// A client rewound the failed instance (`Client::rewind`): the task failures before
    /// this event after which the code scheduled nothing more (what it failed on), and the
    /// `ExecutionFailed` before it, are not replayed; those tasks run again and their new
    /// results follow.
    ExecutionRewound {
        /// The reason the client gave.
        reason: String,
    },
}

// A fan-out step holds one event per task it schedules: large events are boxed to keep this.
const _: () = assert!(std::mem::size_of::<HistoryEvent>() <= 64);

impl HistoryEvent {
    /// The Durable Functions name of this event type (`"TaskScheduled"`, ...).
    pub fn event_type(&self) -> &'static str {
        match self {
            HistoryEvent::ExecutionStarted(_) => "ExecutionStarted",
            HistoryEvent::OrchestratorStarted => "OrchestratorStarted",
            HistoryEvent::TaskScheduled { .. } => "TaskScheduled",
            HistoryEvent::TaskCompleted { .. } => "TaskCompleted",
            HistoryEvent::TaskFailed { .. } => "TaskFailed",
            HistoryEvent::TimerCreated { .. } => "TimerCreated",
            HistoryEvent::TimerFired { .. } => "TimerFired",
            HistoryEvent::SubOrchestrationInstanceCreated(_) => "SubOrchestrationInstanceCreated",
            HistoryEvent::SubOrchestrationInstanceCompleted { .. } => {
                "SubOrchestrationInstanceCompleted"
            }
            HistoryEvent::SubOrchestrationInstanceFailed { .. } => "SubOrchestrationInstanceFailed",
            HistoryEvent::EventRaised { .. } => "EventRaised",
            HistoryEvent::ExecutionCompleted { .. } => "ExecutionCompleted",
            HistoryEvent::ExecutionFailed { .. } => "ExecutionFailed",
            HistoryEvent::ExecutionTerminated { .. } => "ExecutionTerminated",
            HistoryEvent::ExecutionSuspended { .. } => "ExecutionSuspended",
            HistoryEvent::ExecutionResumed { .. } => "ExecutionResumed",
            HistoryEvent::ExecutionRewound { .. } => "ExecutionRewound",
            HistoryEvent::EntityOperationCalled(call) if call.signal => "EntityOperationSignaled",
            HistoryEvent::EntityOperationCalled(_) => "EntityOperationCalled",
            HistoryEvent::EntityOperationCompleted { .. } => "EntityOperationCompleted",
            HistoryEvent::EntityOperationFailed { .. } => "EntityOperationFailed",
        }
    }

    /// True for the events that record a task's (or sub-orchestration's) failure.
    fn is_task_failure(&self) -> bool {
        matches!(
            self,
            HistoryEvent::TaskFailed { .. } | HistoryEvent::SubOrchestrationInstanceFailed { .. }
        )
    }

    /// True for the events that record the code scheduling something.
    fn is_scheduling(&self) -> bool {
        matches!(
            self,
            HistoryEvent::TaskScheduled { .. }
                | HistoryEvent::TimerCreated { .. }
                | HistoryEvent::SubOrchestrationInstanceCreated(_)
        )
    }
}

/// The failures a rewind at position `end` of `history` runs again: the task and
/// sub-orchestration failures not rewound before (`skipped`) after which the code scheduled
/// nothing more. Those are the failures the code did not handle (it failed on them); a failure
/// followed by more work was handled (a retry's earlier attempt, a compensation) and stays.
/// Indices into `history`, in order.
pub(crate) fn unhandled_failures(
    history: &[&HistoryEvent],
    skipped: &std::collections::BTreeSet<usize>,
    end: usize,
) -> Vec<usize> {
    let end = end.min(history.len());
    let last_scheduled = history[..end].iter().rposition(|e| e.is_scheduling());
    history[..end]
        .iter()
        .enumerate()
        .filter(|(index, event)| {
            event.is_task_failure()
                && !skipped.contains(index)
                && last_scheduled.is_none_or(|last| *index > last)
        })
        .map(|(index, _)| index)
        .collect()
}

/// The entities whose locks the failed run of `history` held when its code failed: those
/// [`entity_locks_held`] finds without the entity operations its failing step (the last one,
/// from its `OrchestratorStarted`) sent, since the unlocks the dropped guard sent as the code
/// failed are among them. Where the failure a rewind runs again sits in history says nothing:
/// a task may fail before the section and its failure be raised by the code inside it. An
/// explicit release in that same step counts as held too (a rewind refused that could have
/// gone ahead, never the reverse).
pub(crate) fn entity_locks_held_at_failure(history: &[&HistoryEvent]) -> Vec<String> {
    let failing_step = history
        .iter()
        .rposition(|event| matches!(event, HistoryEvent::OrchestratorStarted))
        .unwrap_or(0);
    let before: Vec<&HistoryEvent> = history
        .iter()
        .enumerate()
        .filter(|(index, event)| {
            *index < failing_step || !matches!(event, HistoryEvent::EntityOperationCalled(_))
        })
        .map(|(_, event)| *event)
        .collect();
    entity_locks_held(&before)
}

/// The entities whose locks the run of `history` holds or asked for where the history ends:
/// lock requests not answered by a failure and not followed by an unlock. A run that failed
/// inside a critical section has some; the store released them when it failed, so a rewind
/// (which replays the code back into the section) is refused for it.
fn entity_locks_held(history: &[&HistoryEvent]) -> Vec<String> {
    use crate::store::{LOCK_OPERATION, UNLOCK_OPERATION};
    // Lock requests by task id, then released or refused ones removed.
    let mut held: Vec<(u64, &str)> = Vec::new();
    for event in history {
        match event {
            HistoryEvent::EntityOperationCalled(call) if call.operation == LOCK_OPERATION => {
                held.push((call.task_id, call.entity_id.as_str()));
            }
            HistoryEvent::EntityOperationCalled(call) if call.operation == UNLOCK_OPERATION => {
                held.retain(|(_, entity)| *entity != call.entity_id);
            }
            HistoryEvent::EntityOperationFailed { task_id, .. } => {
                held.retain(|(task, _)| task != task_id);
            }
            _ => {}
        }
    }
    let mut entities: Vec<String> = held.into_iter().map(|(_, e)| e.to_string()).collect();
    entities.sort();
    entities.dedup();
    entities
}

/// The events of `history` that replay skips because a later `ExecutionRewound` undid them:
/// for each rewind, the failures it ran again ([`unhandled_failures`] up to it) and every
/// `ExecutionFailed` before it. Empty (and cheap) for a history never rewound.
pub(crate) fn rewound_events(history: &[&HistoryEvent]) -> std::collections::BTreeSet<usize> {
    let mut skipped = std::collections::BTreeSet::new();
    for (position, event) in history.iter().enumerate() {
        if !matches!(event, HistoryEvent::ExecutionRewound { .. }) {
            continue;
        }
        let failures = unhandled_failures(history, &skipped, position);
        skipped.extend(failures);
        skipped.extend(
            history[..position]
                .iter()
                .enumerate()
                .filter(|(_, e)| matches!(e, HistoryEvent::ExecutionFailed { .. }))
                .map(|(index, _)| index),
        );
    }
    skipped
}

/// What [`HistoryEvent::ExecutionStarted`] records.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExecutionStartedEvent {
    /// Registered orchestrator name.
    pub name: String,
    /// Orchestrator version, if it declared one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The orchestrator's input.
    pub input: Payload,
    /// The id of this run of the instance (absent in histories written before runs had
    /// ids): results from another run never land in this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_id: Option<String>,
    /// The orchestration that created this instance as a sub-orchestration, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<ParentInstance>,
    /// Raised events a previous run of the instance received and did not consume, carried
    /// into this run by `continue_as_new`. Only on the message that starts the run: the step
    /// that starts it records them as `EventRaised` events after `ExecutionStarted`, so a
    /// history never holds them here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub carried_events: Vec<CarriedEvent>,
}

/// An external event carried from one run of an instance into the next.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CarriedEvent {
    /// The event's name.
    pub name: String,
    /// Its payload.
    pub input: Payload,
}

/// What [`HistoryEvent::SubOrchestrationInstanceCreated`] records.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SubOrchestrationCreatedEvent {
    /// The orchestrator's sequence number for this call.
    pub task_id: u64,
    /// The child's registered orchestrator name.
    pub name: String,
    /// The child's orchestrator version, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The child's instance id.
    pub instance_id: String,
    /// The child's input.
    pub input: Payload,
}

/// What [`HistoryEvent::EntityOperationCalled`] records.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EntityCallEvent {
    /// The orchestrator's sequence number for this call.
    pub task_id: u64,
    /// The entity, `@name@key`.
    pub entity_id: String,
    /// The operation's name.
    pub operation: String,
    /// Its input.
    pub input: Payload,
    /// True for a one-way signal (no result comes back).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub signal: bool,
}

/// Where a sub-orchestration came from: recorded in its `ExecutionStarted`, and on its row, so
/// that its outcome goes back to the call that created it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParentInstance {
    /// The parent's instance id.
    pub instance_id: String,
    /// The parent's run that made the call; the outcome is delivered to that run only.
    pub execution_id: String,
    /// The parent's sequence number for the call.
    pub task_id: u64,
}

/// A history event with its position and the time it was recorded.
///
/// Its JSON form (`{"seq": 0, "timestamp_ms": 1700000000000, "event": {"ExecutionStarted": ..}}`)
/// is the stable export format of a history: what `durable history --json` prints and what a
/// replay-test fixture holds. Fields and event variants are only ever added, never renamed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HistoryRecord {
    /// Position in the instance's history, from 0.
    pub seq: u64,
    /// When the event was recorded, in milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// The event.
    pub event: HistoryEvent,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_as_readable_json() {
        let event = HistoryEvent::TaskScheduled {
            task_id: 3,
            name: "say_hello".into(),
            input: Payload::encode("Tokyo").expect("encodes"),
        };
        let json = serde_json::to_string(&event).expect("serializes");
        assert_eq!(
            json,
            r#"{"TaskScheduled":{"task_id":3,"name":"say_hello","input":"Tokyo"}}"#
        );
        let back: HistoryEvent = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, event);
    }

    #[test]
    fn a_rewind_undoes_the_failures_the_code_failed_on_not_those_it_handled() {
        let failed = |task_id| HistoryEvent::TaskFailed {
            task_id,
            failure: FailureDetails::new("no"),
        };
        let scheduled = |task_id| HistoryEvent::TaskScheduled {
            task_id,
            name: "a".into(),
            input: Payload::null(),
        };
        let failed_end = HistoryEvent::ExecutionFailed {
            failure: FailureDetails::new("no"),
        };
        let rewound = HistoryEvent::ExecutionRewound { reason: "r".into() };
        let history = [
            scheduled(0),       // 0
            failed(0),          // 1: handled (task 1 was scheduled after it)
            scheduled(1),       // 2
            failed(1),          // 3: the code failed on it
            failed_end.clone(), // 4
            rewound.clone(),    // 5
            failed(1),          // 6: failed again
            failed_end,         // 7
        ];
        let events: Vec<&HistoryEvent> = history.iter().collect();
        let first = rewound_events(&events[..6]);
        assert_eq!(first.into_iter().collect::<Vec<_>>(), vec![3, 4]);
        // A second rewind at the end undoes the new failure too.
        let skipped = rewound_events(&events);
        assert_eq!(unhandled_failures(&events, &skipped, events.len()), vec![6]);
        let mut twice = events.clone();
        twice.push(&rewound);
        let all = rewound_events(&twice);
        assert_eq!(all.into_iter().collect::<Vec<_>>(), vec![3, 4, 6, 7]);
    }
}
