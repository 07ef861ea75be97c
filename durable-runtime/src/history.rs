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
        }
    }
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
#[derive(Clone, Debug, PartialEq)]
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
}
