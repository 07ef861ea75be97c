//! Applying one [`Write`] inside the writer's open transaction (and savepoint): the same checks
//! as the embedded store (fencing, the status state machine, row counts), in SQL that holds
//! when several processes write at once. The instance row a write checks is read
//! `FOR UPDATE`: two writes to one instance serialize, and the second sees what the first
//! committed (PostgreSQL re-reads a locked row at `READ COMMITTED`).

use super::check::{State, check_step, instance_state};
use super::children::{self, Outcome};
use super::continue_as_new;
use super::db::{Db, col, int};
use super::entity;
use super::lease::Fence;
use super::manage;
use super::statements::*;
use crate::history::{ExecutionStartedEvent, HistoryEvent, ParentInstance};
use crate::instance::RuntimeStatus;
use crate::store::{
    ActivityWorkItem, Message, NewInstance, START_TIMER_TASK, StepCommit, StepWork, StoreError,
    TimerWorkItem, Write, Written,
};

/// Applies `write`; the caller owns the transaction and the savepoint around it. With a
/// `fence` (a store shared by many runtimes), a step or an entity batch of a partition the
/// transaction does not hold is refused with [`StoreError::LeaseLost`].
pub(crate) async fn apply_write(
    db: &Db<'_>,
    write: &Write,
    fence: Option<Fence>,
) -> Result<Written, StoreError> {
    if let Some(fence) = fence {
        match write {
            Write::Step(step) => fence.check(&step.instance_id)?,
            Write::Entity(commit) => fence.check(&commit.entity_id)?,
            _ => {}
        }
    }
    match write {
        Write::CreateInstance(new) => Ok(Written::Instance(create_instance(db, new, None).await?)),
        Write::ScheduleInstance {
            instance,
            start_at_ms,
        } => manage::schedule(db, instance, *start_at_ms).await,
        Write::Manage(operation) => manage::apply(db, operation).await,
        Write::Step(step) => apply_step(db, step).await,
        Write::SignalEntity(message) => Ok(Written::Entity(crate::store::EntityWork {
            signals: vec![entity::queue(db, message).await?],
            messages: Vec::new(),
        })),
        Write::SignalEntityOnce {
            message,
            idempotency_key,
        } => {
            let fresh = db
                .execute(
                    "INSERT INTO event_keys (instance_id, key) VALUES ($1, $2)
                     ON CONFLICT DO NOTHING",
                    &[
                        &crate::store::entity_key_scope(&message.entity_id),
                        idempotency_key,
                    ],
                )
                .await?;
            let signals = match fresh {
                // Sent before with this key: nothing more to queue.
                0 => Vec::new(),
                _ => vec![entity::queue(db, message).await?],
            };
            Ok(Written::Entity(crate::store::EntityWork {
                signals,
                messages: Vec::new(),
            }))
        }
        Write::Entity(commit) => entity::commit(db, commit).await.map(Written::Entity),
        Write::PurgeEntities { entity_ids } => {
            entity::purge(db, entity_ids).await.map(Written::Purged)
        }
        // Not kept here yet: the runtime then counts nothing (see `Write::MarkRunning`).
        Write::MarkRunning(_) | Write::CountAttempt { .. } | Write::ClearAttempts(_) => Err(
            StoreError::Refused("poison work is not counted on PostgreSQL yet".into()),
        ),
        Write::FailInstance {
            instance_id,
            failure,
            timestamp_ms,
        } => {
            let Some(State { status, parent, .. }) = instance_state(db, instance_id).await? else {
                return Err(StoreError::InstanceNotFound(instance_id.clone()));
            };
            if status.is_terminal() {
                return Err(StoreError::Fenced(format!(
                    "instance '{instance_id}' is already {status}"
                )));
            }
            db.execute(
                "UPDATE instances SET status = $2, failure = $3, updated_ms = $4
                 WHERE instance_id = $1",
                &[
                    instance_id,
                    &RuntimeStatus::Failed.as_str(),
                    &to_json(failure)?,
                    timestamp_ms,
                ],
            )
            .await?;
            disarm_timers(db, instance_id).await?;
            let sent = match &parent {
                Some(parent) => {
                    children::notify_parent(db, parent, Outcome::Failed(failure)).await?
                }
                None => None,
            };
            let unlocks = entity::release_locks(db, instance_id, *timestamp_ms).await?;
            if unlocks.is_empty() {
                return Ok(Written::Delivered(sent));
            }
            Ok(Written::Step(StepWork {
                messages: sent.into_iter().collect(),
                entity_messages: unlocks,
                ..StepWork::default()
            }))
        }
        Write::RaiseEvent {
            instance_id,
            name,
            input,
            idempotency_key,
        } => {
            let Some(State { status, .. }) = instance_state(db, instance_id).await? else {
                return Err(StoreError::InstanceNotFound(instance_id.clone()));
            };
            // A repeated key answers "recorded before" even if the instance finished since.
            if let Some(key) = idempotency_key {
                let fresh = db
                    .execute(
                        "INSERT INTO event_keys (instance_id, key) VALUES ($1, $2)
                         ON CONFLICT DO NOTHING",
                        &[instance_id, key],
                    )
                    .await?;
                if fresh == 0 {
                    return Ok(Written::Delivered(None));
                }
            }
            if status.is_terminal() {
                return Err(StoreError::InstanceFinished {
                    instance_id: instance_id.clone(),
                    status,
                });
            }
            let event = HistoryEvent::EventRaised {
                name: name.clone(),
                input: input.clone(),
            };
            // To whatever run is current when the event is consumed.
            let message = insert_message(db, instance_id, "", &event).await?;
            Ok(Written::Delivered(Some(message)))
        }
        Write::CompleteActivity {
            work_item_id,
            instance_id,
            event,
        } => {
            if !matches!(
                event,
                HistoryEvent::TaskCompleted { .. } | HistoryEvent::TaskFailed { .. }
            ) {
                return Err(StoreError::Refused(format!(
                    "an activity completion must carry TaskCompleted or TaskFailed, not {event:?}"
                )));
            }
            let run = db
                .query_opt(
                    "DELETE FROM activities WHERE id = $1 AND instance_id = $2
                     RETURNING execution_id",
                    &[work_item_id, instance_id],
                )
                .await?;
            let Some(run) = run else {
                return Ok(Written::Delivered(None));
            };
            let run: String = col(&run, 0, "activities", &work_item_id.to_string())?;
            let message = insert_message(db, instance_id, &run, event).await?;
            Ok(Written::Delivered(Some(message)))
        }
        Write::FireTimer {
            timer_id,
            instance_id,
            task_id,
        } => {
            let run = db
                .query_opt(
                    "DELETE FROM timers WHERE id = $1 AND instance_id = $2 RETURNING execution_id",
                    &[timer_id, instance_id],
                )
                .await?;
            let Some(run) = run else {
                return Ok(Written::Delivered(None));
            };
            let run: String = col(&run, 0, "timers", &timer_id.to_string())?;
            if *task_id == START_TIMER_TASK {
                return Ok(Written::Delivered(
                    manage::fire_start(db, instance_id, &run).await?,
                ));
            }
            let fired = HistoryEvent::TimerFired { task_id: *task_id };
            let message = insert_message(db, instance_id, &run, &fired).await?;
            Ok(Written::Delivered(Some(message)))
        }
    }
}

/// A value of the write that does not serialize can never be written.
pub(super) fn to_json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|err| {
        StoreError::Refused(format!("a value of the write does not serialize: {err}"))
    })
}

/// Inserts a message for `instance_id`'s run `execution_id` (the runtime's answer to it).
pub(super) async fn insert_message(
    db: &Db<'_>,
    instance_id: &str,
    execution_id: &str,
    event: &HistoryEvent,
) -> Result<Message, StoreError> {
    let row = db
        .query_opt(
            INSERT_MESSAGE,
            &[&instance_id, &to_json(event)?, &execution_id],
        )
        .await?
        .ok_or(StoreError::UnexpectedAnswer("message insert"))?;
    Ok(Message {
        id: col(&row, 0, "messages", instance_id)?,
        instance_id: instance_id.to_string(),
        execution_id: execution_id.into(),
        event: event.clone(),
    })
}

/// Inserts an activity work item of run `run`.
pub(super) async fn insert_activity(
    db: &Db<'_>,
    instance_id: &str,
    run: &std::sync::Arc<str>,
    task_id: u64,
    name: &str,
    input: &crate::payload::Payload,
) -> Result<ActivityWorkItem, StoreError> {
    let row = db
        .query_opt(
            "INSERT INTO activities (instance_id, task_id, name, input, execution_id)
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
            &[
                &instance_id,
                &int(task_id, "task id")?,
                &name,
                &input.as_str(),
                &&**run,
            ],
        )
        .await?
        .ok_or(StoreError::UnexpectedAnswer("activity insert"))?;
    Ok(ActivityWorkItem {
        id: col(&row, 0, "activities", instance_id)?,
        instance_id: instance_id.to_string(),
        execution_id: run.clone(),
        task_id,
        name: name.to_string(),
        input: input.clone(),
    })
}

/// Enqueues the activities of `step` in one statement (a fan-out of a thousand costs one round
/// trip, not a thousand), in the step's order. Each row's id is matched to its activity by
/// task id (unique in a run), never by the order rows come back in.
async fn insert_activities(
    db: &Db<'_>,
    step: &StepCommit,
) -> Result<Vec<ActivityWorkItem>, StoreError> {
    match step.activities.as_slice() {
        [] => return Ok(Vec::new()),
        [(task_id, name, input)] => {
            let one = insert_activity(
                db,
                &step.instance_id,
                &step.execution_id,
                *task_id,
                name,
                input,
            );
            return Ok(vec![one.await?]);
        }
        _ => {}
    }
    let mut task_ids = Vec::with_capacity(step.activities.len());
    let mut names = Vec::with_capacity(step.activities.len());
    let mut inputs = Vec::with_capacity(step.activities.len());
    for (task_id, name, input) in &step.activities {
        task_ids.push(int(*task_id, "task id")?);
        names.push(name.as_str());
        inputs.push(input.as_str());
    }
    let rows = db
        .query(
            INSERT_ACTIVITIES,
            &[
                &step.instance_id,
                &task_ids,
                &names,
                &inputs,
                &&*step.execution_id,
            ],
        )
        .await?;
    let mut ids = std::collections::HashMap::with_capacity(rows.len());
    for row in &rows {
        let id: i64 = col(row, 0, "activities", &step.instance_id)?;
        let task_id: i64 = col(row, 1, "activities", &step.instance_id)?;
        ids.insert(task_id, id);
    }
    step.activities
        .iter()
        .zip(&task_ids)
        .map(|((task_id, name, input), key)| {
            let id = ids
                .get(key)
                .copied()
                .ok_or(StoreError::UnexpectedAnswer("activity insert"))?;
            Ok(ActivityWorkItem {
                id,
                instance_id: step.instance_id.clone(),
                execution_id: step.execution_id.clone(),
                task_id: *task_id,
                name: name.clone(),
                input: input.clone(),
            })
        })
        .collect()
}

/// Arms a timer of run `run`.
pub(super) async fn insert_timer(
    db: &Db<'_>,
    instance_id: &str,
    run: &std::sync::Arc<str>,
    task_id: u64,
    fire_at_ms: i64,
) -> Result<TimerWorkItem, StoreError> {
    let row = db
        .query_opt(
            INSERT_TIMER,
            &[
                &instance_id,
                &int(task_id, "task id")?,
                &fire_at_ms,
                &&**run,
            ],
        )
        .await?
        .ok_or(StoreError::UnexpectedAnswer("timer insert"))?;
    Ok(TimerWorkItem {
        id: col(&row, 0, "timers", instance_id)?,
        instance_id: instance_id.to_string(),
        execution_id: run.clone(),
        task_id,
        fire_at_ms,
    })
}

pub(super) async fn disarm_timers(db: &Db<'_>, instance_id: &str) -> Result<(), StoreError> {
    db.execute(DISARM_TIMERS, &[&instance_id]).await?;
    Ok(())
}

/// Creates the instance `new` (a sub-orchestration of `parent`, if given) and sends it its
/// `ExecutionStarted`; [`StoreError::InstanceExists`] (with nothing changed) if the id is taken.
pub(super) async fn create_instance(
    db: &Db<'_>,
    new: &NewInstance,
    parent: Option<&ParentInstance>,
) -> Result<Message, StoreError> {
    insert_row(db, new, parent).await?;
    let started = started_event(new, parent);
    insert_message(db, &new.instance_id, &new.execution_id, &started).await
}

/// The `ExecutionStarted` a new instance is sent.
pub(super) fn started_event(new: &NewInstance, parent: Option<&ParentInstance>) -> HistoryEvent {
    HistoryEvent::ExecutionStarted(Box::new(ExecutionStartedEvent {
        name: new.name.clone(),
        version: new.version.clone(),
        input: new.input.clone(),
        execution_id: Some(new.execution_id.to_string()),
        parent: parent.cloned(),
        carried_events: Vec::new(),
    }))
}

/// Inserts the row and input of the instance `new` (`Pending`);
/// [`StoreError::InstanceExists`] (with nothing changed) if the id is taken.
pub(super) async fn insert_row(
    db: &Db<'_>,
    new: &NewInstance,
    parent: Option<&ParentInstance>,
) -> Result<(), StoreError> {
    let parent_task = parent
        .map(|p| int(p.task_id, "a parent task id"))
        .transpose()?;
    let inserted = db
        .execute(
            INSERT_INSTANCE,
            &[
                &new.instance_id,
                &new.name,
                &new.version,
                &RuntimeStatus::Pending.as_str(),
                &new.created_ms,
                &&*new.execution_id,
                &parent.map(|p| p.instance_id.as_str()),
                &parent.map(|p| p.execution_id.as_str()),
                &parent_task,
            ],
        )
        .await?;
    if inserted == 0 {
        return Err(StoreError::InstanceExists(new.instance_id.clone()));
    }
    db.execute(INSERT_INPUT, &[&new.instance_id, &new.input.as_str()])
        .await?;
    Ok(())
}

/// Deletes the rows `ids` of `table` that belong to `instance_id`; the ids that were not there.
pub(super) async fn delete_owned(
    db: &Db<'_>,
    table: &'static str,
    ids: &[i64],
    instance_id: &str,
) -> Result<Vec<i64>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    // One statement for all of them: a step consuming 100 messages costs one round trip.
    let sql = delete_owned_sql(table);
    let deleted: Vec<i64> = db
        .query(&sql, &[&ids, &instance_id])
        .await?
        .iter()
        .map(|row| col(row, 0, table, instance_id))
        .collect::<Result<_, _>>()?;
    Ok(ids
        .iter()
        .copied()
        .filter(|id| !deleted.contains(id))
        .collect())
}

async fn apply_step(db: &Db<'_>, step: &StepCommit) -> Result<Written, StoreError> {
    let state = check_step(db, step).await?;
    let id = &step.instance_id;
    let gone = delete_owned(db, "messages", &step.consumed, id).await?;
    if !gone.is_empty() {
        return Err(StoreError::MessagesGone(gone));
    }
    let recorded = delete_owned(db, "activities", &step.completed_activities, id).await?;
    if !recorded.is_empty() {
        return Err(StoreError::AlreadyRecorded(recorded));
    }
    let gone = delete_owned(db, "timers", &step.fired_timers, id).await?;
    if !gone.is_empty() {
        return Err(StoreError::TimersGone(gone));
    }
    if let Some(custom_status) = &step.custom_status {
        // A JSON null clears it, as if never set.
        let value = (custom_status.as_str() != "null").then(|| custom_status.as_str());
        db.execute(SET_CUSTOM_STATUS, &[id, &value]).await?;
    }
    if let Some(next) = &step.continue_as_new {
        let parent = state.as_ref().and_then(|state| state.parent.as_ref());
        let started = continue_as_new::apply(db, step, next, parent).await?;
        // The signals of the run's last step are sent (before the unlocks, so that they run
        // inside its critical sections; the engine leaves no call in such a step: no one is
        // left to take its answer).
        let mut entity_messages = entity::send_from_step(db, step).await?;
        // The run that ends releases its critical sections: the next run starts with none.
        entity_messages.extend(entity::release_locks(db, id, step.timestamp_ms).await?);
        return Ok(Written::Step(StepWork {
            activities: Vec::new(),
            timers: Vec::new(),
            messages: vec![started],
            entity_messages,
        }));
    }
    if !step.events.is_empty() {
        // One statement for the whole step's events.
        let first = int(step.first_seq, "history position")?;
        let events: Vec<String> = step.events.iter().map(to_json).collect::<Result<_, _>>()?;
        db.execute(INSERT_HISTORY, &[id, &first, &step.timestamp_ms, &events])
            .await?;
    }
    let activities = insert_activities(db, step).await?;
    let mut timers = Vec::with_capacity(step.timers.len());
    for (task_id, fire_at_ms) in &step.timers {
        timers.push(insert_timer(db, id, &step.execution_id, *task_id, *fire_at_ms).await?);
    }
    let mut messages = children::create(db, step).await?;
    let mut entity_messages = entity::send_from_step(db, step).await?;
    let history_len = int(step.first_seq + step.events.len() as u64, "history length")?;
    if let Some(status) = step.status {
        let failure = step.failure.as_ref().map(to_json).transpose()?;
        db.execute(
            SET_STATUS,
            &[
                id,
                &status.as_str(),
                &failure,
                &step.timestamp_ms,
                &history_len,
            ],
        )
        .await?;
        // Only a completing step has an output, and nothing un-completes an instance.
        if let Some(output) = &step.output {
            db.execute(SET_OUTPUT, &[id, &output.as_str()]).await?;
        }
        if status.is_terminal() {
            disarm_timers(db, id).await?;
            // A finishing step arms nothing that outlives it.
            timers.clear();
            entity_messages.extend(entity::release_locks(db, id, step.timestamp_ms).await?);
            if let Some(parent) = state.as_ref().and_then(|state| state.parent.as_ref()) {
                let outcome = match (status, &step.failure) {
                    (RuntimeStatus::Completed, _) => Outcome::Completed(step.output.as_ref()),
                    (_, Some(failure)) => Outcome::Failed(failure),
                    (status, None) => Outcome::Ended(status),
                };
                messages.extend(children::notify_parent(db, parent, outcome).await?);
            }
        }
    } else if !step.events.is_empty() {
        db.execute(SET_HISTORY_LEN, &[id, &history_len]).await?;
    }
    Ok(Written::Step(StepWork {
        activities,
        timers,
        messages,
        entity_messages,
    }))
}
