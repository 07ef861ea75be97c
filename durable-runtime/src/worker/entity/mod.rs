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

mod batch;
mod resend;

use super::{Shared, StopSignal, stopping};
use crate::entity::{EntityBehavior, EntityId, EntityRegistration};
use crate::payload::Payload;
use crate::store::{
    CorruptEntityMessage, EntityCommit, EntityMessage, EntitySnapshot, ErrorClass, LOCK_OPERATION,
    NewEntityMessage, UNLOCK_OPERATION, Write,
};
use crate::worker::hooks::Busy;
use batch::{fail_calls_to_unknown, run_batch};
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
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
    tasks: Mutex<HashMap<Arc<str>, mpsc::UnboundedSender<Delivered>>>,
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
        let message = Delivered {
            message,
            _busy: shared.busy(),
        };
        let mut tasks = shared.entities.tasks.lock();
        let message = match tasks.get(message.message.message.entity_id.as_str()) {
            Some(task) => match task.send(message) {
                Ok(()) => return,
                // The task ended without retiring (it panicked): start another.
                Err(unsent) => unsent.0,
            },
            None => message,
        };
        let entity_id: Arc<str> = message.message.message.entity_id.as_str().into();
        let (sender, inbox) = mpsc::unbounded_channel();
        let _ = sender.send(message);
        tasks.insert(entity_id.clone(), sender);
        tokio::spawn(run(shared.clone(), entity_id, inbox, None));
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
        // Busy from before the task exists: the operations it is woken for are in the store.
        let working = shared.busy();
        tokio::spawn(run(shared.clone(), entity_id, inbox, Some(working)));
    }

    /// Removes the task's entry if nothing waits in its inbox; under the lock deliveries take,
    /// so no message is sent to a task that is gone.
    fn retire_if_idle(&self, entity_id: &str, inbox: &mpsc::UnboundedReceiver<Delivered>) -> bool {
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

/// A message handed to an entity's task, with the guard that keeps a test harness's clock
/// still until the task has taken it in.
struct Delivered {
    message: EntityMessage,
    _busy: Busy,
}

/// An entity loaded in memory.
struct Live {
    behavior: Box<dyn EntityBehavior>,
    /// The state as of the last operation, encoded (what a failed operation goes back to).
    state: Option<Payload>,
    /// Why the stored state cannot be used (it does not decode): every operation fails with
    /// it, and the state is kept as stored.
    broken: Option<String>,
    /// The stored state is not even JSON (so `state` does not hold it): batches commit it
    /// unchanged, never overwriting the corrupt row (it is kept for repair).
    unreadable: bool,
    version: u64,
    /// The orchestration holding the entity's lock.
    locked_by: Option<String>,
}

/// The operations waiting for one entity, by id (arrival order).
#[derive(Default)]
struct Queue {
    pending: BTreeMap<i64, EntityMessage>,
    /// Queued rows that do not decode (read by the last load): the next batch consumes them
    /// as failed.
    corrupt: BTreeMap<i64, CorruptEntityMessage>,
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
    fn loaded(&mut self, stored: Vec<EntityMessage>, corrupt: Vec<CorruptEntityMessage>) {
        let newest_in_memory = self.pending.keys().next_back().copied().unwrap_or(0);
        let newest_stored = stored.last().map_or(0, |m| m.id);
        let newest_corrupt = corrupt.last().map_or(0, |m| m.id);
        self.known_upto = self
            .known_upto
            .max(newest_in_memory)
            .max(newest_stored)
            .max(newest_corrupt);
        self.pending = stored.into_iter().map(|m| (m.id, m)).collect();
        self.corrupt = corrupt.into_iter().map(|m| (m.id, m)).collect();
    }

    fn is_empty(&self) -> bool {
        self.pending.is_empty() && self.corrupt.is_empty()
    }
}

/// The task of one entity: loads it, then runs batches until it is idle or the runtime stops.
async fn run(
    shared: Arc<Shared>,
    entity_id: Arc<str>,
    mut inbox: mpsc::UnboundedReceiver<Delivered>,
    mut working: Option<Busy>,
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
    // The last batch whose commit failed: the store may have applied it (its answer lost).
    let mut unanswered: Option<EntityCommit> = None;
    loop {
        if stop.borrow().is_some() {
            break;
        }
        if !shared.holds(&entity_id) {
            // Its partition went to another runtime (a shared store), which adopts its queue:
            // what this task holds in memory is in the store.
            tracing::info!(entity = %entity_id, "entity left to the holder of its partition");
            break;
        }
        if live.is_none() {
            match load(&shared, &entity_id, registration).await {
                Some((loaded, stored, corrupt)) => {
                    // Only this task commits the entity: one version more is that batch.
                    if let Some(commit) = unanswered.take()
                        && loaded.version == commit.expected_version + 1
                    {
                        tokio::spawn(resend::resend(shared.clone(), entity_id.clone(), commit));
                    }
                    live = Some(loaded);
                    queue.loaded(stored, corrupt);
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
        while let Ok(delivered) = inbox.try_recv() {
            admit(&shared, &mut queue, &mut working, delivered);
        }
        let Some(entity) = live.as_mut() else {
            continue;
        };
        if queue.is_empty() {
            // Nothing to run: a test harness's clock may move.
            working = None;
            tokio::select! {
                biased;
                _ = stopping(&mut stop) => break,
                message = inbox.recv() => match message {
                    Some(delivered) => admit(&shared, &mut queue, &mut working, delivered),
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
        // An operation that does not finish must not keep the task (and the store with it)
        // past the stop: the batch is not committed, so its operations run at the next start.
        let batch = tokio::select! {
            biased;
            _ = stopping(&mut stop) => break,
            batch = run_batch(&shared, &id, &entity_id, entity, &queue) => batch,
        };
        let Some((commit, ran)) = batch else {
            // Every queued operation waits for a lock: wait for more (the unlock), which the
            // lock holder's own work counts for.
            working = None;
            tokio::select! {
                biased;
                _ = stopping(&mut stop) => break,
                message = inbox.recv() => match message {
                    Some(delivered) => admit(&shared, &mut queue, &mut working, delivered),
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
                    queue.corrupt.remove(message_id);
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
                unanswered = Some(commit);
            }
        }
    }
    shared.entities.retire(&entity_id);
}

/// Takes a delivered message into the queue; the task counts as busy for a test harness from
/// before the message's own guard drops until its queue is empty.
fn admit(shared: &Shared, queue: &mut Queue, working: &mut Option<Busy>, delivered: Delivered) {
    if working.is_none() {
        *working = Some(shared.busy());
    }
    queue.admit(delivered.message);
}

/// Reads the entity and its queue (the rows that decode, and those that do not); `None` if
/// the store refuses now (logged).
async fn load(
    shared: &Arc<Shared>,
    entity_id: &str,
    registration: &'static EntityRegistration,
) -> Option<(Live, Vec<EntityMessage>, Vec<CorruptEntityMessage>)> {
    let EntitySnapshot {
        state,
        corrupt_state,
        version,
        locked_by,
        mut pending,
        corrupt,
    } = match shared.store.load_entity(entity_id).await {
        Ok(snapshot) => snapshot,
        Err(err) => {
            tracing::error!(entity = %entity_id, error = %err, "could not load an entity");
            return None;
        }
    };
    let mut behavior = (registration.new)();
    let unreadable = corrupt_state.is_some();
    let broken = match corrupt_state {
        Some(reason) => Some(reason),
        None => behavior.restore(state.as_ref()).err().map(|err| {
            format!("the stored state of entity '{entity_id}' does not fit the entity: {err}")
        }),
    };
    if let Some(reason) = &broken {
        tracing::error!(entity = %entity_id, %reason, "an entity's stored state cannot be used: its operations fail until it is repaired");
    }
    let corrupt = salvage_locking(entity_id, &mut pending, corrupt);
    Some((
        Live {
            behavior,
            state,
            broken,
            unreadable,
            version,
            locked_by,
        },
        pending,
        corrupt,
    ))
}

/// A lock request whose only unreadable part is its input (which it does not use), and an
/// unlock whose operation and sender can be read (it uses nothing else: it answers no one),
/// still run, so a corrupt row cannot leave an entity locked forever; the other corrupt rows
/// are returned, to be consumed as failed.
fn salvage_locking(
    entity_id: &str,
    pending: &mut Vec<EntityMessage>,
    corrupt: Vec<CorruptEntityMessage>,
) -> Vec<CorruptEntityMessage> {
    let mut rest = Vec::new();
    for bad in corrupt {
        match (&bad.operation, &bad.sender) {
            (Some(operation), Some(sender))
                if operation == UNLOCK_OPERATION
                    || (operation == LOCK_OPERATION && bad.only_input) =>
            {
                pending.push(EntityMessage {
                    id: bad.id,
                    message: NewEntityMessage {
                        entity_id: entity_id.to_string(),
                        operation: operation.clone(),
                        input: Payload::null(),
                        sender: sender.clone(),
                        created_ms: 0,
                        reply: (operation == LOCK_OPERATION)
                            .then(|| bad.reply.clone())
                            .flatten(),
                    },
                });
            }
            _ => rest.push(bad),
        }
    }
    pending.sort_by_key(|message| message.id);
    rest
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
        queue.loaded(vec![message(7)], Vec::new());
        assert_eq!(queue.pending.keys().copied().collect::<Vec<_>>(), [7]);
        // A late copy of a consumed message, or of one the load read, is not taken again.
        queue.admit(message(5));
        queue.admit(message(7));
        queue.admit(message(8));
        assert_eq!(queue.pending.keys().copied().collect::<Vec<_>>(), [7, 8]);
        // Nothing stored: what memory held was consumed.
        queue.loaded(Vec::new(), Vec::new());
        assert!(queue.pending.is_empty());
        queue.admit(message(8));
        assert!(queue.pending.is_empty());
    }
}
