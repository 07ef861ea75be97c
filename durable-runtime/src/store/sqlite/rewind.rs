//! Rewinding a failed instance in a write: the failures its code did not handle run again.

use super::apply::{NextIds, insert_message};
use super::check::instance_state;
use super::error::SqlContext;
use super::large_values::{self, JsonParam, JsonText};
use super::manage::state_for;
use super::read;
use crate::failure::FailureDetails;
use crate::history::{
    HistoryEvent, SubOrchestrationCreatedEvent, entity_locks_held_at_failure, rewound_events,
    unhandled_failures,
};
use crate::instance::RuntimeStatus;
use crate::payload::Payload;
use crate::store::{
    ActivityWorkItem, ManagedWork, REWIND_HOLDING_LOCKS, StoreError, TimerWorkItem,
};
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

/// Rewinds `instance_id` and, recursively, its failed sub-orchestrations (see
/// [`Manage::Rewind`](crate::store::Manage::Rewind)).
pub(super) fn rewind(
    conn: &Connection,
    ids: &mut NextIds,
    instance_id: &str,
    reason: &str,
    timestamp_ms: i64,
) -> Result<ManagedWork, StoreError> {
    state_for(conn, "rewind", instance_id, &[RuntimeStatus::Failed])?;
    let mut work = ManagedWork::default();
    let mut queue = vec![instance_id.to_string()];
    while let Some(id) = queue.pop() {
        let children = rewind_one(conn, ids, &id, reason, timestamp_ms, &mut work)?;
        if children.is_none() && id == instance_id {
            return Err(StoreError::NotApplicable {
                operation: "rewind (no failed activity or sub-orchestration to run again)",
                instance_id: id,
                status: RuntimeStatus::Failed,
            });
        }
        queue.extend(children.unwrap_or_default());
        work.changed.push(id);
    }
    Ok(work)
}

/// The failures a rewind of `history` now runs again.
fn failures_to_run_again(history: &[&HistoryEvent]) -> Vec<usize> {
    let skipped = rewound_events(history);
    unhandled_failures(history, &skipped, history.len())
}

/// Rewinds one instance; the failed children to rewind next, or `None` if it has no failure
/// to run again (nothing was changed then).
fn rewind_one(
    conn: &Connection,
    ids: &mut NextIds,
    instance_id: &str,
    reason: &str,
    timestamp_ms: i64,
    work: &mut ManagedWork,
) -> Result<Option<Vec<String>>, StoreError> {
    let Some(state) = instance_state(conn, instance_id)? else {
        return Ok(None);
    };
    let history = read::history(conn, instance_id)?;
    let events: Vec<&HistoryEvent> = history.iter().map(|r| &r.event).collect();
    let failures = failures_to_run_again(&events);
    if failures.is_empty() {
        return Ok(None);
    }
    // The rewound code goes on from where it failed: the locks it held there were released
    // by the store when it failed.
    let held = entity_locks_held_at_failure(&events);
    if !held.is_empty() {
        tracing::warn!(instance = %instance_id, entities = ?held, "not rewound: it failed inside a critical section");
        return Err(StoreError::NotApplicable {
            operation: REWIND_HOLDING_LOCKS,
            instance_id: instance_id.to_string(),
            status: RuntimeStatus::Failed,
        });
    }
    let run: Arc<str> = state.execution_id.as_str().into();
    let mut children = Vec::new();
    for &index in &failures {
        match events[index] {
            HistoryEvent::TaskFailed { task_id, .. } => {
                let scheduled = events.iter().find_map(|event| match event {
                    HistoryEvent::TaskScheduled {
                        task_id: scheduled,
                        name,
                        input,
                    } if scheduled == task_id => Some((name, input)),
                    _ => None,
                });
                let Some((name, input)) = scheduled else {
                    return Err(StoreError::Corrupt {
                        table: "history",
                        key: instance_id.to_string(),
                        reason: format!("task {task_id} failed but was never scheduled"),
                    });
                };
                let row = NextIds::take(&mut ids.activities);
                conn.prepare_cached(
                    "INSERT INTO activities (id, instance_id, task_id, name, input, execution_id)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?
                .execute(params![
                    row,
                    instance_id,
                    task_id,
                    name,
                    JsonParam(input.as_str()),
                    &*run
                ])?;
                large_values::fill(conn, "activities", "input", row, input.as_str())?;
                work.activities.push(ActivityWorkItem {
                    id: row,
                    instance_id: instance_id.to_string(),
                    execution_id: run.clone(),
                    task_id: *task_id,
                    name: name.clone(),
                    input: input.clone(),
                });
            }
            HistoryEvent::SubOrchestrationInstanceFailed { task_id, failure } => {
                let child = events.iter().find_map(|event| match event {
                    HistoryEvent::SubOrchestrationInstanceCreated(created)
                        if created.task_id == *task_id =>
                    {
                        Some(created.instance_id.clone())
                    }
                    _ => None,
                });
                let rewindable = match &child {
                    Some(child) => {
                        instance_state(conn, child)?.is_some_and(|child_state| {
                            child_state.status == RuntimeStatus::Failed
                                && child_state.parent.as_ref().is_some_and(|parent| {
                                    parent.instance_id == instance_id
                                        && parent.execution_id == *run
                                        && parent.task_id == *task_id
                                })
                        }) && {
                            let child_history = read::history(conn, child)?;
                            let child_events: Vec<&HistoryEvent> =
                                child_history.iter().map(|r| &r.event).collect();
                            !failures_to_run_again(&child_events).is_empty()
                        }
                    }
                    None => false,
                };
                match child {
                    // Its outcome comes back to this run when it finishes again.
                    Some(child) if rewindable => children.push(child),
                    // Nothing to run again: the call gets its failure again.
                    _ => {
                        let again = HistoryEvent::SubOrchestrationInstanceFailed {
                            task_id: *task_id,
                            failure: failure.clone(),
                        };
                        work.messages
                            .push(insert_message(conn, ids, instance_id, &run, &again)?);
                    }
                }
            }
            _ => {}
        }
    }
    redrive_pending(conn, ids, instance_id, &run, &events, &failures, work)?;
    let rewound = HistoryEvent::ExecutionRewound {
        reason: reason.to_string(),
    };
    super::history_rows::append(
        conn,
        instance_id,
        state.history_len,
        timestamp_ms,
        std::slice::from_ref(&rewound),
    )?;
    conn.prepare_cached(
        "UPDATE instances SET status = ?2, failure = NULL, updated_ms = ?3, history_len = ?4,
                              recovery_attempts = 0
         WHERE instance_id = ?1",
    )?
    .execute(params![
        instance_id,
        RuntimeStatus::Running.as_str(),
        timestamp_ms,
        state.history_len + 1
    ])?;
    Ok(Some(children))
}

/// Drives again the activities and timers the run was waiting for when it failed, whose work
/// the failure discarded: a failing step disarms the instance's timers, and an activity result
/// that arrives at a failed instance is consumed without being recorded. Without this the
/// rewound code would wait for them forever. Work still pending (its row is in the store, or
/// its result is a message waiting) is left alone: it reaches the rewound run by itself, and
/// driving it again would record its result twice.
fn redrive_pending(
    conn: &Connection,
    ids: &mut NextIds,
    instance_id: &str,
    run: &Arc<str>,
    events: &[&HistoryEvent],
    failures: &[usize],
    work: &mut ManagedWork,
) -> Result<(), StoreError> {
    // Results replay skips: undone by an earlier rewind, or by this one.
    let mut undone: BTreeSet<usize> = rewound_events(events);
    undone.extend(failures);
    let mut answered: HashSet<u64> = events
        .iter()
        .enumerate()
        .filter(|(index, _)| !undone.contains(index))
        .filter_map(|(_, event)| result_task(event))
        .collect();
    // Results stored as messages and not yet consumed (a timer fired through the store).
    let mut waiting = conn.prepare_cached("SELECT event FROM messages WHERE instance_id = ?1")?;
    let rows = waiting.query_map(params![instance_id], |row| row.get::<_, JsonText>(0))?;
    for row in rows {
        let JsonText(row) = row?;
        // A message that does not decode is its consumer's problem, not the rewind's.
        if let Ok(event) = serde_json::from_str::<HistoryEvent>(&row) {
            answered.extend(result_task(&event));
        }
    }
    // A failure this rewind runs again is driven by `rewind_one`.
    let rerun: HashSet<u64> = failures
        .iter()
        .filter_map(|&index| events.get(index).and_then(|event| result_task(event)))
        .collect();
    for event in events {
        match event {
            HistoryEvent::TaskScheduled {
                task_id,
                name,
                input,
            } if !answered.contains(task_id) && !rerun.contains(task_id) => {
                let queued = conn
                    .prepare_cached(
                        "SELECT 1 FROM activities
                         WHERE instance_id = ?1 AND task_id = ?2 AND execution_id = ?3",
                    )?
                    .query_row(params![instance_id, task_id, &**run], |_| Ok(()))
                    .optional()?
                    .is_some();
                if queued {
                    continue;
                }
                let row = NextIds::take(&mut ids.activities);
                conn.prepare_cached(
                    "INSERT INTO activities (id, instance_id, task_id, name, input, execution_id)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?
                .execute(params![
                    row,
                    instance_id,
                    task_id,
                    name,
                    JsonParam(input.as_str()),
                    &**run
                ])?;
                large_values::fill(conn, "activities", "input", row, input.as_str())?;
                work.activities.push(ActivityWorkItem {
                    id: row,
                    instance_id: instance_id.to_string(),
                    execution_id: run.clone(),
                    task_id: *task_id,
                    name: name.clone(),
                    input: input.clone(),
                });
            }
            HistoryEvent::TimerCreated {
                task_id,
                fire_at_ms,
            } if !answered.contains(task_id) => {
                let armed = conn
                    .prepare_cached("SELECT 1 FROM timers WHERE instance_id = ?1 AND task_id = ?2")?
                    .query_row(params![instance_id, task_id], |_| Ok(()))
                    .optional()?
                    .is_some();
                if armed {
                    continue;
                }
                // Due when it was due before: a timer that came due meanwhile fires at once.
                let row = NextIds::take(&mut ids.timers);
                conn.prepare_cached(
                    "INSERT INTO timers (id, instance_id, task_id, fire_at_ms, execution_id)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )?
                .execute(params![
                    row,
                    instance_id,
                    task_id,
                    fire_at_ms,
                    &**run
                ])?;
                work.timers.push(TimerWorkItem {
                    id: row,
                    instance_id: instance_id.to_string(),
                    execution_id: run.clone(),
                    task_id: *task_id,
                    fire_at_ms: *fire_at_ms,
                });
            }
            HistoryEvent::SubOrchestrationInstanceCreated(created)
                if !answered.contains(&created.task_id) && !rerun.contains(&created.task_id) =>
            {
                // A child still running sends its outcome when it finishes, to the run now
                // running again; one that finished while this instance was failed found it
                // finished and sent nothing.
                if let Some(outcome) = finished_child_outcome(conn, instance_id, run, created)? {
                    work.messages
                        .push(insert_message(conn, ids, instance_id, run, &outcome)?);
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// The outcome, for its parent, of the child `created` of run `run` of `parent_id`, if it
/// finished (and is still that call's child).
fn finished_child_outcome(
    conn: &Connection,
    parent_id: &str,
    run: &str,
    created: &SubOrchestrationCreatedEvent,
) -> Result<Option<HistoryEvent>, StoreError> {
    let Some(state) = instance_state(conn, &created.instance_id)? else {
        return Ok(None);
    };
    let its_call = state.parent.as_ref().is_some_and(|parent| {
        parent.instance_id == parent_id
            && parent.execution_id == run
            && parent.task_id == created.task_id
    });
    if !its_call || !state.status.is_terminal() {
        return Ok(None);
    }
    let task_id = created.task_id;
    let child = created.instance_id.as_str();
    let event = match state.status {
        RuntimeStatus::Completed => {
            let output: Option<JsonText> = conn
                .prepare_cached("SELECT output FROM instance_outputs WHERE instance_id = ?1")?
                .query_row(params![child], |row| row.get(0))
                .optional()
                .at("instance_outputs", child)?;
            let result = match output {
                Some(JsonText(output)) => {
                    Payload::from_json(output).map_err(|err| StoreError::Corrupt {
                        table: "instance_outputs",
                        key: child.to_string(),
                        reason: format!("payload is not JSON: {err}"),
                    })?
                }
                None => Payload::null(),
            };
            HistoryEvent::SubOrchestrationInstanceCompleted { task_id, result }
        }
        RuntimeStatus::Failed => {
            let failure: Option<String> = conn
                .prepare_cached("SELECT failure FROM instances WHERE instance_id = ?1")?
                .query_row(params![child], |row| row.get(0))
                .at("instances", child)?;
            let failure = match failure {
                Some(failure) => {
                    serde_json::from_str::<FailureDetails>(&failure).map_err(|err| {
                        StoreError::Corrupt {
                            table: "instances",
                            key: child.to_string(),
                            reason: format!("failure does not decode: {err}"),
                        }
                    })?
                }
                None => FailureDetails::new("the sub-orchestration failed"),
            };
            HistoryEvent::SubOrchestrationInstanceFailed { task_id, failure }
        }
        status => HistoryEvent::SubOrchestrationInstanceFailed {
            task_id,
            failure: FailureDetails::new(format!("the sub-orchestration was {status}")),
        },
    };
    Ok(Some(event))
}

/// The task an event is the result of, if it is one.
fn result_task(event: &HistoryEvent) -> Option<u64> {
    match event {
        HistoryEvent::TaskCompleted { task_id, .. }
        | HistoryEvent::TaskFailed { task_id, .. }
        | HistoryEvent::TimerFired { task_id }
        | HistoryEvent::SubOrchestrationInstanceCompleted { task_id, .. }
        | HistoryEvent::SubOrchestrationInstanceFailed { task_id, .. } => Some(*task_id),
        _ => None,
    }
}
