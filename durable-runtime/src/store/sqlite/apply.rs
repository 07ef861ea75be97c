//! Applying one [`Write`] inside the writer's open transaction (and savepoint).
//!
//! Every check a write makes (fencing, the status state machine, row counts) is made here, with
//! cached statements; an error leaves partial changes behind, which the caller rolls back to the
//! write's savepoint.

use super::check::{State, check_step, instance_state};
use super::children::{self, Outcome};
use super::continue_as_new;
use super::entity;
use super::error::SqlContext;
use super::history_rows;
use super::large_values::{self, Json, JsonParam};
use super::manage;
use crate::history::{ExecutionStartedEvent, HistoryEvent, ParentInstance};
use crate::instance::RuntimeStatus;
use crate::store::{
    ActivityWorkItem, AttemptOf, Message, NewInstance, START_TIMER_TASK, StepCommit, StepWork,
    StoreError, TimerWorkItem, Write, Written,
};
use rusqlite::{Connection, OptionalExtension, params};

/// Applies `write`; the caller owns the transaction and the savepoint around it.
/// The next id of each kind of work row. The writer, the only one who inserts, hands them out
/// and never twice in a process, so a deleted row's id is never reused while a worker may
/// still name it (and ids only grow, which startup recovery's watermarks rely on), without
/// the extra page write per commit that `AUTOINCREMENT` costs.
pub(crate) struct NextIds {
    messages: i64,
    pub(super) activities: i64,
    pub(super) timers: i64,
    pub(super) entity_messages: i64,
}

impl NextIds {
    /// Starts above every id in the store (and every id `AUTOINCREMENT` handed out, in a file
    /// whose tables were created with it).
    pub(crate) fn load(conn: &Connection) -> Result<Self, StoreError> {
        let sequences = conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_schema WHERE name = 'sqlite_sequence'",
                [],
                |row| row.get::<_, i64>(0),
            )
            .at("sqlite_schema", "sqlite_sequence")?
            > 0;
        let next = |table: &'static str| -> Result<i64, StoreError> {
            let mut max: i64 = conn
                .query_row(
                    &format!("SELECT COALESCE(MAX(id), 0) FROM {table}"),
                    [],
                    |row| row.get(0),
                )
                .at(table, "MAX(id)")?;
            if sequences {
                let used: Option<i64> = conn
                    .query_row(
                        "SELECT seq FROM sqlite_sequence WHERE name = ?1",
                        params![table],
                        |row| row.get(0),
                    )
                    .optional()
                    .at("sqlite_sequence", table)?;
                max = max.max(used.unwrap_or(0));
            }
            Ok(max + 1)
        };
        Ok(NextIds {
            messages: next("messages")?,
            activities: next("activities")?,
            timers: next("timers")?,
            entity_messages: next("entity_messages")?,
        })
    }

    pub(super) fn take(counter: &mut i64) -> i64 {
        let id = *counter;
        *counter += 1;
        id
    }
}

pub(crate) fn apply_write(
    conn: &Connection,
    ids: &mut NextIds,
    write: &Write,
) -> Result<Written, StoreError> {
    match write {
        Write::CreateInstance(new) => Ok(Written::Instance(create_instance(conn, ids, new, None)?)),
        Write::ScheduleInstance {
            instance,
            start_at_ms,
        } => manage::schedule(conn, ids, instance, *start_at_ms),
        Write::Manage(operation) => manage::apply(conn, ids, operation),
        Write::Step(step) => apply_step(conn, ids, step),
        Write::SignalEntity(message) => Ok(Written::Entity(crate::store::EntityWork {
            signals: vec![entity::queue(conn, ids, message)?],
            messages: Vec::new(),
        })),
        Write::SignalEntityOnce {
            message,
            idempotency_key,
        } => {
            let fresh = conn
                .prepare_cached(
                    "INSERT OR IGNORE INTO event_keys (instance_id, key) VALUES (?1, ?2)",
                )?
                .execute(params![
                    crate::store::entity_key_scope(&message.entity_id),
                    idempotency_key
                ])?;
            let signals = match fresh {
                // Sent before with this key: nothing more to queue.
                0 => Vec::new(),
                _ => vec![entity::queue(conn, ids, message)?],
            };
            Ok(Written::Entity(crate::store::EntityWork {
                signals,
                messages: Vec::new(),
            }))
        }
        Write::Entity(commit) => entity::commit(conn, ids, commit).map(Written::Entity),
        Write::PurgeEntities { entity_ids } => entity::purge(conn, entity_ids).map(Written::Purged),
        Write::CountAttempt { of, unless_counted } => count_attempt(conn, of, *unless_counted),
        Write::ClearAttempts(of) => clear_attempts(conn, of).map(|()| Written::Attempts {
            count: 0,
            counted: false,
        }),
        Write::MarkRunning(running) => {
            let was: i64 = conn
                .prepare_cached("SELECT value FROM store_state WHERE key = 'running'")?
                .query_row([], |row| row.get(0))
                .at("store_state", "running")?;
            conn.prepare_cached("UPDATE store_state SET value = ?1 WHERE key = 'running'")?
                .execute(params![i64::from(*running)])?;
            Ok(Written::WasRunning(was != 0))
        }
        Write::FailInstance {
            instance_id,
            failure,
            timestamp_ms,
        } => {
            let Some(State { status, parent, .. }) = instance_state(conn, instance_id)? else {
                return Err(StoreError::InstanceNotFound(instance_id.clone()));
            };
            if status.is_terminal() {
                return Err(StoreError::Fenced(format!(
                    "instance '{instance_id}' is already {status}"
                )));
            }
            conn.prepare_cached(
                "UPDATE instances SET status = ?2, failure = ?3, updated_ms = ?4
                 WHERE instance_id = ?1",
            )?
            .execute(params![
                instance_id,
                RuntimeStatus::Failed.as_str(),
                to_json(failure)?,
                timestamp_ms
            ])?;
            disarm_timers(conn, instance_id)?;
            let outcome = Outcome::Failed(failure);
            let sent = match &parent {
                Some(parent) => children::notify_parent(conn, ids, parent, outcome)?,
                None => None,
            };
            let unlocks = entity::release_locks(conn, ids, instance_id, *timestamp_ms)?;
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
            let Some(State { status, .. }) = instance_state(conn, instance_id)? else {
                return Err(StoreError::InstanceNotFound(instance_id.clone()));
            };
            // A repeated key answers "recorded before" even if the instance finished since.
            if let Some(key) = idempotency_key {
                let fresh = conn
                    .prepare_cached(
                        "INSERT OR IGNORE INTO event_keys (instance_id, key) VALUES (?1, ?2)",
                    )?
                    .execute(params![instance_id, key])?;
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
            // Addressed to whatever run is current.
            let message = insert_message(conn, ids, instance_id, "", &event)?;
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
            let run: Option<String> = conn
                .prepare_cached(
                    "DELETE FROM activities WHERE id = ?1 AND instance_id = ?2
                     RETURNING execution_id",
                )?
                .query_row(params![work_item_id, instance_id], |row| row.get(0))
                .optional()?;
            let Some(run) = run else {
                return Ok(Written::Delivered(None));
            };
            let message = insert_message(conn, ids, instance_id, &run, event)?;
            Ok(Written::Delivered(Some(message)))
        }
        Write::FireTimer {
            timer_id,
            instance_id,
            task_id,
        } => {
            let run: Option<String> = conn
                .prepare_cached(
                    "DELETE FROM timers WHERE id = ?1 AND instance_id = ?2 RETURNING execution_id",
                )?
                .query_row(params![timer_id, instance_id], |row| row.get(0))
                .optional()?;
            let Some(run) = run else {
                return Ok(Written::Delivered(None));
            };
            if *task_id == START_TIMER_TASK {
                return Ok(Written::Delivered(manage::fire_start(
                    conn,
                    ids,
                    instance_id,
                    &run,
                )?));
            }
            let fired = HistoryEvent::TimerFired { task_id: *task_id };
            let message = insert_message(conn, ids, instance_id, &run, &fired)?;
            Ok(Written::Delivered(Some(message)))
        }
    }
}

/// A value of the write that does not serialize can never be written.
/// Counts one more attempt at `of` (with `unless_counted`, only if its count is 0).
fn count_attempt(
    conn: &Connection,
    of: &AttemptOf,
    unless_counted: bool,
) -> Result<Written, StoreError> {
    let stored: Option<i64> = match of {
        AttemptOf::Instance(instance_id) => conn
            .prepare_cached("SELECT recovery_attempts FROM instances WHERE instance_id = ?1")?
            .query_row(params![instance_id], |row| row.get(0))
            .optional()?,
        AttemptOf::Activity(id) => conn
            .prepare_cached("SELECT recovery_attempts FROM activities WHERE id = ?1")?
            .query_row(params![id], |row| row.get(0))
            .optional()?,
    };
    let Some(stored) = stored else {
        return Ok(Written::Attempts {
            count: 0,
            counted: false,
        });
    };
    let stored = u32::try_from(stored).unwrap_or(u32::MAX);
    if unless_counted && stored > 0 {
        return Ok(Written::Attempts {
            count: stored,
            counted: false,
        });
    }
    let count = stored.saturating_add(1);
    match of {
        AttemptOf::Instance(instance_id) => conn
            .prepare_cached("UPDATE instances SET recovery_attempts = ?2 WHERE instance_id = ?1")?
            .execute(params![instance_id, count])?,
        AttemptOf::Activity(id) => conn
            .prepare_cached("UPDATE activities SET recovery_attempts = ?2 WHERE id = ?1")?
            .execute(params![id, count])?,
    };
    Ok(Written::Attempts {
        count,
        counted: true,
    })
}

fn clear_attempts(conn: &Connection, of: &AttemptOf) -> Result<(), StoreError> {
    match of {
        AttemptOf::Instance(instance_id) => conn
            .prepare_cached("UPDATE instances SET recovery_attempts = 0 WHERE instance_id = ?1")?
            .execute(params![instance_id])?,
        AttemptOf::Activity(id) => conn
            .prepare_cached("UPDATE activities SET recovery_attempts = 0 WHERE id = ?1")?
            .execute(params![id])?,
    };
    Ok(())
}

pub(super) fn to_json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|err| {
        StoreError::Refused(format!("a value of the write does not serialize: {err}"))
    })
}

/// Inserts a message for `instance_id`'s run `execution_id` (the runtime's answer to it).
pub(super) fn insert_message(
    conn: &Connection,
    ids: &mut NextIds,
    instance_id: &str,
    execution_id: &str,
    event: &HistoryEvent,
) -> Result<Message, StoreError> {
    let id = NextIds::take(&mut ids.messages);
    let json = Json::of(event)?;
    conn.prepare_cached(
        "INSERT INTO messages (id, instance_id, event, execution_id) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![id, instance_id, json.param()?, execution_id])?;
    large_values::stream(conn, "messages", "event", id, &json, event)?;
    Ok(Message {
        id,
        instance_id: instance_id.to_string(),
        execution_id: execution_id.into(),
        event: event.clone(),
    })
}

fn disarm_timers(conn: &Connection, instance_id: &str) -> Result<(), StoreError> {
    conn.prepare_cached("DELETE FROM timers WHERE instance_id = ?1")?
        .execute(params![instance_id])?;
    Ok(())
}

/// Creates the instance `new` (a sub-orchestration of `parent`, if given) and sends it its
/// `ExecutionStarted`; [`StoreError::InstanceExists`] (with nothing changed) if the id is taken.
pub(super) fn create_instance(
    conn: &Connection,
    ids: &mut NextIds,
    new: &NewInstance,
    parent: Option<&ParentInstance>,
) -> Result<Message, StoreError> {
    insert_row(conn, new, parent)?;
    let started = HistoryEvent::ExecutionStarted(Box::new(ExecutionStartedEvent {
        name: new.name.clone(),
        version: new.version.clone(),
        input: new.input.clone(),
        execution_id: Some(new.execution_id.to_string()),
        parent: parent.cloned(),
        carried_events: Vec::new(),
    }));
    insert_message(conn, ids, &new.instance_id, &new.execution_id, &started)
}

/// Inserts the row and input of the instance `new` (`Pending`);
/// [`StoreError::InstanceExists`] (with nothing changed) if the id is taken.
pub(super) fn insert_row(
    conn: &Connection,
    new: &NewInstance,
    parent: Option<&ParentInstance>,
) -> Result<(), StoreError> {
    let inserted = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO instances
             (instance_id, name, version, status, created_ms, updated_ms, history_len,
              execution_id, parent_instance_id, parent_execution_id, parent_task_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?5, 0, ?6, ?7, ?8, ?9)",
        )?
        .execute(params![
            new.instance_id,
            new.name,
            new.version,
            RuntimeStatus::Pending.as_str(),
            new.created_ms,
            new.execution_id,
            parent.map(|p| p.instance_id.as_str()),
            parent.map(|p| p.execution_id.as_str()),
            parent
                .map(|p| i64::try_from(p.task_id))
                .transpose()
                .map_err(|_| StoreError::Refused("a parent task id over i64::MAX".into()))?,
        ])?;
    if inserted == 0 {
        return Err(StoreError::InstanceExists(new.instance_id.clone()));
    }
    conn.prepare_cached("INSERT INTO instance_inputs (instance_id, input) VALUES (?1, ?2)")?
        .execute(params![new.instance_id, JsonParam(new.input.as_str())])?;
    large_values::fill_last_insert(conn, "instance_inputs", "input", new.input.as_str())?;
    Ok(())
}

fn apply_step(
    conn: &Connection,
    ids: &mut NextIds,
    step: &StepCommit,
) -> Result<Written, StoreError> {
    let state = check_step(conn, step)?;
    let id = &step.instance_id;
    {
        let mut consume =
            conn.prepare_cached("DELETE FROM messages WHERE id = ?1 AND instance_id = ?2")?;
        let mut gone = Vec::new();
        for message in &step.consumed {
            if consume.execute(params![message, id])? != 1 {
                gone.push(*message);
            }
        }
        if !gone.is_empty() {
            return Err(StoreError::MessagesGone(gone));
        }
        let mut complete =
            conn.prepare_cached("DELETE FROM activities WHERE id = ?1 AND instance_id = ?2")?;
        let mut recorded = Vec::new();
        for item in &step.completed_activities {
            if complete.execute(params![item, id])? != 1 {
                recorded.push(*item);
            }
        }
        if !recorded.is_empty() {
            return Err(StoreError::AlreadyRecorded(recorded));
        }
        let mut fire =
            conn.prepare_cached("DELETE FROM timers WHERE id = ?1 AND instance_id = ?2")?;
        let mut gone = Vec::new();
        for timer in &step.fired_timers {
            if fire.execute(params![timer, id])? != 1 {
                gone.push(*timer);
            }
        }
        if !gone.is_empty() {
            return Err(StoreError::TimersGone(gone));
        }
    }
    if let Some(custom_status) = &step.custom_status {
        // A JSON null clears it, as if never set.
        let value = (custom_status.as_str() != "null").then(|| custom_status.as_str());
        conn.prepare_cached("UPDATE instances SET custom_status = ?2 WHERE instance_id = ?1")?
            .execute(params![id, value])?;
    }
    if let Some(next) = &step.continue_as_new {
        let parent = state.as_ref().and_then(|state| state.parent.as_ref());
        let started = continue_as_new::apply(conn, ids, step, next, parent)?;
        // The signals of the run's last step are sent (before the unlocks, so that they run
        // inside its critical sections; the engine leaves no call in such a step: no one is
        // left to take its answer).
        let mut entity_messages = entity::send_from_step(conn, ids, step)?;
        // The run that ends releases its critical sections: the next run starts with none.
        entity_messages.extend(entity::release_locks(conn, ids, id, step.timestamp_ms)?);
        return Ok(Written::Step(StepWork {
            activities: Vec::new(),
            timers: Vec::new(),
            messages: vec![started],
            entity_messages,
        }));
    }
    history_rows::append(conn, id, step.first_seq, step.timestamp_ms, &step.events)?;
    let mut activities = Vec::with_capacity(step.activities.len());
    if !step.activities.is_empty() {
        let mut enqueue = conn.prepare_cached(
            "INSERT INTO activities (id, instance_id, task_id, name, input, execution_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for (task_id, name, input) in &step.activities {
            let row = NextIds::take(&mut ids.activities);
            enqueue.execute(params![
                row,
                id,
                task_id,
                name,
                JsonParam(input.as_str()),
                step.execution_id
            ])?;
            large_values::fill(conn, "activities", "input", row, input.as_str())?;
            activities.push(ActivityWorkItem {
                id: row,
                instance_id: id.clone(),
                execution_id: step.execution_id.clone(),
                task_id: *task_id,
                name: name.clone(),
                input: input.clone(),
            });
        }
    }
    let mut timers = Vec::with_capacity(step.timers.len());
    if !step.timers.is_empty() {
        let mut arm = conn.prepare_cached(
            "INSERT INTO timers (id, instance_id, task_id, fire_at_ms, execution_id)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for (task_id, fire_at_ms) in &step.timers {
            let row = NextIds::take(&mut ids.timers);
            arm.execute(params![row, id, task_id, fire_at_ms, step.execution_id])?;
            timers.push(TimerWorkItem {
                id: row,
                instance_id: id.clone(),
                execution_id: step.execution_id.clone(),
                task_id: *task_id,
                fire_at_ms: *fire_at_ms,
            });
        }
    }
    let mut messages = children::create(conn, ids, step)?;
    let mut entity_messages = entity::send_from_step(conn, ids, step)?;
    let history_len = step.first_seq + step.events.len() as u64;
    if let Some(status) = step.status {
        let failure = step.failure.as_ref().map(to_json).transpose()?;
        conn.prepare_cached(
            "UPDATE instances SET status = ?2, failure = ?3, updated_ms = ?4, history_len = ?5,
                    recovery_attempts = 0
             WHERE instance_id = ?1",
        )?
        .execute(params![
            id,
            status.as_str(),
            failure,
            step.timestamp_ms,
            history_len
        ])?;
        // Only a completing step has an output, and nothing un-completes an instance.
        if let Some(output) = &step.output {
            conn.prepare_cached(
                "INSERT OR REPLACE INTO instance_outputs (instance_id, output) VALUES (?1, ?2)",
            )?
            .execute(params![id, JsonParam(output.as_str())])?;
            large_values::fill_last_insert(conn, "instance_outputs", "output", output.as_str())?;
        }
        if status.is_terminal() {
            disarm_timers(conn, id)?;
            // A finishing step arms nothing that outlives it.
            timers.clear();
            entity_messages.extend(entity::release_locks(conn, ids, id, step.timestamp_ms)?);
            if let Some(parent) = state.as_ref().and_then(|state| state.parent.as_ref()) {
                let outcome = match (status, &step.failure) {
                    (RuntimeStatus::Completed, _) => Outcome::Completed(step.output.as_ref()),
                    (_, Some(failure)) => Outcome::Failed(failure),
                    (status, None) => Outcome::Ended(status),
                };
                messages.extend(children::notify_parent(conn, ids, parent, outcome)?);
            }
        }
    } else if !step.events.is_empty() {
        conn.prepare_cached(
            "UPDATE instances SET history_len = ?2, recovery_attempts = 0 WHERE instance_id = ?1",
        )?
        .execute(params![id, history_len])?;
    }
    Ok(Written::Step(StepWork {
        activities,
        timers,
        messages,
        entity_messages,
    }))
}
