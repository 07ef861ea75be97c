//! `continue_as_new` in a write: the step that ends a run replaces the instance's history,
//! input and current run with a new run's start, in the step's own transaction.

use super::apply::{NextIds, insert_message};
use super::error::SqlContext;
use super::large_values::{self, JsonParam};
use crate::history::{ExecutionStartedEvent, HistoryEvent, ParentInstance};
use crate::instance::RuntimeStatus;
use crate::store::{ContinueAsNew, Message, StepCommit, StoreError};
use rusqlite::{Connection, params};

/// Applies the `continue_as_new` part of `step` (already checked and fenced, its messages and
/// activity results already consumed): see [`ContinueAsNew`]. Returns the new run's start.
pub(super) fn apply(
    conn: &Connection,
    ids: &mut NextIds,
    step: &StepCommit,
    next: &ContinueAsNew,
    parent: Option<&ParentInstance>,
) -> Result<Message, StoreError> {
    let id = &step.instance_id;
    if step.status != Some(RuntimeStatus::ContinuedAsNew) {
        return Err(StoreError::Refused(format!(
            "a step that continues instance '{id}' as new must set status ContinuedAsNew, not \
             {:?}",
            step.status
        )));
    }
    if !step.activities.is_empty() || !step.timers.is_empty() || !step.children.is_empty() {
        // Work of the ending run would only be discarded: creating it is a bug.
        return Err(StoreError::Refused(format!(
            "a step that continues instance '{id}' as new cannot create activities, timers or \
             sub-orchestrations"
        )));
    }
    if next.execution_id.is_empty() || *next.execution_id == *step.execution_id {
        return Err(StoreError::Refused(format!(
            "the new run of instance '{id}' needs a run id of its own"
        )));
    }
    let (name, version): (String, Option<String>) = conn
        .prepare_cached("SELECT name, version FROM instances WHERE instance_id = ?1")?
        .query_row(params![id], |row| Ok((row.get(0)?, row.get(1)?)))
        .at("instances", id)?;
    // The old history is not kept under the instance's id: the point is a bounded history.
    conn.prepare_cached("DELETE FROM history WHERE instance_id = ?1")?
        .execute(params![id])?;
    // The ending run's timers and queued activities would only deliver results it cannot take.
    conn.prepare_cached("DELETE FROM timers WHERE instance_id = ?1")?
        .execute(params![id])?;
    conn.prepare_cached("DELETE FROM activities WHERE instance_id = ?1 AND execution_id = ?2")?
        .execute(params![id, step.execution_id])?;
    conn.prepare_cached(
        "UPDATE instances SET status = ?2, failure = NULL, updated_ms = ?3, history_len = 0,
                              execution_id = ?4, recovery_attempts = 0
         WHERE instance_id = ?1",
    )?
    .execute(params![
        id,
        RuntimeStatus::ContinuedAsNew.as_str(),
        step.timestamp_ms,
        next.execution_id
    ])?;
    conn.prepare_cached(
        "INSERT OR REPLACE INTO instance_inputs (instance_id, input) VALUES (?1, ?2)",
    )?
    .execute(params![id, JsonParam(next.input.as_str())])?;
    large_values::fill_last_insert(conn, "instance_inputs", "input", next.input.as_str())?;
    let started = HistoryEvent::ExecutionStarted(Box::new(ExecutionStartedEvent {
        name,
        version,
        input: next.input.clone(),
        execution_id: Some(next.execution_id.to_string()),
        parent: parent.cloned(),
        carried_events: next.carried_events.clone(),
    }));
    insert_message(conn, ids, id, &next.execution_id, &started)
}
