//! The entity worker: one task per live entity, which runs its queued operations one at a
//! time, in arrival order, and commits each batch of them in one write.
//!
//! An operation message reaches its entity's task in memory once it is durable (the write that
//! queued it is acknowledged), and from the store when the task starts (its first load reads
//! the state and every queued operation in one read). The task keeps the state decoded in
//! memory between batches (unless the runtime runs without a cache), so an operation costs no
//! read, and whatever queued up while a batch was committing goes into the next batch: one
//! commit for many operations.
//!
//! Exactly once: a batch's commit holds the new state, deletes the operation messages it ran,
//! queues the signals they sent and appends to the log, in one transaction fenced by the
//! entity's version and by those messages still being there. A crash before the commit leaves
//! the messages queued (they run again, against the old state); after it, they are gone. A
//! commit refused as fenced means the store is not what memory says: the task reloads.
//!
//! An operation that fails or panics fails alone: the state is put back to its encoding from
//! before the operation, its signals are dropped, and the failure is logged (in `tracing` and
//! the entity's log).

use super::{Shared, StopSignal, stopping};
use crate::entity::{EntityBehavior, EntityId, EntityRegistration, OperationCall, OperationDone};
use crate::failure::{FailureDetails, panic_failure};
use crate::payload::Payload;
use crate::store::{
    EntityCommit, EntityLogEntry, EntityMessage, EntitySnapshot, EntityState, ErrorClass,
    LOCK_OPERATION, NewEntityMessage, UNLOCK_OPERATION, Write,
};
use futures::FutureExt;
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Most operations run in one batch (one commit).
const MAX_BATCH: usize = 10_000;

/// How long an entity's task stays in memory (with its state) without operations.
const IDLE: Duration = Duration::from_secs(30);

/// How long a task waits before loading again after its store refused it for good.
const FAILED_BACKOFF: Duration = Duration::from_secs(1);

/// The tasks of the live entities, by entity id.
pub(crate) struct Entities {
    tasks: Mutex<HashMap<Arc<str>, mpsc::UnboundedSender<EntityMessage>>>,
    /// Whether a task keeps its entity's state between batches (the runtime's cache is not 0).
    keep_state: bool,
    stop: StopSignal,
}

impl Entities {
    pub(crate) fn new(keep_state: bool, stop: StopSignal) -> Self {
        Entities {
            tasks: Mutex::new(HashMap::new()),
            keep_state,
            stop,
        }
    }

    /// Hands a durable operation message to its entity's task, starting the task if needed.
    pub(crate) fn deliver(shared: &Arc<Shared>, message: EntityMessage) {
        let mut tasks = shared.entities.tasks.lock();
        let message = match tasks.get(message.message.entity_id.as_str()) {
            Some(task) => match task.send(message) {
                Ok(()) => return,
                // The task ended without retiring (it panicked): start another.
                Err(unsent) => unsent.0,
            },
            None => message,
        };
        let entity_id: Arc<str> = message.message.entity_id.as_str().into();
        let (sender, inbox) = mpsc::unbounded_channel();
        let _ = sender.send(message);
        tasks.insert(entity_id.clone(), sender);
        tokio::spawn(run(shared.clone(), entity_id, inbox));
    }

    /// Starts the task of an entity with operations in the store (startup recovery), unless
    /// it runs already (its first load read them).
    pub(crate) fn wake(shared: &Arc<Shared>, entity_id: &str) {
        let mut tasks = shared.entities.tasks.lock();
        if tasks.contains_key(entity_id) {
            return;
        }
        let entity_id: Arc<str> = entity_id.into();
        let (sender, inbox) = mpsc::unbounded_channel();
        tasks.insert(entity_id.clone(), sender);
        tokio::spawn(run(shared.clone(), entity_id, inbox));
    }

    /// Removes the task's entry if nothing waits in its inbox; under the lock deliveries take,
    /// so no message is sent to a task that is gone.
    fn retire_if_idle(
        &self,
        entity_id: &str,
        inbox: &mpsc::UnboundedReceiver<EntityMessage>,
    ) -> bool {
        let mut tasks = self.tasks.lock();
        if !inbox.is_empty() {
            return false;
        }
        tasks.remove(entity_id);
        true
    }

    /// Removes the task's entry (it stops); what it had not run stays in the store.
    fn retire(&self, entity_id: &str) {
        self.tasks.lock().remove(entity_id);
    }
}

/// An entity loaded in memory.
struct Live {
    behavior: Box<dyn EntityBehavior>,
    /// The state as of the last operation, encoded (what a failed operation goes back to).
    state: Option<Payload>,
    /// Why the stored state cannot be used (it does not decode): every operation fails with
    /// it, and the state is kept as stored.
    broken: Option<String>,
    version: u64,
    /// The orchestration holding the entity's lock.
    locked_by: Option<String>,
}

/// The operations waiting for one entity, by id (arrival order).
#[derive(Default)]
struct Queue {
    pending: BTreeMap<i64, EntityMessage>,
    /// Every message up to this id was in a load: one delivered again in memory is known.
    known_upto: i64,
}

impl Queue {
    fn admit(&mut self, message: EntityMessage) {
        if message.id > self.known_upto {
            self.pending.insert(message.id, message);
        }
    }

    /// After a load: the store's queue is the queue. Every message memory holds was durable
    /// before the load read the store (it is handed over once its write is acknowledged), so
    /// one the load did not find was consumed, by a batch whose answer was lost: it must not
    /// run again, nor be taken again from a late delivery.
    fn loaded(&mut self, stored: Vec<EntityMessage>) {
        let newest_in_memory = self.pending.keys().next_back().copied().unwrap_or(0);
        let newest_stored = stored.last().map_or(0, |m| m.id);
        self.known_upto = self.known_upto.max(newest_in_memory).max(newest_stored);
        self.pending = stored.into_iter().map(|m| (m.id, m)).collect();
    }
}

/// The task of one entity: loads it, then runs batches until it is idle or the runtime stops.
async fn run(
    shared: Arc<Shared>,
    entity_id: Arc<str>,
    mut inbox: mpsc::UnboundedReceiver<EntityMessage>,
) {
    let mut stop = shared.entities.stop.clone();
    let registration = match entity_id.parse::<EntityId>() {
        Ok(id) => shared.registry.entity(id.name()).map(|reg| (id, reg)),
        Err(err) => {
            tracing::error!(entity = %entity_id, error = %err, "operations queued for an invalid entity id stay in the store");
            None
        }
    };
    let Some((id, registration)) = registration else {
        tracing::error!(entity = %entity_id, "no entity of this name is registered in this program: its signals stay queued until one is");
        fail_calls_to_unknown(&shared, &entity_id).await;
        shared.entities.retire(&entity_id);
        return;
    };
    let mut live: Option<Live> = None;
    let mut queue = Queue::default();
    loop {
        if stop.borrow().is_some() {
            break;
        }
        if live.is_none() {
            match load(&shared, &entity_id, registration).await {
                Some((loaded, stored)) => {
                    live = Some(loaded);
                    queue.loaded(stored);
                }
                None => {
                    tokio::select! {
                        biased;
                        _ = stopping(&mut stop) => break,
                        () = tokio::time::sleep(FAILED_BACKOFF) => continue,
                    }
                }
            }
        }
        while let Ok(message) = inbox.try_recv() {
            queue.admit(message);
        }
        let Some(entity) = live.as_mut() else {
            continue;
        };
        if queue.pending.is_empty() {
            tokio::select! {
                biased;
                _ = stopping(&mut stop) => break,
                message = inbox.recv() => match message {
                    Some(message) => queue.admit(message),
                    None => break,
                },
                () = tokio::time::sleep(IDLE) => {
                    if shared.entities.retire_if_idle(&entity_id, &inbox) {
                        return;
                    }
                }
            }
            continue;
        }
        let Some((commit, ran)) = run_batch(&shared, &id, &entity_id, entity, &queue).await else {
            // Every queued operation waits for a lock: wait for more (the unlock).
            tokio::select! {
                biased;
                _ = stopping(&mut stop) => break,
                message = inbox.recv() => match message {
                    Some(message) => queue.admit(message),
                    None => break,
                },
            }
            continue;
        };
        let committed = shared
            .commit_retrying("a batch of entity operations", || {
                Write::Entity(commit.clone())
            })
            .await;
        match committed {
            Ok(_) => {
                for message_id in &ran {
                    queue.pending.remove(message_id);
                }
                entity.version += 1;
                if !shared.entities.keep_state {
                    live = None;
                }
            }
            Err(err) => {
                // Memory is ahead of the store now: load again (a fenced batch finds what
                // changed; a failing store is retried after a pause).
                if err.class() == ErrorClass::Conflict {
                    tracing::warn!(entity = %entity_id, error = %err, "an entity batch was fenced off; loading the entity again");
                } else {
                    tracing::error!(entity = %entity_id, error = %err, "an entity batch could not be committed; its operations stay queued");
                    tokio::select! {
                        biased;
                        _ = stopping(&mut stop) => break,
                        () = tokio::time::sleep(FAILED_BACKOFF) => {}
                    }
                }
                live = None;
            }
        }
    }
    shared.entities.retire(&entity_id);
}

/// Fails the calls queued for an entity no `#[entity]` of this program registers (a caller
/// waiting for a result would wait forever); its signals stay queued for a program that has
/// it. The entity's row keeps what it had (an empty row appears if it had none: purgeable).
async fn fail_calls_to_unknown(shared: &Arc<Shared>, entity_id: &str) {
    let Ok(snapshot) = shared.store.load_entity(entity_id).await else {
        return;
    };
    let calls: Vec<&EntityMessage> = snapshot
        .pending
        .iter()
        .filter(|m| m.message.reply.is_some())
        .collect();
    if calls.is_empty() {
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
        consumed: calls.iter().map(|m| m.id).collect(),
        state: snapshot
            .state
            .clone()
            .map_or(EntityState::Deleted, EntityState::Set),
        locked_by: snapshot.locked_by.clone(),
        signals: Vec::new(),
        responses: calls
            .iter()
            .filter_map(|m| m.message.reply.clone())
            .map(|reply| {
                let failure = FailureDetails::new(format!(
                    "operation of entity '{entity_id}' failed: {error}"
                ));
                (reply, Err(failure))
            })
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

/// Reads the entity and its queue; `None` if the store refuses now (logged).
async fn load(
    shared: &Arc<Shared>,
    entity_id: &str,
    registration: &'static EntityRegistration,
) -> Option<(Live, Vec<EntityMessage>)> {
    let EntitySnapshot {
        state,
        version,
        locked_by,
        pending,
    } = match shared.store.load_entity(entity_id).await {
        Ok(snapshot) => snapshot,
        Err(err) => {
            tracing::error!(entity = %entity_id, error = %err, "could not load an entity");
            return None;
        }
    };
    let mut behavior = (registration.new)();
    let broken = behavior.restore(state.as_ref()).err();
    if let Some(reason) = &broken {
        tracing::error!(entity = %entity_id, %reason, "an entity's stored state cannot be used: its operations fail until it is fixed");
    }
    Some((
        Live {
            behavior,
            state,
            broken,
            version,
            locked_by,
        },
        pending,
    ))
}

/// Runs, in arrival order, the queued operations that may run now, and describes their
/// commit; `None` if none may (every one waits for a lock another orchestration holds).
///
/// While an orchestration holds the entity's lock (a critical section), only its own
/// operations run; the others wait in the queue, in order, and run once it unlocks.
async fn run_batch(
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
    let mut responses = Vec::new();
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
        state: entity
            .state
            .clone()
            .map_or(EntityState::Deleted, EntityState::Set),
        locked_by: entity.locked_by.clone(),
        signals,
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
        Ok(Ok(done)) => match entity.behavior.snapshot() {
            Ok(state) => {
                let size = state.as_ref().map_or(0, |s| s.as_str().len());
                let limit = shared.limits.max_payload_bytes;
                if size <= limit {
                    entity.state = state;
                    return Ok(done);
                }
                format!("the state would be {size} bytes, over the payload limit of {limit} bytes")
            }
            Err(err) => format!("the state does not serialize: {err}"),
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

/// Entities read per page by [`recover`].
const RECOVERY_PAGE: usize = 1_000;

/// Startup recovery of entities: starts the task of every entity with operations an earlier
/// process left queued (each task reads its own queue). Returns false if it stopped early.
pub(crate) async fn recover(shared: Arc<Shared>, mut stopped: StopSignal) -> bool {
    let mut after = String::new();
    loop {
        if stopped.borrow().is_some() {
            return false;
        }
        let page = tokio::select! {
            biased;
            _ = stopping(&mut stopped) => return false,
            page = shared.store.entities_with_pending(&after, RECOVERY_PAGE) => page,
        };
        match page {
            Ok(ids) => {
                let Some(last) = ids.last() else {
                    return true;
                };
                after = last.clone();
                for entity_id in &ids {
                    Entities::wake(&shared, entity_id);
                }
                if ids.len() < RECOVERY_PAGE {
                    return true;
                }
            }
            Err(err) if err.class() == ErrorClass::Fatal => {
                // A backend without entities has none to recover.
                tracing::debug!(error = %err, "no entity recovery");
                return true;
            }
            Err(err) => {
                tracing::warn!(error = %err, "could not read the entities with queued operations; retrying");
                tokio::select! {
                    biased;
                    _ = stopping(&mut stopped) => return false,
                    () = tokio::time::sleep(FAILED_BACKOFF) => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::NewEntityMessage;

    fn message(id: i64) -> EntityMessage {
        EntityMessage {
            id,
            message: NewEntityMessage {
                entity_id: "@e@k".into(),
                operation: "op".into(),
                input: Payload::null(),
                sender: String::new(),
                created_ms: 0,
                reply: None,
            },
        }
    }

    #[test]
    fn a_load_drops_what_a_batch_with_a_lost_answer_consumed() {
        let mut queue = Queue::default();
        for id in [4, 5, 6] {
            queue.admit(message(id));
        }
        // The batch [4, 5, 6] committed but its answer was lost; message 7 came since.
        queue.loaded(vec![message(7)]);
        assert_eq!(queue.pending.keys().copied().collect::<Vec<_>>(), [7]);
        // A late copy of a consumed message, or of one the load read, is not taken again.
        queue.admit(message(5));
        queue.admit(message(7));
        queue.admit(message(8));
        assert_eq!(queue.pending.keys().copied().collect::<Vec<_>>(), [7, 8]);
        // Nothing stored: what memory held was consumed.
        queue.loaded(Vec::new());
        assert!(queue.pending.is_empty());
        queue.admit(message(8));
        assert!(queue.pending.is_empty());
    }
}
