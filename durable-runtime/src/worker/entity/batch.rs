//! Running a batch of an entity's queued operations on its state in memory, and describing
//! the commit that makes it durable.

use super::{Live, MAX_BATCH, Queue};
use crate::entity::{EntityId, OperationCall, OperationDone};
use crate::failure::{FailureDetails, panic_failure};
use crate::payload::Payload;
use crate::store::{
    EntityCommit, EntityLogEntry, EntityMessage, EntityState, LOCK_OPERATION, NewEntityMessage,
    NewInstance, UNLOCK_OPERATION, Write,
};
use crate::worker::Shared;
use futures::FutureExt;
use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use uuid::Uuid;

/// Runs, in arrival order, the queued operations that may run now, and describes their
/// commit; `None` if none may (every one waits for a lock another orchestration holds).
///
/// While an orchestration holds the entity's lock (a critical section), only its own
/// operations run; the others wait in the queue, in order, and run once it unlocks.
pub(super) async fn run_batch(
    shared: &Arc<Shared>,
    id: &EntityId,
    entity_id: &str,
    entity: &mut Live,
    queue: &Queue,
) -> Option<(EntityCommit, Vec<i64>)> {
    let now = shared.clock.now_ms();
    let mut waiting: VecDeque<&EntityMessage> = queue.pending.values().collect();
    // Passed over because of a lock, in arrival order.
    let mut held: Vec<&EntityMessage> = Vec::new();
    let mut ran: Vec<i64> = Vec::new();
    let mut log = Vec::new();
    let mut signals = Vec::new();
    let mut starts = Vec::new();
    let mut responses = Vec::new();
    // Rows that do not decode fail alone, first: nothing can run them, and they must not stay
    // queued in front of the entity's other operations.
    for bad in queue.corrupt.values() {
        ran.push(bad.id);
        tracing::error!(entity = %entity_id, message = bad.id, reason = %bad.reason, "a queued entity operation is corrupt: set aside as failed");
        match &bad.reply {
            Some(reply) => {
                responses.push((reply.clone(), Err(FailureDetails::new(bad.reason.clone()))))
            }
            None => {
                tracing::warn!(entity = %entity_id, message = bad.id, "the sender of a corrupt entity operation cannot be answered (a signal, or its reply does not decode)")
            }
        }
        log.push(EntityLogEntry {
            operation: bad
                .operation
                .clone()
                .unwrap_or_else(|| "<unreadable>".to_string()),
            sender: bad.sender.clone().unwrap_or_default(),
            ok: false,
            error: Some(bad.reason.clone()),
            timestamp_ms: now,
        });
    }
    while ran.len() < MAX_BATCH {
        let mut next = None;
        while let Some(message) = waiting.pop_front() {
            let may_run = entity
                .locked_by
                .as_ref()
                .is_none_or(|owner| *owner == message.message.sender);
            if may_run {
                next = Some(message);
                break;
            }
            held.push(message);
        }
        let Some(message) = next else { break };
        ran.push(message.id);
        let operation = &message.message.operation;
        let sender = &message.message.sender;
        let outcome = match operation.as_str() {
            LOCK_OPERATION => {
                // Granted: it may run only when the entity is free or already its own.
                entity.locked_by = Some(sender.clone());
                Ok(OperationDone::default())
            }
            UNLOCK_OPERATION => {
                if entity.locked_by.as_deref() == Some(sender.as_str()) {
                    entity.locked_by = None;
                    // What waited for the lock runs now, before anything newer.
                    let rest: Vec<&EntityMessage> = waiting.drain(..).collect();
                    waiting.extend(held.drain(..));
                    waiting.extend(rest);
                }
                Ok(OperationDone::default())
            }
            _ => run_one(shared, id, entity, message).await,
        };
        let error = match outcome {
            Ok(done) => {
                starts.extend(done.starts.into_iter().map(|start| NewInstance {
                    instance_id: start.instance_id,
                    execution_id: Uuid::new_v4().simple().to_string().into(),
                    name: start.name,
                    version: start.version.flatten(),
                    input: start.input,
                    created_ms: now,
                }));
                signals.extend(done.signals.into_iter().map(|signal| NewEntityMessage {
                    entity_id: signal.entity_id.to_string(),
                    operation: signal.operation,
                    input: signal.input,
                    sender: entity_id.to_string(),
                    created_ms: now,
                    reply: None,
                }));
                if let Some(reply) = &message.message.reply {
                    let result = done.result.unwrap_or_else(Payload::null);
                    responses.push((reply.clone(), Ok(result)));
                }
                None
            }
            Err(error) => {
                if let Some(reply) = &message.message.reply {
                    let failure = FailureDetails::new(format!(
                        "operation '{operation}' of entity '{entity_id}' failed: {error}"
                    ));
                    responses.push((reply.clone(), Err(failure)));
                }
                tracing::warn!(entity = %entity_id, %operation, %error, "an entity operation failed; the entity's state is as before it");
                Some(error)
            }
        };
        log.push(EntityLogEntry {
            operation: operation.clone(),
            sender: sender.clone(),
            ok: error.is_none(),
            error,
            timestamp_ms: now,
        });
    }
    if ran.is_empty() {
        return None;
    }
    let commit = EntityCommit {
        entity_id: entity_id.to_string(),
        name: id.name().to_string(),
        expected_version: entity.version,
        consumed: ran.clone(),
        state: match (&entity.state, entity.unreadable) {
            (_, true) => EntityState::Unchanged,
            (Some(state), false) => EntityState::Set(state.clone()),
            (None, false) => EntityState::Deleted,
        },
        locked_by: entity.locked_by.clone(),
        signals,
        starts,
        responses,
        log,
        timestamp_ms: now,
    };
    Some((commit, ran))
}

/// Runs one operation; on failure the state is as before it.
async fn run_one(
    shared: &Arc<Shared>,
    id: &EntityId,
    entity: &mut Live,
    message: &EntityMessage,
) -> Result<OperationDone, String> {
    if let Some(broken) = &entity.broken {
        return Err(broken.clone());
    }
    let call = OperationCall {
        entity: id,
        name: &message.message.operation,
        input: &message.message.input,
    };
    let ran = AssertUnwindSafe(entity.behavior.run(call))
        .catch_unwind()
        .await;
    let failure = match ran {
        Ok(Ok(mut done)) => match (
            resolve_starts(shared, &mut done).and_then(|()| sends_within_limit(shared, &done)),
            entity.behavior.snapshot(),
        ) {
            (Err(unknown), _) => unknown,
            (Ok(()), Err(err)) => format!("the state does not serialize: {err}"),
            (Ok(()), Ok(state)) => {
                let size = state.as_ref().map_or(0, |s| s.as_str().len());
                let limit = shared.limits.max_payload_bytes;
                if size <= limit {
                    entity.state = state;
                    return Ok(done);
                }
                format!("the state would be {size} bytes, over the payload limit of {limit} bytes")
            }
        },
        Ok(Err(err)) => err.to_string(),
        Err(panic) => {
            panic_failure(&format!("operation '{}'", message.message.operation), panic).message
        }
    };
    if let Err(err) = entity.behavior.restore(entity.state.as_ref()) {
        entity.broken = Some(err);
    }
    Err(failure)
}

/// Gives each orchestration started by name the version this program registers; a name it
/// does not register fails the operation.
fn resolve_starts(shared: &Shared, done: &mut OperationDone) -> Result<(), String> {
    for start in &mut done.starts {
        if start.version.is_some() {
            continue;
        }
        match shared.registry.orchestrator(&start.name) {
            Some(registration) => {
                start.version = Some(registration.version.map(str::to_string));
            }
            None => {
                return Err(format!(
                    "no orchestrator named '{}' is registered in this program",
                    start.name
                ));
            }
        }
    }
    Ok(())
}

/// Holds what the operation sends (signal inputs, started orchestrations' inputs) to the
/// payload limit, as a client's or an orchestration's sends are: the store takes any size, so
/// this is the only place an operation's oversized input can be refused.
fn sends_within_limit(shared: &Shared, done: &OperationDone) -> Result<(), String> {
    let limit = shared.limits.max_payload_bytes;
    let signals = done.signals.iter().map(|signal| {
        (
            format!("signal '{}' to '{}'", signal.operation, signal.entity_id),
            &signal.input,
        )
    });
    let starts = done
        .starts
        .iter()
        .map(|start| (format!("orchestration '{}'", start.name), &start.input));
    for (what, input) in signals.chain(starts) {
        let size = input.as_str().len();
        if size > limit {
            return Err(format!(
                "the input of {what} is {size} bytes, over the payload limit of {limit} bytes"
            ));
        }
    }
    Ok(())
}

/// Fails the calls queued for an entity no `#[entity]` of this program registers (a caller
/// waiting for a result would wait forever); its signals stay queued for a program that has
/// it. The entity's row keeps what it had (an empty row appears if it had none: purgeable).
pub(super) async fn fail_calls_to_unknown(shared: &Arc<Shared>, entity_id: &str) {
    let Ok(snapshot) = shared.store.load_entity(entity_id).await else {
        return;
    };
    let calls: Vec<&EntityMessage> = snapshot
        .pending
        .iter()
        .filter(|m| m.message.reply.is_some())
        .collect();
    // A corrupt call whose reply can be read has a caller waiting for it too.
    let corrupt_calls: Vec<_> = snapshot
        .corrupt
        .iter()
        .filter(|m| m.reply.is_some())
        .collect();
    if calls.is_empty() && corrupt_calls.is_empty() {
        return;
    }
    let now = shared.clock.now_ms();
    let name = entity_id
        .parse::<EntityId>()
        .map_or_else(|_| entity_id.to_string(), |id| id.name().to_string());
    let error = format!("no entity named '{name}' is registered in this program");
    let commit = EntityCommit {
        entity_id: entity_id.to_string(),
        name,
        expected_version: snapshot.version,
        consumed: calls
            .iter()
            .map(|m| m.id)
            .chain(corrupt_calls.iter().map(|m| m.id))
            .collect(),
        // A corrupt state is kept as stored, for repair.
        state: match (&snapshot.state, &snapshot.corrupt_state) {
            (_, Some(_)) => EntityState::Unchanged,
            (Some(state), None) => EntityState::Set(state.clone()),
            (None, None) => EntityState::Deleted,
        },
        locked_by: snapshot.locked_by.clone(),
        signals: Vec::new(),
        starts: Vec::new(),
        responses: calls
            .iter()
            .filter_map(|m| m.message.reply.clone())
            .map(|reply| {
                let failure = FailureDetails::new(format!(
                    "operation of entity '{entity_id}' failed: {error}"
                ));
                (reply, Err(failure))
            })
            .chain(corrupt_calls.iter().filter_map(|m| {
                let failure = FailureDetails::new(format!(
                    "operation of entity '{entity_id}' failed: {error}; its queued row is corrupt: {}",
                    m.reason
                ));
                m.reply.clone().map(|reply| (reply, Err(failure)))
            }))
            .collect(),
        log: calls
            .iter()
            .map(|m| EntityLogEntry {
                operation: m.message.operation.clone(),
                sender: m.message.sender.clone(),
                ok: false,
                error: Some(error.clone()),
                timestamp_ms: now,
            })
            .chain(corrupt_calls.iter().map(|m| EntityLogEntry {
                operation: m.operation.clone().unwrap_or_default(),
                sender: m.sender.clone().unwrap_or_default(),
                ok: false,
                error: Some(format!("{error}; {}", m.reason)),
                timestamp_ms: now,
            }))
            .collect(),
        timestamp_ms: now,
    };
    // A conflict means another task took them meanwhile; anything else is retried at the
    // next delivery or start.
    if let Err(err) = shared
        .commit_retrying("failing calls to an unknown entity", || {
            Write::Entity(commit.clone())
        })
        .await
    {
        tracing::warn!(entity = %entity_id, error = %err, "could not fail the calls to an unknown entity");
    }
}
