//! Sub-orchestrations in a write: the children a step creates, and the outcome a finished child
//! sends back to its parent, each in the same transaction as the step.

use super::apply::{NextIds, create_instance, insert_message};
use super::check::instance_state;
use crate::failure::FailureDetails;
use crate::history::{HistoryEvent, ParentInstance};
use crate::instance::RuntimeStatus;
use crate::payload::Payload;
use crate::store::{Message, StepCommit, StoreError};
use rusqlite::Connection;

/// Creates the children of `step`, linked to its instance, run and call. A child whose id is
/// taken is not created: its call fails with a `SubOrchestrationInstanceFailed` sent to the
/// step's instance (unless the step finishes it). Returns the messages sent.
pub(super) fn create(
    conn: &Connection,
    ids: &mut NextIds,
    step: &StepCommit,
) -> Result<Vec<Message>, StoreError> {
    let id = &step.instance_id;
    let mut messages = Vec::with_capacity(step.children.len());
    for child in &step.children {
        let parent = ParentInstance {
            instance_id: id.clone(),
            execution_id: step.execution_id.to_string(),
            task_id: child.task_id,
        };
        match create_instance(conn, ids, &child.instance, Some(&parent)) {
            Ok(started) => messages.push(started),
            Err(StoreError::InstanceExists(child_id)) => {
                // The call fails, not the step: its failure reaches the code like a child's.
                if step.status.is_some_and(|status| !status.is_terminal()) {
                    let failed = HistoryEvent::SubOrchestrationInstanceFailed {
                        task_id: child.task_id,
                        failure: FailureDetails::new(format!(
                            "cannot create sub-orchestration '{}': an instance with id \
                             '{child_id}' already exists",
                            child.instance.name
                        )),
                    };
                    messages.push(insert_message(conn, ids, id, &step.execution_id, &failed)?);
                }
            }
            Err(err) => return Err(err),
        }
    }
    Ok(messages)
}

/// How a sub-orchestration ended, for its parent.
pub(super) enum Outcome<'a> {
    Completed(Option<&'a Payload>),
    Failed(&'a FailureDetails),
    /// Ended without an output or a failure of its own (a status a client set).
    Ended(RuntimeStatus),
}

/// Sends a finished sub-orchestration's outcome to the run of its parent that created it, if
/// the parent is still there and running (a finished parent would only consume it).
pub(super) fn notify_parent(
    conn: &Connection,
    ids: &mut NextIds,
    parent: &ParentInstance,
    outcome: Outcome<'_>,
) -> Result<Option<Message>, StoreError> {
    match instance_state(conn, &parent.instance_id) {
        Ok(Some(state)) if !state.status.is_terminal() => {}
        // Gone, finished, or its row is corrupt: the child's own commit must not fail for it.
        Ok(_) | Err(StoreError::Corrupt { .. }) => return Ok(None),
        Err(err) => return Err(err),
    }
    let task_id = parent.task_id;
    let event = match outcome {
        Outcome::Completed(output) => HistoryEvent::SubOrchestrationInstanceCompleted {
            task_id,
            result: output.cloned().unwrap_or_else(Payload::null),
        },
        Outcome::Failed(failure) => HistoryEvent::SubOrchestrationInstanceFailed {
            task_id,
            failure: failure.clone(),
        },
        Outcome::Ended(status) => HistoryEvent::SubOrchestrationInstanceFailed {
            task_id,
            failure: FailureDetails::new(format!("the sub-orchestration was {status}")),
        },
    };
    insert_message(conn, ids, &parent.instance_id, &parent.execution_id, &event).map(Some)
}
