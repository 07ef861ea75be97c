//! `continue_as_new` in a write: the step that ends a run replaces the instance's history,
//! input and current run with a new run's start, in the step's own transaction.

use super::apply::insert_message;
use super::db::{Db, col};
use crate::history::{ExecutionStartedEvent, HistoryEvent, ParentInstance};
use crate::instance::RuntimeStatus;
use crate::store::{ContinueAsNew, Message, StepCommit, StoreError};

/// Applies the `continue_as_new` part of `step` (already checked and fenced, its messages and
/// activity results already consumed): see [`ContinueAsNew`]. Returns the new run's start.
pub(super) async fn apply(
    db: &Db<'_>,
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
    let row = db
        .query_opt(
            "SELECT name, version FROM instances WHERE instance_id = $1",
            &[id],
        )
        .await?
        .ok_or_else(|| StoreError::InstanceNotFound(id.clone()))?;
    let name: String = col(&row, 0, "instances", id)?;
    let version: Option<String> = col(&row, 1, "instances", id)?;
    // The old history is not kept under the instance's id: the point is a bounded history.
    db.execute("DELETE FROM history WHERE instance_id = $1", &[id])
        .await?;
    // The ending run's timers and queued activities would only deliver results it cannot take.
    db.execute("DELETE FROM timers WHERE instance_id = $1", &[id])
        .await?;
    db.execute(
        "DELETE FROM activities WHERE instance_id = $1 AND execution_id = $2",
        &[id, &&*step.execution_id],
    )
    .await?;
    db.execute(
        "UPDATE instances SET status = $2, failure = NULL, updated_ms = $3, history_len = 0,
                              execution_id = $4
         WHERE instance_id = $1",
        &[
            id,
            &RuntimeStatus::ContinuedAsNew.as_str(),
            &step.timestamp_ms,
            &&*next.execution_id,
        ],
    )
    .await?;
    db.execute(
        "INSERT INTO instance_inputs (instance_id, input) VALUES ($1, $2)
         ON CONFLICT (instance_id) DO UPDATE SET input = EXCLUDED.input",
        &[id, &next.input.as_str()],
    )
    .await?;
    let started = HistoryEvent::ExecutionStarted(Box::new(ExecutionStartedEvent {
        name,
        version,
        input: next.input.clone(),
        execution_id: Some(next.execution_id.to_string()),
        parent: parent.cloned(),
        carried_events: next.carried_events.clone(),
    }));
    insert_message(db, id, &next.execution_id, &started).await
}
