//! Client operations in a write: terminate, suspend, resume, restart, and scheduled starts
//! (purges are in [`super::purge`], rewinds in [`super::rewind`]).
//! Each checks the status state machine (see [`Manage`]) before changing anything.

use super::apply::{NextIds, insert_message, insert_row};
use super::check::{State, instance_state};
use super::children::{self, Outcome};
use super::error::SqlContext;
use super::large_values::{self, JsonParam, JsonText};
use crate::history::{ExecutionStartedEvent, HistoryEvent};
use crate::instance::RuntimeStatus;
use crate::payload::Payload;
use crate::store::{
    Manage, ManagedWork, Message, NewInstance, START_TIMER_TASK, StepWork, StoreError,
    TimerWorkItem, Written,
};
use rusqlite::{Connection, OptionalExtension, params};

/// Applies a client operation (purges are in [`super::purge`]).
pub(super) fn apply(
    conn: &Connection,
    ids: &mut NextIds,
    manage: &Manage,
) -> Result<Written, StoreError> {
    match manage {
        Manage::Terminate {
            instance_id,
            reason,
            timestamp_ms,
        } => terminate(conn, ids, instance_id, reason, *timestamp_ms).map(Written::Managed),
        Manage::Suspend {
            instance_id,
            reason,
            timestamp_ms,
        } => suspend(conn, ids, instance_id, reason, *timestamp_ms).map(Written::Managed),
        Manage::Resume {
            instance_id,
            reason,
            timestamp_ms,
        } => resume(conn, ids, instance_id, reason, *timestamp_ms).map(Written::Managed),
        Manage::Restart {
            instance_id,
            execution_id,
            timestamp_ms,
        } => restart(conn, ids, instance_id, execution_id, *timestamp_ms).map(Written::Instance),
        Manage::Purge(target) => super::purge::purge(conn, target).map(Written::Purged),
        Manage::Rewind {
            instance_id,
            reason,
            timestamp_ms,
        } => super::rewind::rewind(conn, ids, instance_id, reason, *timestamp_ms)
            .map(Written::Managed),
    }
}

/// The instance's state, if its status is one of `allowed`; otherwise the typed refusal.
pub(super) fn state_for(
    conn: &Connection,
    operation: &'static str,
    instance_id: &str,
    allowed: &[RuntimeStatus],
) -> Result<State, StoreError> {
    let Some(state) = instance_state(conn, instance_id)? else {
        return Err(StoreError::InstanceNotFound(instance_id.to_string()));
    };
    if !allowed.contains(&state.status) {
        return Err(StoreError::NotApplicable {
            operation,
            instance_id: instance_id.to_string(),
            status: state.status,
        });
    }
    Ok(state)
}

const UNFINISHED: [RuntimeStatus; 4] = [
    RuntimeStatus::Pending,
    RuntimeStatus::Running,
    RuntimeStatus::ContinuedAsNew,
    RuntimeStatus::Suspended,
];

/// Terminates the instance and, recursively, its running sub-orchestrations. Parents go
/// first: a child terminated after its parent finds the parent finished, and sends it nothing.
fn terminate(
    conn: &Connection,
    ids: &mut NextIds,
    instance_id: &str,
    reason: &str,
    timestamp_ms: i64,
) -> Result<ManagedWork, StoreError> {
    let state = state_for(conn, "terminate", instance_id, &UNFINISHED)?;
    let mut work = ManagedWork::default();
    let mut queue = vec![(instance_id.to_string(), state)];
    while let Some((id, state)) = queue.pop() {
        end_terminated(conn, &id, &state, reason, timestamp_ms)?;
        work.entity_messages
            .extend(super::entity::release_locks(conn, ids, &id, timestamp_ms)?);
        if let Some(parent) = &state.parent {
            let outcome = Outcome::Ended(RuntimeStatus::Terminated);
            work.messages
                .extend(children::notify_parent(conn, ids, parent, outcome)?);
        }
        for child in running_children(conn, &id, &state.execution_id)? {
            // A child that is corrupt or gone meanwhile is left to its own fate.
            if let Some(child_state) = instance_state(conn, &child)?
                && UNFINISHED.contains(&child_state.status)
            {
                queue.push((child, child_state));
            }
        }
        work.changed.push(id);
    }
    Ok(work)
}

/// The unfinished sub-orchestrations the run `execution_id` of `instance_id` created (one
/// between two generations too: it keeps its parent link across `continue_as_new`).
fn running_children(
    conn: &Connection,
    instance_id: &str,
    execution_id: &str,
) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT instance_id FROM instances
         WHERE parent_instance_id = ?1 AND parent_execution_id = ?2
           AND status IN ('Pending', 'Running', 'ContinuedAsNew', 'Suspended')",
    )?;
    let rows = stmt.query_map(params![instance_id, execution_id], |row| row.get(0))?;
    rows.collect::<Result<Vec<String>, _>>()
        .at("instances", instance_id)
}

/// Ends one instance `Terminated`, discarding its pending work.
fn end_terminated(
    conn: &Connection,
    instance_id: &str,
    state: &State,
    reason: &str,
    timestamp_ms: i64,
) -> Result<(), StoreError> {
    let event = HistoryEvent::ExecutionTerminated {
        reason: reason.to_string(),
    };
    super::history_rows::append(
        conn,
        instance_id,
        state.history_len,
        timestamp_ms,
        std::slice::from_ref(&event),
    )?;
    conn.prepare_cached(
        "UPDATE instances SET status = ?2, updated_ms = ?3, history_len = ?4
         WHERE instance_id = ?1",
    )?
    .execute(params![
        instance_id,
        RuntimeStatus::Terminated.as_str(),
        timestamp_ms,
        state.history_len + 1
    ])?;
    // As in Durable Functions, a terminated instance's output is the reason.
    let output = Payload::encode(reason)
        .map_err(|err| StoreError::Refused(format!("the reason does not serialize: {err}")))?;
    conn.prepare_cached(
        "INSERT OR REPLACE INTO instance_outputs (instance_id, output) VALUES (?1, ?2)",
    )?
    .execute(params![instance_id, JsonParam(output.as_str())])?;
    large_values::fill_last_insert(conn, "instance_outputs", "output", output.as_str())?;
    delete_work(conn, instance_id)
}

/// Deletes every timer, activity and message row of the instance. The messages and
/// activities tables have no index by instance (it would slow every insert on the hot path):
/// these deletes scan them, which only client operations pay.
pub(super) fn delete_work(conn: &Connection, instance_id: &str) -> Result<(), StoreError> {
    for sql in [
        "DELETE FROM timers WHERE instance_id = ?1",
        "DELETE FROM activities WHERE instance_id = ?1",
        "DELETE FROM messages WHERE instance_id = ?1",
    ] {
        conn.prepare_cached(sql)?.execute(params![instance_id])?;
    }
    Ok(())
}

fn set_status(
    conn: &Connection,
    instance_id: &str,
    status: RuntimeStatus,
    timestamp_ms: i64,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE instances SET status = ?2, updated_ms = ?3 WHERE instance_id = ?1",
    )?
    .execute(params![instance_id, status.as_str(), timestamp_ms])?;
    Ok(())
}

fn suspend(
    conn: &Connection,
    ids: &mut NextIds,
    instance_id: &str,
    reason: &str,
    timestamp_ms: i64,
) -> Result<ManagedWork, StoreError> {
    state_for(
        conn,
        "suspend",
        instance_id,
        &[
            RuntimeStatus::Pending,
            RuntimeStatus::Running,
            // Between two runs of an eternal orchestration: the next run waits for the resume.
            RuntimeStatus::ContinuedAsNew,
        ],
    )?;
    set_status(conn, instance_id, RuntimeStatus::Suspended, timestamp_ms)?;
    let event = HistoryEvent::ExecutionSuspended {
        reason: reason.to_string(),
    };
    // To whatever run is current; recorded by the first step after the resume.
    let message = insert_message(conn, ids, instance_id, "", &event)?;
    Ok(ManagedWork {
        changed: vec![instance_id.to_string()],
        messages: vec![message],
        ..ManagedWork::default()
    })
}

fn resume(
    conn: &Connection,
    ids: &mut NextIds,
    instance_id: &str,
    reason: &str,
    timestamp_ms: i64,
) -> Result<ManagedWork, StoreError> {
    let state = state_for(conn, "resume", instance_id, &[RuntimeStatus::Suspended])?;
    // Back to where it was: an instance that never ran a step has no history.
    let status = if state.history_len == 0 {
        RuntimeStatus::Pending
    } else {
        RuntimeStatus::Running
    };
    set_status(conn, instance_id, status, timestamp_ms)?;
    let event = HistoryEvent::ExecutionResumed {
        reason: reason.to_string(),
    };
    let message = insert_message(conn, ids, instance_id, "", &event)?;
    Ok(ManagedWork {
        changed: vec![instance_id.to_string()],
        messages: vec![message],
        ..ManagedWork::default()
    })
}

fn restart(
    conn: &Connection,
    ids: &mut NextIds,
    instance_id: &str,
    execution_id: &str,
    timestamp_ms: i64,
) -> Result<Message, StoreError> {
    state_for(
        conn,
        "restart",
        instance_id,
        &[
            RuntimeStatus::Completed,
            RuntimeStatus::Failed,
            RuntimeStatus::Terminated,
        ],
    )?;
    for sql in [
        "DELETE FROM history WHERE instance_id = ?1",
        "DELETE FROM instance_outputs WHERE instance_id = ?1",
        "DELETE FROM event_keys WHERE instance_id = ?1",
    ] {
        conn.prepare_cached(sql)?.execute(params![instance_id])?;
    }
    delete_work(conn, instance_id)?;
    conn.prepare_cached(
        "UPDATE instances SET status = ?2, failure = NULL, custom_status = NULL,
             created_ms = ?3, updated_ms = ?3,
             history_len = 0, execution_id = ?4, parent_instance_id = NULL,
             parent_execution_id = NULL, parent_task_id = NULL, recovery_attempts = 0
         WHERE instance_id = ?1",
    )?
    .execute(params![
        instance_id,
        RuntimeStatus::Pending.as_str(),
        timestamp_ms,
        execution_id
    ])?;
    let started =
        started_event(conn, instance_id, execution_id)?.ok_or_else(|| StoreError::Corrupt {
            table: "instance_inputs",
            key: instance_id.to_string(),
            reason: "the instance has no input row".into(),
        })?;
    insert_message(conn, ids, instance_id, execution_id, &started)
}

/// The `ExecutionStarted` of the instance's run `execution_id`, built from its row and
/// input; `None` if the instance is gone.
fn started_event(
    conn: &Connection,
    instance_id: &str,
    execution_id: &str,
) -> Result<Option<HistoryEvent>, StoreError> {
    let row: Option<(String, Option<String>, JsonText)> = conn
        .prepare_cached(
            "SELECT i.name, i.version, inp.input FROM instances i
             JOIN instance_inputs inp ON inp.instance_id = i.instance_id
             WHERE i.instance_id = ?1",
        )?
        .query_row(params![instance_id], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })
        .optional()
        .at("instances", instance_id)?;
    let Some((name, version, JsonText(input))) = row else {
        return Ok(None);
    };
    let input = Payload::from_json(input).map_err(|err| StoreError::Corrupt {
        table: "instance_inputs",
        key: instance_id.to_string(),
        reason: format!("payload is not JSON: {err}"),
    })?;
    Ok(Some(HistoryEvent::ExecutionStarted(Box::new(
        ExecutionStartedEvent {
            name,
            version,
            input,
            execution_id: Some(execution_id.to_string()),
            parent: None,
            carried_events: Vec::new(),
        },
    ))))
}

/// Creates an instance whose start waits for a timer.
pub(super) fn schedule(
    conn: &Connection,
    ids: &mut NextIds,
    new: &NewInstance,
    start_at_ms: i64,
) -> Result<Written, StoreError> {
    insert_row(conn, new, None)?;
    let id = NextIds::take(&mut ids.timers);
    conn.prepare_cached(
        "INSERT INTO timers (id, instance_id, task_id, fire_at_ms, execution_id)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        id,
        new.instance_id,
        START_TIMER_TASK,
        start_at_ms,
        new.execution_id
    ])?;
    Ok(Written::Step(StepWork {
        timers: vec![TimerWorkItem {
            id,
            instance_id: new.instance_id.clone(),
            execution_id: new.execution_id.clone(),
            task_id: START_TIMER_TASK,
            fire_at_ms: start_at_ms,
        }],
        ..StepWork::default()
    }))
}

/// Fires a scheduled start whose timer row (of run `run`) was just deleted: sends the
/// instance's `ExecutionStarted`, unless the instance is gone.
pub(super) fn fire_start(
    conn: &Connection,
    ids: &mut NextIds,
    instance_id: &str,
    run: &str,
) -> Result<Option<Message>, StoreError> {
    match started_event(conn, instance_id, run)? {
        Some(started) => insert_message(conn, ids, instance_id, run, &started).map(Some),
        None => Ok(None),
    }
}
