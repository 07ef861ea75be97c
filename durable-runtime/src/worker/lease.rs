//! The lease loop of a runtime on a store shared by many runtimes (see
//! [`Leases`](crate::store::Leases)): renews its leases every third of their TTL, drops what
//! it keeps in memory for the partitions it lost, and adopts the work of the partitions it
//! gained, and the work other processes create for it, feeding it to the same dispatcher,
//! activity queue, timer service and entity tasks as startup recovery does.
//!
//! Adoption runs when the store signals new work (a notification from another process), after
//! every renewal that gained partitions, and at every renewal anyway: the slow poll that
//! catches what a lost notification or a race with a change of holder left behind.

use super::{Shared, StopSignal, entity, recovery, stopping};
use crate::dispatch::Dispatcher;
use crate::history::HistoryEvent;
use crate::store::{LeaseId, Leases, Message, Written};
use parking_lot::Mutex;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Rows of each kind adopted per read.
const ADOPT_PAGE: usize = 1_000;

/// Renews and adopts until the runtime's steps stop, then gives the leases up (so that other
/// runtimes take the partitions over at once). Returns true.
pub(crate) async fn run(
    shared: Arc<Shared>,
    leases: Arc<dyn Leases>,
    mut stopped: StopSignal,
) -> bool {
    let period = (leases.ttl() / 3).max(Duration::from_millis(20));
    let mut next_renewal = Instant::now();
    loop {
        if Instant::now() >= next_renewal {
            next_renewal = Instant::now() + period;
            match leases.renew().await {
                Ok(change) => {
                    if !change.lost.is_empty() {
                        tracing::warn!(partitions = ?change.lost, "lost leases: their work is left to their new holders");
                        shared.dispatcher.evict_unheld(|id| leases.holds(id));
                    }
                    if !change.gained.is_empty() {
                        tracing::info!(partitions = ?change.gained, worker = leases.worker_id(), "took leases");
                    }
                }
                Err(err) => {
                    tracing::warn!(error = %err, "could not renew the leases; retrying");
                    // Sooner than a period: leases expire after three.
                    next_renewal = Instant::now() + period / 4;
                }
            }
            adopt(&shared, &*leases).await;
        }
        tokio::select! {
            biased;
            _ = stopping(&mut stopped) => break,
            () = tokio::time::sleep_until(next_renewal) => {}
            () = leases.work_signalled() => adopt(&shared, &*leases).await,
            finished = leases.finished_elsewhere() => {
                for instance_id in finished {
                    shared.dispatcher.finished(&instance_id);
                }
            }
        }
    }
    if let Err(err) = leases.release_all().await {
        tracing::warn!(error = %err, "could not give the leases up: they expire on their own");
    }
    true
}

/// Adopts every unseen piece of work of the partitions held, a page at a time; then opens the
/// [`AdoptionGate`] of the leases held when it began.
async fn adopt(shared: &Arc<Shared>, leases: &dyn Leases) {
    let adopting = leases.leases_held();
    loop {
        let adopted = match leases.adopt(ADOPT_PAGE).await {
            Ok(adopted) => adopted,
            Err(err) => {
                // The next signal or renewal tries again: the rows stay unseen.
                tracing::warn!(error = %err, "could not adopt work from the store");
                return;
            }
        };
        if adopted.is_empty() {
            shared
                .adoption_gate
                .open(leases, &adopting, &shared.dispatcher);
            return;
        }
        tracing::debug!(
            messages = adopted.messages.len(),
            activities = adopted.activities.len(),
            timers = adopted.timers.len(),
            entity_messages = adopted.entity_messages.len(),
            "adopted work"
        );
        recovery::fail_corrupt(shared, &adopted.corrupt).await;
        for message in adopted.messages {
            // A client of another process changed the instance (suspended, resumed,
            // restarted or rewound it): what this worker keeps of it is stale, and a parked
            // instance must run its messages, as after a client operation here.
            let changed = matches!(
                message.event,
                HistoryEvent::ExecutionStarted(_)
                    | HistoryEvent::ExecutionSuspended { .. }
                    | HistoryEvent::ExecutionResumed { .. }
                    | HistoryEvent::ExecutionRewound { .. }
            )
            .then(|| message.instance_id.clone());
            shared.deliver(message);
            if let Some(instance_id) = changed {
                shared.dispatcher.changed(&instance_id);
            }
        }
        shared.dispatcher.enqueue_activities(adopted.activities);
        shared.dispatcher.arm_timers(adopted.timers);
        for message in adopted.entity_messages {
            entity::Entities::deliver(shared, message);
        }
        if !adopted.more {
            shared
                .adoption_gate
                .open(leases, &adopting, &shared.dispatcher);
            return;
        }
    }
}

/// Keeps the messages to one instance in the order they were committed across a change of
/// holder, as startup recovery's hold-back does across a restart: a message this runtime
/// writes for an instance of a partition it has just taken over waits until adoption has
/// handed over what was stored for that partition before, then follows it. Without it a
/// client's resume could be stepped before the suspend or the event that the last holder
/// left in the store.
///
/// A lease is open once an adoption that began while it was held has read everything unseen:
/// what this runtime writes afterwards is newer than all it adopted. Held messages of a
/// partition lost meanwhile are dropped from memory: they are in the store, and its new
/// holder adopts them.
#[derive(Default)]
pub(crate) struct AdoptionGate {
    state: Mutex<GateState>,
}

#[derive(Default)]
struct GateState {
    open: HashSet<LeaseId>,
    /// Messages for instances of leases not open yet, in the order they were written.
    held: Vec<Message>,
}

impl AdoptionGate {
    /// Returns `message` if it may be delivered now (its lease is open); keeps it otherwise.
    /// `None` too for a message of a partition no longer held: it is its holder's.
    pub(crate) fn admit(&self, leases: &dyn Leases, message: Message) -> Option<Message> {
        let lease = leases.lease_of(&message.instance_id)?;
        let mut state = self.state.lock();
        if state.open.contains(&lease) {
            return Some(message);
        }
        state.held.push(message);
        None
    }

    /// Opens the leases of `adopted` that are still held (adoption has handed over their older
    /// work), forgets the ones no longer held, and delivers the messages held for open ones,
    /// in commit order. Under the lock, so that nothing admitted meanwhile overtakes them.
    fn open(&self, leases: &dyn Leases, adopted: &[LeaseId], dispatcher: &Dispatcher) {
        let held_now: HashSet<LeaseId> = leases.leases_held().into_iter().collect();
        let mut state = self.state.lock();
        state.open.retain(|lease| held_now.contains(lease));
        state
            .open
            .extend(adopted.iter().filter(|lease| held_now.contains(lease)));
        let mut waiting = std::mem::take(&mut state.held);
        waiting.sort_by_key(|m| m.id);
        for message in waiting {
            match leases.lease_of(&message.instance_id) {
                Some(lease) if state.open.contains(&lease) => dispatcher.deliver(message),
                Some(_) => state.held.push(message),
                None => {}
            }
        }
    }

    /// Whether a message for `id` written now would be delivered at once (its lease is open).
    pub(crate) fn is_open(&self, leases: &dyn Leases, id: &str) -> bool {
        leases
            .lease_of(id)
            .is_some_and(|lease| self.state.lock().open.contains(&lease))
    }

    /// How many messages are held now.
    pub(crate) fn len(&self) -> usize {
        self.state.lock().held.len()
    }
}

/// What of `written` this runtime runs: the work of the partitions it holds. `None` when
/// nothing is left (the write itself went through: it is the holder's to run).
pub(crate) fn held_only(leases: &dyn Leases, written: Written) -> Option<Written> {
    let held = |id: &str| leases.holds(id);
    Some(match written {
        Written::Instance(message) => {
            Written::Instance(held(&message.instance_id).then_some(message)?)
        }
        Written::Delivered(Some(message)) => {
            Written::Delivered(Some(held(&message.instance_id).then_some(message)?))
        }
        Written::Step(mut work) => {
            work.activities.retain(|a| held(&a.instance_id));
            work.timers.retain(|t| held(&t.instance_id));
            work.messages.retain(|m| held(&m.instance_id));
            work.entity_messages.retain(|m| held(&m.message.entity_id));
            Written::Step(work)
        }
        Written::Managed(mut work) => {
            work.activities.retain(|a| held(&a.instance_id));
            work.timers.retain(|t| held(&t.instance_id));
            work.messages.retain(|m| held(&m.instance_id));
            work.changed.retain(|id| held(id));
            work.entity_messages.retain(|m| held(&m.message.entity_id));
            Written::Managed(work)
        }
        Written::Entity(mut work) => {
            work.signals.retain(|m| held(&m.message.entity_id));
            work.messages.retain(|m| held(&m.instance_id));
            Written::Entity(work)
        }
        other @ (Written::Delivered(None)
        | Written::Purged(_)
        | Written::Attempts { .. }
        | Written::WasRunning(_)) => other,
    })
}
