//! The JSON bodies of the original's API: instance statuses (camelCase) and their history
//! events (the original's PascalCase event shapes).

use super::time::format_ms;
use crate::history::{HistoryEvent, HistoryRecord};
use crate::instance::{InstanceStatus, RuntimeStatus};
use crate::payload::Payload;
use serde::Serialize;
use serde_json::{Map, Value, json};
use std::collections::HashMap;

/// What a status query shows, from its query parameters.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Show {
    pub input: bool,
    pub history: bool,
    pub history_output: bool,
}

/// An instance's status, as the original's `GET /instances/{id}` shows it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StatusBody {
    name: String,
    instance_id: String,
    runtime_status: &'static str,
    input: Option<Payload>,
    custom_status: Option<Payload>,
    output: Option<Value>,
    created_time: String,
    last_updated_time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    history_events: Option<Vec<Value>>,
}

impl StatusBody {
    pub(crate) fn new(status: InstanceStatus, show: Show) -> Self {
        // A failed instance's output is its failure message, as in the original; a terminated
        // one's, the reason (stored as its output).
        let output = match (&status.output, &status.failure) {
            (Some(output), _) => Some(raw(output)),
            (None, Some(failure)) => Some(Value::String(failure.message.clone())),
            (None, None) => None,
        };
        let history_events = match (show.history, &status.history) {
            (true, Some(history)) => Some(history_events(history, show)),
            _ => None,
        };
        StatusBody {
            name: status.name,
            instance_id: status.instance_id,
            runtime_status: status.runtime_status.as_str(),
            input: show.input.then_some(status.input),
            custom_status: status.custom_status,
            output,
            created_time: format_ms(status.created_ms),
            last_updated_time: format_ms(status.last_updated_ms),
            history_events,
        }
    }

    /// Whether the instance has finished (a status answered with 200, not 202).
    pub(crate) fn is_finished(status: RuntimeStatus) -> bool {
        status.is_terminal()
    }
}

fn raw(payload: &Payload) -> Value {
    // A payload is valid JSON by construction; an unparsable one is shown as its text.
    serde_json::from_str(payload.as_str()).unwrap_or_else(|_| Value::String(payload.to_string()))
}

/// A history as the original shows it: one object per event with `EventType` and
/// `Timestamp`. As in the original, the scheduling events (`TaskScheduled`,
/// `SubOrchestrationInstanceCreated`) and `OrchestratorStarted` are left out, their function
/// name and time merged into the event that completes them (`FunctionName`,
/// `ScheduledTime`); results and inputs only with `showHistoryOutput` (inputs of
/// `ExecutionStarted`: with `showInput`).
pub(crate) fn history_events(history: &[HistoryRecord], show: Show) -> Vec<Value> {
    let mut scheduled: HashMap<u64, (&str, i64)> = HashMap::new();
    let mut events = Vec::with_capacity(history.len());
    for record in history {
        let mut fields = Map::new();
        let mut set = |key: &str, value: Value| {
            fields.insert(key.to_string(), value);
        };
        let output = |payload: &Payload| show.history_output.then(|| raw(payload));
        let mut scheduled_as = |set: &mut dyn FnMut(&str, Value), task_id: &u64| {
            if let Some((name, at)) = scheduled.remove(task_id) {
                set("FunctionName", json!(name));
                set("ScheduledTime", json!(format_ms(at)));
            }
        };
        let event_type = match &record.event {
            HistoryEvent::OrchestratorStarted => continue,
            HistoryEvent::TaskScheduled { task_id, name, .. } => {
                scheduled.insert(*task_id, (name.as_str(), record.timestamp_ms));
                continue;
            }
            HistoryEvent::SubOrchestrationInstanceCreated(created) => {
                scheduled.insert(
                    created.task_id,
                    (created.name.as_str(), record.timestamp_ms),
                );
                continue;
            }
            HistoryEvent::ExecutionStarted(started) => {
                set("FunctionName", json!(started.name));
                if let Some(version) = &started.version {
                    set("Version", json!(version));
                }
                if show.input {
                    set("Input", raw(&started.input));
                }
                "ExecutionStarted"
            }
            HistoryEvent::TaskCompleted { task_id, result } => {
                scheduled_as(&mut set, task_id);
                if let Some(result) = output(result) {
                    set("Result", result);
                }
                "TaskCompleted"
            }
            HistoryEvent::TaskFailed { task_id, failure } => {
                scheduled_as(&mut set, task_id);
                set("Reason", json!(failure.message));
                set("Details", json!(failure.details));
                "TaskFailed"
            }
            HistoryEvent::TimerCreated { fire_at_ms, .. } => {
                set("FireAt", json!(format_ms(*fire_at_ms)));
                "TimerCreated"
            }
            HistoryEvent::TimerFired { task_id } => {
                set("TimerId", json!(task_id));
                "TimerFired"
            }
            HistoryEvent::SubOrchestrationInstanceCompleted { task_id, result } => {
                scheduled_as(&mut set, task_id);
                if let Some(result) = output(result) {
                    set("Result", result);
                }
                "SubOrchestrationInstanceCompleted"
            }
            HistoryEvent::SubOrchestrationInstanceFailed { task_id, failure } => {
                scheduled_as(&mut set, task_id);
                set("Reason", json!(failure.message));
                set("Details", json!(failure.details));
                "SubOrchestrationInstanceFailed"
            }
            HistoryEvent::EventRaised { name, input } => {
                set("Name", json!(name));
                if let Some(input) = output(input) {
                    set("Input", input);
                }
                "EventRaised"
            }
            HistoryEvent::ExecutionCompleted { result } => {
                set("OrchestrationStatus", json!("Completed"));
                if let Some(result) = output(result) {
                    set("Result", result);
                }
                "ExecutionCompleted"
            }
            // The original records a failure as an `ExecutionCompleted` whose status is
            // `Failed`.
            HistoryEvent::ExecutionFailed { failure } => {
                set("OrchestrationStatus", json!("Failed"));
                set("Result", json!(failure.message));
                set(
                    "FailureDetails",
                    json!({ "ErrorMessage": failure.message, "Details": failure.details }),
                );
                "ExecutionCompleted"
            }
            HistoryEvent::ExecutionTerminated { reason } => {
                set("Input", json!(reason));
                "ExecutionTerminated"
            }
            HistoryEvent::ExecutionSuspended { reason } => {
                set("Reason", json!(reason));
                "ExecutionSuspended"
            }
            HistoryEvent::ExecutionResumed { reason } => {
                set("Reason", json!(reason));
                "ExecutionResumed"
            }
            HistoryEvent::ExecutionRewound { reason } => {
                set("Reason", json!(reason));
                "ExecutionRewound"
            }
            // The original records an entity operation as a message sent to the entity
            // (`EventSent`, to `@name@key`) and its answer as an event raised back.
            HistoryEvent::EntityOperationCalled(call) => {
                if !call.signal {
                    scheduled.insert(call.task_id, (call.operation.as_str(), record.timestamp_ms));
                }
                set("InstanceId", json!(call.entity_id));
                set("Name", json!(call.operation));
                if let Some(input) = output(&call.input) {
                    set("Input", input);
                }
                "EventSent"
            }
            HistoryEvent::EntityOperationCompleted { task_id, result } => {
                scheduled_as(&mut set, task_id);
                if let Some(result) = output(result) {
                    set("Result", result);
                }
                "EventRaised"
            }
            HistoryEvent::EntityOperationFailed { task_id, failure } => {
                scheduled_as(&mut set, task_id);
                set("Reason", json!(failure.message));
                set("Details", json!(failure.details));
                "EventRaised"
            }
        };
        fields.insert("EventType".into(), json!(event_type));
        fields.insert("Timestamp".into(), json!(format_ms(record.timestamp_ms)));
        events.push(Value::Object(fields));
    }
    events
}

/// The body of a purge: how many instances were deleted.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PurgeBody {
    pub instances_deleted: u64,
}
