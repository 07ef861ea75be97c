//! In-process dispatch: which instance has messages waiting, which live executions are cached,
//! and who is waiting for an instance to finish.
//!
//! Work is handed over the moment its write is durable (no polling): a committed message goes
//! to its instance's slot, and an instance with messages is queued for an orchestration worker
//! exactly once, so its steps never run concurrently.

use crate::history::HistoryEvent;
use crate::replay::Execution;
use crate::store::{ActivityWorkItem, Message, TimerWorkItem};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::{mpsc, oneshot};

/// Where an inbound event is held until the step that consumes it commits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    /// A stored message; the consuming step deletes it.
    Message(i64),
    /// An activity's result, so far only in memory: the consuming step records it and deletes
    /// the activity's work item in one transaction (one fsync instead of two). Lost in a crash,
    /// it is recomputed: the work item is still in the store.
    Activity(i64),
}

/// An event on its way into an instance's history.
#[derive(Clone, Debug)]
pub(crate) struct Inbound {
    pub event: HistoryEvent,
    pub source: Source,
    /// The run it belongs to; empty for events addressed to whatever run is current.
    pub execution_id: Arc<str>,
}

/// An instance known to the dispatcher: events not yet consumed and, if hot, its execution.
#[derive(Default)]
struct Slot {
    messages: Vec<Inbound>,
    execution: Option<Box<Execution>>,
    /// Queued for, or held by, an orchestration worker.
    claimed: bool,
    /// The instance is suspended: its messages wait here (and in the store), no step runs,
    /// and they do not count in the backlog. Never set while claimed.
    suspended: bool,
    /// Counts the client operations that changed the instance (see [`Dispatcher::changed`]):
    /// a worker that found the instance suspended parks it only if none came since.
    changes: u64,
}

/// The receiving ends the workers drain.
pub(crate) struct Queues {
    /// Instances with messages waiting.
    pub ready: mpsc::UnboundedReceiver<String>,
    /// Activities to run.
    pub activities: mpsc::UnboundedReceiver<ActivityWorkItem>,
    /// Timers to arm, the timers of one step together.
    pub timers: mpsc::UnboundedReceiver<Vec<TimerWorkItem>>,
}

/// What an orchestration worker takes to run one step.
pub(crate) struct Claim {
    pub messages: Vec<Inbound>,
    pub execution: Option<Box<Execution>>,
}

pub(crate) struct Dispatcher {
    slots: Mutex<HashMap<String, Slot>>,
    cached: Mutex<usize>,
    cache_capacity: usize,
    ready: mpsc::UnboundedSender<String>,
    activities: mpsc::UnboundedSender<ActivityWorkItem>,
    timers: mpsc::UnboundedSender<Vec<TimerWorkItem>>,
    waiters: Mutex<HashMap<String, Vec<oneshot::Sender<()>>>>,
    /// Messages held in slots, not yet claimed by a worker (for recovery's back-pressure).
    held_messages: AtomicUsize,
    /// Activities queued, not yet started (for recovery's back-pressure).
    queued_activities: AtomicUsize,
}

impl Dispatcher {
    pub(crate) fn new(cache_capacity: usize) -> (Self, Queues) {
        let (ready, ready_rx) = mpsc::unbounded_channel();
        let (activities, activities_rx) = mpsc::unbounded_channel();
        let (timers, timers_rx) = mpsc::unbounded_channel();
        let dispatcher = Dispatcher {
            slots: Mutex::new(HashMap::new()),
            cached: Mutex::new(0),
            cache_capacity,
            ready,
            activities,
            timers,
            waiters: Mutex::new(HashMap::new()),
            held_messages: AtomicUsize::new(0),
            queued_activities: AtomicUsize::new(0),
        };
        let queues = Queues {
            ready: ready_rx,
            activities: activities_rx,
            timers: timers_rx,
        };
        (dispatcher, queues)
    }

    /// Hands a durable message to its instance, queueing the instance if it is idle.
    pub(crate) fn deliver(&self, message: Message) {
        let inbound = Inbound {
            event: message.event,
            source: Source::Message(message.id),
            execution_id: message.execution_id,
        };
        self.push(message.instance_id, inbound);
    }

    /// Hands a finished activity's result (`TaskCompleted` / `TaskFailed`) to its instance.
    pub(crate) fn deliver_activity_result(
        &self,
        instance_id: String,
        work_item_id: i64,
        execution_id: Arc<str>,
        event: HistoryEvent,
    ) {
        let inbound = Inbound {
            event,
            source: Source::Activity(work_item_id),
            execution_id,
        };
        self.push(instance_id, inbound);
    }

    fn push(&self, instance_id: String, inbound: Inbound) {
        let mut slots = self.slots.lock();
        let slot = slots.entry(instance_id.clone()).or_default();
        let in_memory_only = matches!(inbound.source, Source::Activity(_));
        slot.messages.push(inbound);
        if slot.suspended {
            if !in_memory_only {
                // Kept for the resume; the store has it too.
                return;
            }
            // An activity result is only in memory: a worker stores it (and parks the
            // instance again), so that a crash while suspended does not lose it.
            slot.suspended = false;
            self.held_messages
                .fetch_add(slot.messages.len() - 1, Ordering::Relaxed);
        }
        self.held_messages.fetch_add(1, Ordering::Relaxed);
        if !slot.claimed {
            slot.claimed = true;
            drop(slots);
            // The receiver lives as long as the runtime; after shutdown the work stays in the
            // store and is recovered at the next start.
            let _ = self.ready.send(instance_id);
        }
    }

    /// Hands a durable activity work item to the activity workers.
    pub(crate) fn enqueue_activity(&self, item: ActivityWorkItem) {
        self.queued_activities.fetch_add(1, Ordering::Relaxed);
        let _ = self.activities.send(item);
    }

    /// An activity left the queue and started.
    pub(crate) fn activity_started(&self) {
        self.queued_activities.fetch_sub(1, Ordering::Relaxed);
    }

    /// Messages waiting in slots plus activities waiting in the queue: the work in memory that
    /// no worker has taken yet.
    pub(crate) fn backlog(&self) -> (usize, usize) {
        (
            self.held_messages.load(Ordering::Relaxed),
            self.queued_activities.load(Ordering::Relaxed),
        )
    }

    /// Hands the durable timers one step armed to the timer service, together: timers that
    /// are due already must reach it at once to fire in due order.
    pub(crate) fn arm_timers(&self, timers: Vec<TimerWorkItem>) {
        if !timers.is_empty() {
            let _ = self.timers.send(timers);
        }
    }

    /// Takes the waiting messages and cached execution of a claimed instance.
    pub(crate) fn claim(&self, instance_id: &str) -> Claim {
        let mut slots = self.slots.lock();
        let Some(slot) = slots.get_mut(instance_id) else {
            return Claim {
                messages: Vec::new(),
                execution: None,
            };
        };
        let execution = slot.execution.take();
        if execution.is_some() {
            *self.cached.lock() -= 1;
        }
        let messages = std::mem::take(&mut slot.messages);
        self.held_messages
            .fetch_sub(messages.len(), Ordering::Relaxed);
        Claim {
            messages,
            execution,
        }
    }

    /// Returns a claimed instance after a step. Returns true if more messages arrived meanwhile
    /// (the caller keeps the claim and runs another step); otherwise releases the claim,
    /// caching the execution if there is room.
    pub(crate) fn release(
        &self,
        instance_id: &str,
        execution: Option<Box<Execution>>,
        unconsumed: Vec<Inbound>,
    ) -> (bool, Option<Box<Execution>>) {
        let mut slots = self.slots.lock();
        let Entry::Occupied(mut entry) = slots.entry(instance_id.to_string()) else {
            return (false, None);
        };
        let slot = entry.get_mut();
        self.held_messages
            .fetch_add(unconsumed.len(), Ordering::Relaxed);
        if !unconsumed.is_empty() {
            let newer = std::mem::replace(&mut slot.messages, unconsumed);
            slot.messages.extend(newer);
        }
        if !slot.messages.is_empty() {
            return (true, execution);
        }
        let mut cached = self.cached.lock();
        match execution {
            Some(execution) if !execution.is_finished() && *cached < self.cache_capacity => {
                *cached += 1;
                slot.execution = Some(execution);
                slot.claimed = false;
            }
            _ => {
                // Nothing waiting and nothing cached: an idle instance costs no memory.
                entry.remove();
            }
        }
        (false, None)
    }

    /// Puts `messages` back and releases the claim without queueing the instance: it runs
    /// again when its next message arrives. Returns true (and keeps the claim) if a message
    /// arrived meanwhile.
    pub(crate) fn park(&self, instance_id: &str, messages: Vec<Inbound>) -> bool {
        let mut slots = self.slots.lock();
        let slot = slots.entry(instance_id.to_string()).or_default();
        self.held_messages
            .fetch_add(messages.len(), Ordering::Relaxed);
        if !slot.messages.is_empty() {
            let newer = std::mem::replace(&mut slot.messages, messages);
            slot.messages.extend(newer);
            return true;
        }
        slot.messages = messages;
        slot.claimed = false;
        false
    }

    /// How many client operations changed the instance so far, in this process (see
    /// [`park_suspended`](Self::park_suspended)).
    pub(crate) fn changes(&self, instance_id: &str) -> u64 {
        self.slots
            .lock()
            .get(instance_id)
            .map_or(0, |slot| slot.changes)
    }

    /// Parks a claimed instance that the store says is suspended: `messages` (all stored)
    /// wait in its slot, with any that arrive later, until a client operation changes it.
    /// Returns true (and keeps the claim) if one did since the worker read `changes` before
    /// it looked at the status (the status it saw may be stale, so it must look again), or if
    /// an activity result arrived meanwhile (it must be stored before parking).
    pub(crate) fn park_suspended(
        &self,
        instance_id: &str,
        messages: Vec<Inbound>,
        changes: u64,
    ) -> bool {
        let mut slots = self.slots.lock();
        let slot = slots.entry(instance_id.to_string()).or_default();
        // An activity result that arrived meanwhile is only in memory: the worker stores it
        // first.
        let unstored = slot
            .messages
            .iter()
            .any(|m| matches!(m.source, Source::Activity(_)));
        if slot.changes != changes || unstored {
            self.held_messages
                .fetch_add(messages.len(), Ordering::Relaxed);
            let newer = std::mem::replace(&mut slot.messages, messages);
            slot.messages.extend(newer);
            return true;
        }
        // The newer messages were counted in the backlog when they arrived; parked, they
        // are not.
        self.held_messages
            .fetch_sub(slot.messages.len(), Ordering::Relaxed);
        let newer = std::mem::replace(&mut slot.messages, messages);
        slot.messages.extend(newer);
        if let Some(execution) = slot.execution.take() {
            drop(execution);
            *self.cached.lock() -= 1;
        }
        slot.suspended = true;
        slot.claimed = false;
        false
    }

    /// A client operation changed the instance's status (terminate, suspend, resume, restart):
    /// its cached execution is stale and dropped (a claimed one is fenced at its commit),
    /// whoever waits for it looks again, and a parked (suspended) instance runs its waiting
    /// messages: a resumed one processes them, a terminated one consumes them.
    pub(crate) fn changed(&self, instance_id: &str) {
        {
            let mut slots = self.slots.lock();
            if let Some(slot) = slots.get_mut(instance_id) {
                slot.changes += 1;
                if let Some(execution) = slot.execution.take() {
                    drop(execution);
                    *self.cached.lock() -= 1;
                }
                if slot.suspended {
                    slot.suspended = false;
                    self.held_messages
                        .fetch_add(slot.messages.len(), Ordering::Relaxed);
                    if !slot.claimed && !slot.messages.is_empty() {
                        slot.claimed = true;
                        let _ = self.ready.send(instance_id.to_string());
                    }
                }
                if !slot.claimed && slot.messages.is_empty() {
                    slots.remove(instance_id);
                }
            }
        }
        self.finished(instance_id);
    }

    /// False when the cache is off (capacity 0): every step then replays from history, even
    /// one that follows another within a claim.
    pub(crate) fn keeps_executions(&self) -> bool {
        self.cache_capacity > 0
    }

    /// Forgets a claimed instance and its in-memory messages (they stay in the store).
    pub(crate) fn abandon(&self, instance_id: &str) {
        if let Some(slot) = self.slots.lock().remove(instance_id) {
            self.held_messages
                .fetch_sub(slot.messages.len(), Ordering::Relaxed);
            if slot.execution.is_some() {
                *self.cached.lock() -= 1;
            }
        }
    }

    /// Registers interest in `instance_id` finishing.
    pub(crate) fn watch(&self, instance_id: &str) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        let mut waiters = self.waiters.lock();
        let list = waiters.entry(instance_id.to_string()).or_default();
        list.retain(|w| !w.is_closed());
        list.push(tx);
        rx
    }

    /// Drops the registrations of callers that stopped waiting for `instance_id`.
    pub(crate) fn forget_abandoned_waits(&self, instance_id: &str) {
        let mut waiters = self.waiters.lock();
        if let Some(list) = waiters.get_mut(instance_id) {
            list.retain(|w| !w.is_closed());
            if list.is_empty() {
                waiters.remove(instance_id);
            }
        }
    }

    /// Wakes everyone waiting for `instance_id`.
    pub(crate) fn finished(&self, instance_id: &str) {
        let waiting = self.waiters.lock().remove(instance_id);
        for waiter in waiting.into_iter().flatten() {
            let _ = waiter.send(());
        }
    }
}
