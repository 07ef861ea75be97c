//! Where an instance stands ([`State`], read with its row locked `FOR UPDATE`), for the checks
//! a step must pass before it changes anything ([`check_state`], shared with the embedded
//! store).

use super::db::{Db, col, unsigned};
use super::statements::INSTANCE_STATE;
use crate::history::ParentInstance;
pub(super) use crate::store::check::{State, check_state};
use crate::store::{StepCommit, StoreError};

/// The instance's status, history length, current run and parent, if it exists; its row is
/// locked until the transaction ends.
pub(super) async fn instance_state(
    db: &Db<'_>,
    instance_id: &str,
) -> Result<Option<State>, StoreError> {
    let Some(row) = db.query_opt(INSTANCE_STATE, &[&instance_id]).await? else {
        return Ok(None);
    };
    state_from_row(&row, instance_id).map(Some)
}

/// The [`State`] in a row of [`INSTANCE_STATE`].
pub(super) fn state_from_row(row: &tokio_postgres::Row, key: &str) -> Result<State, StoreError> {
    let status: String = col(row, 0, "instances", key)?;
    let history_len: i64 = col(row, 1, "instances", key)?;
    let execution_id: String = col(row, 2, "instances", key)?;
    let parent_id: Option<String> = col(row, 3, "instances", key)?;
    let parent_run: Option<String> = col(row, 4, "instances", key)?;
    let parent_task: Option<i64> = col(row, 5, "instances", key)?;
    let parent = match (parent_id, parent_run, parent_task) {
        (None, _, _) => None,
        (Some(parent_id), Some(parent_run), Some(task_id)) => Some(ParentInstance {
            instance_id: parent_id,
            execution_id: parent_run,
            task_id: unsigned(task_id, "instances", key, "parent task id")?,
        }),
        (Some(parent_id), _, _) => {
            return Err(StoreError::Corrupt {
                table: "instances",
                key: key.to_string(),
                reason: format!("parent '{parent_id}' without its run or task id"),
            });
        }
    };
    let status = status.parse().map_err(|err| StoreError::Corrupt {
        table: "instances",
        key: key.to_string(),
        reason: format!("{err}"),
    })?;
    Ok(State {
        status,
        history_len: unsigned(history_len, "instances", key, "history length")?,
        execution_id,
        parent,
    })
}

/// Checks the step's expectations (instance, status, history length) before changing anything;
/// the instance's state, if it exists.
pub(super) async fn check_step(
    db: &Db<'_>,
    step: &StepCommit,
) -> Result<Option<State>, StoreError> {
    let state = instance_state(db, &step.instance_id).await?;
    check_state(step, state)
}
