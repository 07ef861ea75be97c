//! Client operations in a write: terminate, suspend, resume, restart, and scheduled starts
//! (purges are in [`super::purge`], rewinds in [`super::rewind`]).
//! Each checks the status state machine (see [`Manage`]) before changing anything.

use super::apply::{insert_message, insert_row, insert_timer, to_json};
use super::check::{State, instance_state};
use super::children::{self, Outcome};
use super::db::{Db, col, int};
use crate::history::{ExecutionStartedEvent, HistoryEvent};
use crate::instance::RuntimeStatus;
use crate::payload::Payload;
use crate::store::{
    Manage, ManagedWork, Message, NewInstance, START_TIMER_TASK, StepWork, StoreError, Written,
};

/// Applies a client operation.
pub(super) async fn apply(db: &Db<'_>, manage: &Manage) -> Result<Written, StoreError> {
    match manage {
        Manage::Terminate {
            instance_id,
            reason,
            timestamp_ms,
        } => terminate(db, instance_id, reason, *timestamp_ms)
            .await
            .map(Written::Managed),
        Manage::Suspend {
            instance_id,
            reason,
            timestamp_ms,
        } => suspend(db, instance_id, reason, *timestamp_ms)
            .await
            .map(Written::Managed),
        Manage::Resume {
            instance_id,
            reason,
            timestamp_ms,
        } => resume(db, instance_id, reason, *timestamp_ms)
            .await
            .map(Written::Managed),
        Manage::Restart {
            instance_id,
            execution_id,
            timestamp_ms,
        } => restart(db, instance_id, execution_id, *timestamp_ms)
            .await
            .map(Written::Instance),
        Manage::Purge(target) => super::purge::purge(db, target).await.map(Written::Purged),
        Manage::Rewind {
            instance_id,
            reason,
            timestamp_ms,
        } => super::rewind::rewind(db, instance_id, reason, *timestamp_ms)
            .await
            .map(Written::Managed),
    }
}

/// The instance's state, if its status is one of `allowed`; otherwise the typed refusal.
pub(super) async fn state_for(
    db: &Db<'_>,
    operation: &'static str,
    instance_id: &str,
    allowed: &[RuntimeStatus],
) -> Result<State, StoreError> {
    let Some(state) = instance_state(db, instance_id).await? else {
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
async fn terminate(
    db: &Db<'_>,
    instance_id: &str,
    reason: &str,
    timestamp_ms: i64,
) -> Result<ManagedWork, StoreError> {
    let state = state_for(db, "terminate", instance_id, &UNFINISHED).await?;
    let mut work = ManagedWork::default();
    let mut queue = vec![(instance_id.to_string(), state)];
    while let Some((id, state)) = queue.pop() {
        end_terminated(db, &id, &state, reason, timestamp_ms).await?;
        work.entity_messages
            .extend(super::entity::release_locks(db, &id, timestamp_ms).await?);
        if let Some(parent) = &state.parent {
            let outcome = Outcome::Ended(RuntimeStatus::Terminated);
            work.messages
                .extend(children::notify_parent(db, parent, outcome).await?);
        }
        for child in running_children(db, &id, &state.execution_id).await? {
            // A child that is corrupt or gone meanwhile is left to its own fate.
            if let Some(child_state) = instance_state(db, &child).await?
                && UNFINISHED.contains(&child_state.status)
            {
                queue.push((child, child_state));
            }
        }
        work.changed.push(id);
    }
    Ok(work)
}

/// The unfinished sub-orchestrations the run `execution_id` of `instance_id` created.
async fn running_children(
    db: &Db<'_>,
    instance_id: &str,
    execution_id: &str,
) -> Result<Vec<String>, StoreError> {
    db.query(
        "SELECT instance_id FROM instances
         WHERE parent_instance_id = $1 AND parent_execution_id = $2
           AND status IN ('Pending', 'Running', 'ContinuedAsNew', 'Suspended')",
        &[&instance_id, &execution_id],
    )
    .await?
    .iter()
    .map(|row| col(row, 0, "instances", instance_id))
    .collect()
}

/// Ends one instance `Terminated`, discarding its pending work.
async fn end_terminated(
    db: &Db<'_>,
    instance_id: &str,
    state: &State,
    reason: &str,
    timestamp_ms: i64,
) -> Result<(), StoreError> {
    let event = HistoryEvent::ExecutionTerminated {
        reason: reason.to_string(),
    };
    let seq = int(state.history_len, "history position")?;
    db.execute(
        "INSERT INTO history (instance_id, seq, timestamp_ms, event) VALUES ($1, $2, $3, $4)",
        &[&instance_id, &seq, &timestamp_ms, &to_json(&event)?],
    )
    .await?;
    db.execute(
        "UPDATE instances SET status = $2, updated_ms = $3, history_len = $4
         WHERE instance_id = $1",
        &[
            &instance_id,
            &RuntimeStatus::Terminated.as_str(),
            &timestamp_ms,
            &(seq + 1),
        ],
    )
    .await?;
    // As in Durable Functions, a terminated instance's output is the reason.
    let output = Payload::encode(reason)
        .map_err(|err| StoreError::Refused(format!("the reason does not serialize: {err}")))?;
    db.execute(
        "INSERT INTO instance_outputs (instance_id, output) VALUES ($1, $2)
         ON CONFLICT (instance_id) DO UPDATE SET output = EXCLUDED.output",
        &[&instance_id, &output.as_str()],
    )
    .await?;
    delete_work(db, instance_id).await
}

/// Deletes every timer, activity and message row of the instance.
pub(super) async fn delete_work(db: &Db<'_>, instance_id: &str) -> Result<(), StoreError> {
    for sql in [
        "DELETE FROM timers WHERE instance_id = $1",
        "DELETE FROM activities WHERE instance_id = $1",
        "DELETE FROM messages WHERE instance_id = $1",
    ] {
        db.execute(sql, &[&instance_id]).await?;
    }
    Ok(())
}

async fn set_status(
    db: &Db<'_>,
    instance_id: &str,
    status: RuntimeStatus,
    timestamp_ms: i64,
) -> Result<(), StoreError> {
    db.execute(
        "UPDATE instances SET status = $2, updated_ms = $3 WHERE instance_id = $1",
        &[&instance_id, &status.as_str(), &timestamp_ms],
    )
    .await?;
    Ok(())
}

async fn suspend(
    db: &Db<'_>,
    instance_id: &str,
    reason: &str,
    timestamp_ms: i64,
) -> Result<ManagedWork, StoreError> {
    state_for(
        db,
        "suspend",
        instance_id,
        &[
            RuntimeStatus::Pending,
            RuntimeStatus::Running,
            // Between two runs of an eternal orchestration: the next run waits for the resume.
            RuntimeStatus::ContinuedAsNew,
        ],
    )
    .await?;
    set_status(db, instance_id, RuntimeStatus::Suspended, timestamp_ms).await?;
    let event = HistoryEvent::ExecutionSuspended {
        reason: reason.to_string(),
    };
    // To whatever run is current; recorded by the first step after the resume.
    let message = insert_message(db, instance_id, "", &event).await?;
    Ok(ManagedWork {
        changed: vec![instance_id.to_string()],
        messages: vec![message],
        ..ManagedWork::default()
    })
}

async fn resume(
    db: &Db<'_>,
    instance_id: &str,
    reason: &str,
    timestamp_ms: i64,
) -> Result<ManagedWork, StoreError> {
    let state = state_for(db, "resume", instance_id, &[RuntimeStatus::Suspended]).await?;
    // Back to where it was: an instance that never ran a step has no history.
    let status = if state.history_len == 0 {
        RuntimeStatus::Pending
    } else {
        RuntimeStatus::Running
    };
    set_status(db, instance_id, status, timestamp_ms).await?;
    let event = HistoryEvent::ExecutionResumed {
        reason: reason.to_string(),
    };
    let message = insert_message(db, instance_id, "", &event).await?;
    Ok(ManagedWork {
        changed: vec![instance_id.to_string()],
        messages: vec![message],
        ..ManagedWork::default()
    })
}

async fn restart(
    db: &Db<'_>,
    instance_id: &str,
    execution_id: &str,
    timestamp_ms: i64,
) -> Result<Message, StoreError> {
    state_for(
        db,
        "restart",
        instance_id,
        &[
            RuntimeStatus::Completed,
            RuntimeStatus::Failed,
            RuntimeStatus::Terminated,
        ],
    )
    .await?;
    for sql in [
        "DELETE FROM history WHERE instance_id = $1",
        "DELETE FROM instance_outputs WHERE instance_id = $1",
        "DELETE FROM event_keys WHERE instance_id = $1",
    ] {
        db.execute(sql, &[&instance_id]).await?;
    }
    delete_work(db, instance_id).await?;
    db.execute(
        "UPDATE instances SET status = $2, failure = NULL, custom_status = NULL,
             created_ms = $3, updated_ms = $3,
             history_len = 0, execution_id = $4, parent_instance_id = NULL,
             parent_execution_id = NULL, parent_task_id = NULL
         WHERE instance_id = $1",
        &[
            &instance_id,
            &RuntimeStatus::Pending.as_str(),
            &timestamp_ms,
            &execution_id,
        ],
    )
    .await?;
    let started = started_event(db, instance_id, execution_id)
        .await?
        .ok_or_else(|| StoreError::Corrupt {
            table: "instance_inputs",
            key: instance_id.to_string(),
            reason: "the instance has no input row".into(),
        })?;
    insert_message(db, instance_id, execution_id, &started).await
}

/// The `ExecutionStarted` of the instance's run `execution_id`, built from its row and
/// input; `None` if the instance is gone.
async fn started_event(
    db: &Db<'_>,
    instance_id: &str,
    execution_id: &str,
) -> Result<Option<HistoryEvent>, StoreError> {
    let Some(row) = db
        .query_opt(
            "SELECT i.name, i.version, inp.input FROM instances i
             JOIN instance_inputs inp ON inp.instance_id = i.instance_id
             WHERE i.instance_id = $1",
            &[&instance_id],
        )
        .await?
    else {
        return Ok(None);
    };
    let input: String = col(&row, 2, "instance_inputs", instance_id)?;
    let input = Payload::from_json(input).map_err(|err| StoreError::Corrupt {
        table: "instance_inputs",
        key: instance_id.to_string(),
        reason: format!("payload is not JSON: {err}"),
    })?;
    Ok(Some(HistoryEvent::ExecutionStarted(Box::new(
        ExecutionStartedEvent {
            name: col(&row, 0, "instances", instance_id)?,
            version: col(&row, 1, "instances", instance_id)?,
            input,
            execution_id: Some(execution_id.to_string()),
            parent: None,
            carried_events: Vec::new(),
        },
    ))))
}

/// Creates an instance whose start waits for a timer.
pub(super) async fn schedule(
    db: &Db<'_>,
    new: &NewInstance,
    start_at_ms: i64,
) -> Result<Written, StoreError> {
    insert_row(db, new, None).await?;
    let timer = insert_timer(
        db,
        &new.instance_id,
        &new.execution_id,
        START_TIMER_TASK,
        start_at_ms,
    )
    .await?;
    Ok(Written::Step(StepWork {
        timers: vec![timer],
        ..StepWork::default()
    }))
}

/// Fires a scheduled start whose timer row (of run `run`) was just deleted: sends the
/// instance's `ExecutionStarted`, unless the instance is gone.
pub(super) async fn fire_start(
    db: &Db<'_>,
    instance_id: &str,
    run: &str,
) -> Result<Option<Message>, StoreError> {
    match started_event(db, instance_id, run).await? {
        Some(started) => insert_message(db, instance_id, run, &started)
            .await
            .map(Some),
        None => Ok(None),
    }
}
