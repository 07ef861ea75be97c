//! Where an instance stands ([`State`]), for the checks a step must pass before it changes
//! anything ([`check_state`], shared with the PostgreSQL store).

use super::error::SqlContext;
use crate::history::ParentInstance;
pub(super) use crate::store::check::{State, check_state};
use crate::store::{StepCommit, StoreError};
use rusqlite::{Connection, OptionalExtension, params};

/// The columns of an instance's row that [`State`] is read from.
type StateRow = (
    String,
    i64,
    String,
    Option<String>,
    Option<String>,
    Option<i64>,
);

/// The instance's status, history length, current run and parent, if it exists.
pub(super) fn instance_state(
    conn: &Connection,
    instance_id: &str,
) -> Result<Option<State>, StoreError> {
    let row: Option<StateRow> = conn
        .prepare_cached(
            "SELECT status, history_len, execution_id, parent_instance_id, parent_execution_id,
                    parent_task_id
             FROM instances WHERE instance_id = ?1",
        )?
        .query_row(params![instance_id], |row| {
            Ok((
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get(3)?,
                row.get(4)?,
                row.get(5)?,
            ))
        })
        .optional()
        .at("instances", instance_id)?;
    let Some((status, history_len, execution_id, parent_id, parent_run, parent_task)) = row else {
        return Ok(None);
    };
    let parent = match (parent_id, parent_run, parent_task) {
        (None, _, _) => None,
        (Some(parent_id), Some(parent_run), Some(task_id)) => Some(ParentInstance {
            instance_id: parent_id,
            execution_id: parent_run,
            task_id: u64::try_from(task_id).map_err(|_| StoreError::Corrupt {
                table: "instances",
                key: instance_id.to_string(),
                reason: format!("negative parent task id {task_id}"),
            })?,
        }),
        (Some(parent_id), _, _) => {
            return Err(StoreError::Corrupt {
                table: "instances",
                key: instance_id.to_string(),
                reason: format!("parent '{parent_id}' without its run or task id"),
            });
        }
    };
    let status = status.parse().map_err(|err| StoreError::Corrupt {
        table: "instances",
        key: instance_id.to_string(),
        reason: format!("{err}"),
    })?;
    let history_len = u64::try_from(history_len).map_err(|_| StoreError::Corrupt {
        table: "instances",
        key: instance_id.to_string(),
        reason: format!("negative history length {history_len}"),
    })?;
    Ok(Some(State {
        status,
        history_len,
        execution_id,
        parent,
    }))
}

/// Checks the step's expectations (see [`check_state`]) before changing anything; the
/// instance's state, if it exists.
pub(super) fn check_step(
    conn: &Connection,
    step: &StepCommit,
) -> Result<Option<State>, StoreError> {
    check_state(step, instance_state(conn, &step.instance_id)?)
}
