//! Checking a recorded history against the code as it is now, without a store: the engine of
//! the replay tester ([`crate::testing::replay_history`]). The history is rebuilt exactly as
//! after a restart ([`Execution::replay`]), so the divergences found are the ones production
//! would fail the instance with; a history that ended (completed, failed) is also checked at
//! its end, which a live replay never needs to do.

use super::*;

/// How every non-determinism failure of the engine begins.
const NON_DETERMINISTIC: &str = "non-deterministic orchestrator";

/// What replaying a history against the code found.
#[derive(Debug)]
pub(crate) enum CheckedHistory {
    /// The code makes the same decisions.
    Compatible,
    /// The code diverged at history event `index`: history recorded `recorded`, the code
    /// `new`.
    Diverged {
        index: usize,
        recorded: String,
        new: String,
        message: String,
    },
    /// The code could not run at all (not registered, input does not decode).
    Failed(String),
}

/// Replays `history` (one run's, from its `ExecutionStarted`) against `name` and `version` as
/// registered now.
pub(crate) fn check_history(
    registry: &Registry,
    name: &str,
    version: Option<&str>,
    history: &[HistoryRecord],
    max_payload_bytes: usize,
) -> CheckedHistory {
    let mut history = history.to_vec();
    // The code under test runs, whatever name the recorded instance ran under. Not whatever
    // version: production keeps an instance on the version it started with, so a history of
    // another version never replays against this code.
    for record in &mut history {
        if let HistoryEvent::ExecutionStarted(started) = &mut record.event {
            if started.version.as_deref() != version {
                let shown = |v: Option<&str>| {
                    v.map_or("no version".to_string(), |v| format!("version '{v}'"))
                };
                return CheckedHistory::Failed(format!(
                    "the history was recorded by {} of its orchestrator, the code under test is \
                     {}: instances in flight keep running the version they started with, so \
                     check this history against that version's code",
                    shown(started.version.as_deref()),
                    shown(version)
                ));
            }
            started.name = name.to_string();
        }
    }
    // A finished history is replayed up to its end, then the end itself is checked.
    let end = history.last().and_then(|record| match &record.event {
        HistoryEvent::ExecutionCompleted { .. } => Some("ExecutionCompleted"),
        HistoryEvent::ExecutionFailed { .. } => Some("ExecutionFailed"),
        _ => None,
    });
    let replayed = match end {
        Some(_) => &history[..history.len() - 1],
        None => &history[..],
    };
    let instance_id = "replay-test";
    let execution = Execution::replay(registry, instance_id, replayed, max_payload_bytes);
    let state = execution.state.lock();
    if let Some(divergence) = &state.divergence {
        return CheckedHistory::Diverged {
            index: index_of_task(&history, divergence.task_id),
            recorded: divergence.recorded.clone(),
            new: divergence.new.clone(),
            message: state
                .nondeterminism
                .clone()
                .unwrap_or_else(|| format!("{divergence:?}")),
        };
    }
    let outcome = execution.pending_outcome.clone();
    let new_task = state.new_tasks.first().map(|task| task.action.describe());
    drop(state);
    // A divergence found as a whole step rather than at a task (the code now continues as new
    // in a step history records as going on, or as the end).
    if let Some(Err(failure)) = &outcome
        && failure.message.starts_with(NON_DETERMINISTIC)
    {
        let index = history.len() - 1;
        return CheckedHistory::Diverged {
            index,
            recorded: end.unwrap_or("the run going on").to_string(),
            new: if failure.message.contains("continues as new") {
                "continues as new instead"
            } else {
                "decides otherwise (see the message)"
            }
            .to_string(),
            message: failure.message.clone(),
        };
    }
    if let Some(Err(failure)) = &outcome
        && !execution.code_returned
        && execution.future.is_none()
    {
        // The code did not start (or a divergence the state did not record by its parts).
        return CheckedHistory::Failed(failure.message.clone());
    }
    match end {
        Some(end) if outcome.is_none() => {
            let index = history.len() - 1;
            let new = match new_task {
                Some(action) => format!("{action} instead"),
                None => "waits instead (for an event, or a task it no longer awaits)".to_string(),
            };
            CheckedHistory::Diverged {
                index,
                recorded: end.to_string(),
                message: format!(
                    "non-deterministic orchestrator: history ends with {end} at event {index}, \
                     but the code now {new}"
                ),
                new,
            }
        }
        _ => CheckedHistory::Compatible,
    }
}

/// The index of the event that recorded task `task_id` (its scheduling, else its result);
/// for a task history does not hold, the first event of a later task.
fn index_of_task(history: &[HistoryRecord], task_id: u64) -> usize {
    let created = |event: &HistoryEvent| match event {
        HistoryEvent::TaskScheduled { task_id, .. }
        | HistoryEvent::TimerCreated { task_id, .. } => Some(*task_id),
        HistoryEvent::SubOrchestrationInstanceCreated(created) => Some(created.task_id),
        HistoryEvent::EntityOperationCalled(call) => Some(call.task_id),
        _ => None,
    };
    let result = |event: &HistoryEvent| match event {
        HistoryEvent::TaskCompleted { task_id, .. }
        | HistoryEvent::TaskFailed { task_id, .. }
        | HistoryEvent::TimerFired { task_id }
        | HistoryEvent::SubOrchestrationInstanceCompleted { task_id, .. }
        | HistoryEvent::SubOrchestrationInstanceFailed { task_id, .. }
        | HistoryEvent::EntityOperationCompleted { task_id, .. }
        | HistoryEvent::EntityOperationFailed { task_id, .. } => Some(*task_id),
        _ => None,
    };
    let position = |matches: &dyn Fn(u64) -> bool, of: &dyn Fn(&HistoryEvent) -> Option<u64>| {
        history
            .iter()
            .position(|record| of(&record.event).is_some_and(matches))
    };
    position(&|id| id == task_id, &created)
        .or_else(|| position(&|id| id == task_id, &result))
        .or_else(|| position(&|id| id > task_id, &created))
        .unwrap_or(history.len().saturating_sub(1))
}
