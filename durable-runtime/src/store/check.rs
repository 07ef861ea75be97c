//! The decisions a step's write makes before it changes anything, the same on every backend:
//! fencing by run and history length, and the status state machine. Each backend reads the
//! instance's [`State`] its own way (locking its row) and asks [`check_state`].

use crate::history::ParentInstance;
use crate::instance::RuntimeStatus;
use crate::store::{StepCommit, StoreError};

/// What a write checks about an instance before changing it.
pub(crate) struct State {
    pub(crate) status: RuntimeStatus,
    pub(crate) history_len: u64,
    /// Its current run.
    pub(crate) execution_id: String,
    /// The call that created it, if it is a sub-orchestration.
    pub(crate) parent: Option<ParentInstance>,
}

/// Checks a step's expectations against the instance's `state` (read, and locked, by the
/// backend, before the step changes anything): the instance exists (a step that only consumes
/// late messages may find it gone), the step belongs to its current run, the status lets a
/// step move it, and the history is as long as the step was computed against. Returns the
/// state for the step to go on with.
pub(crate) fn check_state(
    step: &StepCommit,
    state: Option<State>,
) -> Result<Option<State>, StoreError> {
    let id = &step.instance_id;
    let consume_only = step.status.is_none()
        && step.events.is_empty()
        && step.activities.is_empty()
        && step.timers.is_empty()
        && step.children.is_empty();
    let Some(state) = state else {
        return if consume_only {
            Ok(None)
        } else {
            Err(StoreError::InstanceNotFound(id.clone()))
        };
    };
    let (status, history_len) = (state.status, state.history_len);
    // Late work for a finished instance is consumed without a step. If a client brought the
    // instance back meanwhile (rewind, restart), that work may belong to its new life: the
    // worker must look again rather than delete it.
    if consume_only && !status.is_terminal() {
        return Err(StoreError::Fenced(format!(
            "instance '{id}' is {status}: only a finished instance's messages are consumed \
             without a step"
        )));
    }
    if !consume_only && *state.execution_id != *step.execution_id {
        return Err(StoreError::Fenced(format!(
            "instance '{id}' is on run '{}', the step belongs to run '{}'",
            state.execution_id, step.execution_id
        )));
    }
    // ContinuedAsNew: the new run's first step, which makes it Running.
    if step.status.is_some()
        && !matches!(
            status,
            RuntimeStatus::Pending | RuntimeStatus::Running | RuntimeStatus::ContinuedAsNew
        )
    {
        return Err(StoreError::Fenced(format!(
            "instance '{id}' is {status}: a step may only move a Pending, Running or \
             ContinuedAsNew instance"
        )));
    }
    if !step.events.is_empty() && history_len != step.first_seq {
        return Err(StoreError::Fenced(format!(
            "instance '{id}' has {history_len} history events, the step was computed against {}",
            step.first_seq
        )));
    }
    Ok(Some(state))
}
