//! In-process dispatch: which instance has messages waiting, which live executions are cached,
//! and who is waiting for an instance to finish.
//!
//! Work is handed over the moment its write is durable (no polling): a committed message goes
//! to its instance's slot, and an instance with messages is queued for an orchestration worker
//! exactly once, so its steps never run concurrently.
//!
//! Idle instances keep their execution in memory (the hot cache) up to the cache capacity; when
//! it is full, the least recently used idle one is evicted (it replays from its history when
//! its next message arrives), so the instances in use stay hot however many sit idle.

mod fair;

pub(crate) use fair::FairQueue;

use crate::history::HistoryEvent;
use crate::replay::Execution;
use crate::store::{ActivityWorkItem, Message, TimerWorkItem};
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use tokio::sync::{mpsc, oneshot};

/// Where an inbound event is held until the step that consumes it commits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Source {
    /// A stored message; the consuming step deletes it.
    Message(i64),
    /// An activity's result, so far only in memory: the consuming step records it and deletes
    /// the activity's work item in one transaction (one fsync instead of two). Lost in a crash,
    /// it is recomputed: the work item is still in the store.
    Activity(i64),
    /// A due timer, fired so far only in memory: the consuming step records `TimerFired` and
    /// deletes the timer's row in one transaction, so firing costs no write of its own (and a
    /// step that wakes on a timer waits for one commit, not two). Lost in a crash, it fires
    /// again at the next start: its row is still in the store.
    Timer(i64),
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
    /// Its key in [`Slots::idle`] while its execution is cached and it is idle.
    idle_since: Option<u64>,
    /// The instance is suspended: its messages wait here (and in the store), no step runs,
    /// and they do not count in the backlog. Never set while claimed.
    suspended: bool,
    /// The instance has not started yet (its start is scheduled): its messages wait here and
    /// do not count in the backlog until the next message arrives and claims it. Never set
    /// while claimed.
    awaiting_start: bool,
    /// Counts the client operations that changed the instance (see [`Dispatcher::changed`]):
    /// a worker that found the instance suspended parks it only if none came since.
    changes: u64,
}

/// The instances known to the dispatcher, and the order their cached executions were last used
/// in.
#[derive(Default)]
struct Slots {
    /// Keyed by shared ids: the idle order names its instances by the same allocation.
    by_id: HashMap<Arc<str>, Slot>,
    /// Idle instances whose execution is cached, least recently used first, by a stamp that
    /// grows at each release.
    idle: BTreeMap<u64, Arc<str>>,
    next_stamp: u64,
}

impl Slots {
    /// The instance's slot, created empty if it has none (its id is allocated only then).
    fn slot<'a>(by_id: &'a mut HashMap<Arc<str>, Slot>, instance_id: &str) -> &'a mut Slot {
        if !by_id.contains_key(instance_id) {
            by_id.insert(Arc::from(instance_id), Slot::default());
        }
        by_id
            .get_mut(instance_id)
            .unwrap_or_else(|| unreachable!("the slot was just inserted"))
    }

    /// Takes the slot's cached execution out of the idle order (it is about to be used).
    fn unidle(idle: &mut BTreeMap<u64, Arc<str>>, slot: &mut Slot) {
        if let Some(stamp) = slot.idle_since.take() {
            idle.remove(&stamp);
        }
    }
}

/// How the hot cache fares: for tests and diagnostics.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheCounters {
    /// Claims that found the instance's execution in memory.
    pub hits: u64,
    /// Executions rebuilt by replaying their history.
    pub replays: u64,
    /// Idle executions dropped to make room for another.
    pub evictions: u64,
}

/// The receiving ends the workers drain.
pub(crate) struct Queues {
    /// Instances with messages waiting.
    pub ready: mpsc::UnboundedReceiver<String>,
    /// Activities to run, taken from each instance in turn.
    pub activities: Arc<FairQueue>,
    /// Timers to arm, the timers of one step together.
    pub timers: mpsc::UnboundedReceiver<Vec<TimerWorkItem>>,
}

/// What an orchestration worker takes to run one step.
pub(crate) struct Claim {
    pub messages: Vec<Inbound>,
    pub execution: Option<Box<Execution>>,
}

pub(crate) struct Dispatcher {
    slots: Mutex<Slots>,
    cache_capacity: usize,
    hits: AtomicU64,
    replays: AtomicU64,
    evictions: AtomicU64,
    ready: mpsc::UnboundedSender<String>,
    activities: Arc<FairQueue>,
    timers: mpsc::UnboundedSender<Vec<TimerWorkItem>>,
    waiters: Mutex<HashMap<String, Vec<oneshot::Sender<()>>>>,
    /// Messages held in slots, not yet claimed by a worker (for recovery's back-pressure).
    held_messages: AtomicUsize,
    /// Activities queued, not yet started (for recovery's back-pressure).
    queued_activities: AtomicUsize,
    /// Work item ids of the activities queued or running, on a store shared by many runtimes
    /// (`None` otherwise: only adoption hands work over twice): a shared store's adoption hands
    /// over again the rows of partitions whose work was marked unseen (a claim, a lapse), and
    /// an activity in hand must not run twice.
    activities_in_hand: Option<Mutex<HashSet<i64>>>,
}

impl Dispatcher {
    /// A dispatcher keeping up to `cache_capacity` idle executions; `shared` when the store is
    /// shared by many runtimes (see [`Leases`](crate::store::Leases)).
    pub(crate) fn new(cache_capacity: usize, shared: bool) -> (Self, Queues) {
        let (ready, ready_rx) = mpsc::unbounded_channel();
        let activities = Arc::new(FairQueue::default());
        let (timers, timers_rx) = mpsc::unbounded_channel();
        let dispatcher = Dispatcher {
            slots: Mutex::new(Slots::default()),
            cache_capacity,
            hits: AtomicU64::new(0),
            replays: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
            ready,
            activities: activities.clone(),
            timers,
            waiters: Mutex::new(HashMap::new()),
            held_messages: AtomicUsize::new(0),
            queued_activities: AtomicUsize::new(0),
            activities_in_hand: shared.then(|| Mutex::new(HashSet::new())),
        };
        let queues = Queues {
            ready: ready_rx,
            activities,
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

    /// Hands a due timer's firing (`TimerFired`) to its instance, in memory (see
    /// [`Source::Timer`]).
    pub(crate) fn deliver_fired_timer(&self, timer: TimerWorkItem) {
        let inbound = Inbound {
            event: HistoryEvent::TimerFired {
                task_id: timer.task_id,
            },
            source: Source::Timer(timer.id),
            execution_id: timer.execution_id,
        };
        self.push(timer.instance_id, inbound);
    }

    fn push(&self, instance_id: String, inbound: Inbound) {
        let mut slots = self.slots.lock();
        let Slots { by_id, idle, .. } = &mut *slots;
        let slot = Slots::slot(by_id, &instance_id);
        let in_memory_only = matches!(inbound.source, Source::Activity(_) | Source::Timer(_));
        slot.messages.push(inbound);
        if slot.awaiting_start {
            // The parked messages count again: this one claims the instance to run them all.
            slot.awaiting_start = false;
            self.held_messages
                .fetch_add(slot.messages.len() - 1, Ordering::Relaxed);
        }
        if slot.suspended {
            if !in_memory_only {
                // Kept for the resume; the store has it too.
                return;
            }
            // An activity result or a timer firing is only in memory: a worker stores it (and
            // parks the instance again), so that a crash while suspended does not lose it.
            slot.suspended = false;
            self.held_messages
                .fetch_add(slot.messages.len() - 1, Ordering::Relaxed);
        }
        self.held_messages.fetch_add(1, Ordering::Relaxed);
        if !slot.claimed {
            slot.claimed = true;
            // Busy now: not to be evicted before its step takes the execution.
            Slots::unidle(idle, slot);
            drop(slots);
            // The receiver lives as long as the runtime; after shutdown the work stays in the
            // store and is recovered at the next start.
            let _ = self.ready.send(instance_id);
        }
    }

    /// Hands a durable activity work item to the activity workers.
    pub(crate) fn enqueue_activity(&self, item: ActivityWorkItem) {
        self.enqueue_activities(vec![item]);
    }

    /// Hands the activities one step scheduled to the activity workers, together (one lock).
    pub(crate) fn enqueue_activities(&self, mut items: Vec<ActivityWorkItem>) {
        if let Some(in_hand) = &self.activities_in_hand {
            let mut in_hand = in_hand.lock();
            items.retain(|item| in_hand.insert(item.id));
        }
        if !items.is_empty() {
            self.queued_activities
                .fetch_add(items.len(), Ordering::Relaxed);
            self.activities.push_all(items);
        }
    }

    /// An activity left the hands of this runtime (it ran, or was left to another runtime).
    pub(crate) fn activity_done(&self, id: i64) {
        if let Some(in_hand) = &self.activities_in_hand {
            in_hand.lock().remove(&id);
        }
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
        let Slots { by_id, idle, .. } = &mut *slots;
        let Some(slot) = by_id.get_mut(instance_id) else {
            return Claim {
                messages: Vec::new(),
                execution: None,
            };
        };
        Slots::unidle(idle, slot);
        let execution = slot.execution.take();
        if execution.is_some() {
            self.hits.fetch_add(1, Ordering::Relaxed);
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
    /// caching the execution (as the most recently used; the least recently used idle one is
    /// evicted if the cache is full).
    pub(crate) fn release(
        &self,
        instance_id: &str,
        execution: Option<Box<Execution>>,
        unconsumed: Vec<Inbound>,
    ) -> (bool, Option<Box<Execution>>) {
        let mut slots = self.slots.lock();
        let Slots {
            by_id,
            idle,
            next_stamp,
        } = &mut *slots;
        let Some(key) = by_id.get_key_value(instance_id).map(|(key, _)| key.clone()) else {
            return (false, None);
        };
        let Some(slot) = by_id.get_mut(instance_id) else {
            return (false, None);
        };
        self.held_messages
            .fetch_add(unconsumed.len(), Ordering::Relaxed);
        if !unconsumed.is_empty() {
            let newer = std::mem::replace(&mut slot.messages, unconsumed);
            slot.messages.extend(newer);
        }
        if !slot.messages.is_empty() {
            return (true, execution);
        }
        let evicted = match execution {
            Some(execution) if !execution.is_finished() && self.cache_capacity > 0 => {
                let stamp = *next_stamp;
                *next_stamp += 1;
                slot.execution = Some(execution);
                slot.claimed = false;
                slot.idle_since = Some(stamp);
                idle.insert(stamp, key);
                if idle.len() > self.cache_capacity {
                    Self::evict_least_recently_used(by_id, idle)
                } else {
                    None
                }
            }
            _ => {
                // Nothing waiting and nothing cached: an idle instance costs no memory.
                by_id.remove(instance_id);
                None
            }
        };
        drop(slots);
        if evicted.is_some() {
            self.evictions.fetch_add(1, Ordering::Relaxed);
        }
        // Dropped outside the lock: a large execution takes a while to free.
        drop(evicted);
        (false, None)
    }

    /// Drops the execution of the idle instance used least recently (and its slot: an idle
    /// slot holds nothing else).
    fn evict_least_recently_used(
        by_id: &mut HashMap<Arc<str>, Slot>,
        idle: &mut BTreeMap<u64, Arc<str>>,
    ) -> Option<Box<Execution>> {
        let (_, instance_id) = idle.pop_first()?;
        let slot = by_id.remove(&instance_id)?;
        debug_assert!(slot.messages.is_empty() && !slot.claimed);
        tracing::trace!(instance = %instance_id, "evicted from the cache");
        slot.execution
    }

    /// An execution was rebuilt by replaying its history.
    pub(crate) fn replayed(&self) {
        self.replays.fetch_add(1, Ordering::Relaxed);
    }

    /// How the hot cache fared so far.
    pub(crate) fn cache_counters(&self) -> CacheCounters {
        CacheCounters {
            hits: self.hits.load(Ordering::Relaxed),
            replays: self.replays.load(Ordering::Relaxed),
            evictions: self.evictions.load(Ordering::Relaxed),
        }
    }

    /// Puts `messages` back and releases the claim without queueing the instance: it runs
    /// again when its next message arrives. Returns true (and keeps the claim) if a message
    /// arrived meanwhile.
    pub(crate) fn park(&self, instance_id: &str, messages: Vec<Inbound>) -> bool {
        let mut slots = self.slots.lock();
        let slot = Slots::slot(&mut slots.by_id, instance_id);
        if !slot.messages.is_empty() {
            self.held_messages
                .fetch_add(messages.len(), Ordering::Relaxed);
            let newer = std::mem::replace(&mut slot.messages, messages);
            slot.messages.extend(newer);
            return true;
        }
        // Parked, they are not waiting for a worker: they do not count in the backlog (which
        // a test harness reads as work in flight, and the timer service as steps behind).
        slot.messages = messages;
        slot.awaiting_start = !slot.messages.is_empty();
        slot.claimed = false;
        false
    }

    /// How many client operations changed the instance so far, in this process (see
    /// [`park_suspended`](Self::park_suspended)).
    pub(crate) fn changes(&self, instance_id: &str) -> u64 {
        self.slots
            .lock()
            .by_id
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
        let Slots { by_id, idle, .. } = &mut *slots;
        let slot = Slots::slot(by_id, instance_id);
        // An activity result or timer firing that arrived meanwhile is only in memory: the
        // worker stores it first.
        let unstored = slot
            .messages
            .iter()
            .any(|m| matches!(m.source, Source::Activity(_) | Source::Timer(_)));
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
        Slots::unidle(idle, slot);
        slot.execution = None;
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
            let Slots { by_id, idle, .. } = &mut *slots;
            if let Some(slot) = by_id.get_mut(instance_id) {
                slot.changes += 1;
                Slots::unidle(idle, slot);
                slot.execution = None;
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
                    by_id.remove(instance_id);
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
        let mut slots = self.slots.lock();
        if let Some(mut slot) = slots.by_id.remove(instance_id) {
            Slots::unidle(&mut slots.idle, &mut slot);
            if !slot.awaiting_start && !slot.suspended {
                self.held_messages
                    .fetch_sub(slot.messages.len(), Ordering::Relaxed);
            }
        }
    }

    /// Drops the slots (messages and cached executions) of the instances not claimed by a
    /// worker for which `holds` is false: a runtime that lost the lease on their partition
    /// (a store shared by many runtimes) leaves them to the new holder, which reads them from
    /// the store. A claimed instance's step is refused by the store instead.
    pub(crate) fn evict_unheld(&self, holds: impl Fn(&str) -> bool) {
        let mut slots = self.slots.lock();
        let Slots { by_id, idle, .. } = &mut *slots;
        let gone: Vec<Arc<str>> = by_id
            .iter()
            .filter(|(id, slot)| !slot.claimed && !holds(id))
            .map(|(id, _)| id.clone())
            .collect();
        for id in gone {
            if let Some(mut slot) = by_id.remove(&id) {
                Slots::unidle(idle, &mut slot);
                if !slot.awaiting_start && !slot.suspended {
                    self.held_messages
                        .fetch_sub(slot.messages.len(), Ordering::Relaxed);
                }
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
