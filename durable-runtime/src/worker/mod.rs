//! The workers: tasks that run orchestration steps and activities as work becomes durable.

pub(crate) mod activity;
pub(crate) mod entity;
pub(crate) mod hooks;
pub(crate) mod lease;
pub(crate) mod orchestration;
pub(crate) mod poison;
pub(crate) mod queue;
pub(crate) mod recovery;
pub(crate) mod retention;
pub(crate) mod timer;

use crate::clock::Clock;
use crate::dispatch::Dispatcher;
use crate::failure::FailureDetails;
pub(crate) use crate::health::retry_delay;
use crate::health::{HealthMonitor, WriteRetry};
use crate::registry::Registry;
use crate::store::{Backend, ErrorClass, Leases, Message, StoreError, Write, Written};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;

/// Limits and timeouts the workers and clients apply.
#[derive(Clone, Debug)]
pub(crate) struct Limits {
    /// Largest encoded payload (input, output, result, event data), in bytes.
    pub max_payload_bytes: usize,
    /// Start-to-close timeout of every activity, unless overridden by name.
    pub activity_timeout: Option<Duration>,
    /// Per-activity start-to-close timeouts, by registered name.
    pub activity_timeouts: HashMap<String, Duration>,
    /// Armed timers kept in memory; later ones are read from the store as their turn comes.
    pub max_timers_in_memory: usize,
    /// Finished instances older than this are purged in the background.
    pub retention: Option<Duration>,
    /// Retries after restarts of work that stopped the process, before it is set aside
    /// (0: never); see [`poison`].
    pub poison_after: u32,
}

impl Limits {
    /// The start-to-close timeout of the activity registered as `name`.
    pub(crate) fn activity_timeout(&self, name: &str) -> Option<Duration> {
        self.activity_timeouts
            .get(name)
            .copied()
            .or(self.activity_timeout)
    }
}

/// What every worker shares.
pub(crate) struct Shared {
    pub store: Arc<dyn Backend>,
    pub registry: Registry,
    pub dispatcher: Dispatcher,
    pub clock: Arc<dyn Clock>,
    pub limits: Limits,
    /// New messages waiting for startup recovery to hand over older ones.
    pub held_back: recovery::HeldBack,
    /// Recovered work not attempted yet, after an unclean stop (see [`poison`]).
    pub suspects: poison::Suspects,
    /// On a shared store, new messages for the partitions just taken over, waiting for
    /// adoption to hand over older ones.
    pub adoption_gate: lease::AdoptionGate,
    /// Whether writes are getting through.
    pub health: HealthMonitor,
    /// A test harness's hooks (`None` in production).
    pub hooks: Option<Arc<hooks::Hooks>>,
    /// The tasks of the live entities.
    pub entities: entity::Entities,
    /// False for a client-only handle on a store ([`RuntimeBuilder::open_client`]): nothing
    /// runs work here, so what its writes create stays in the store for the next runtime and
    /// is not handed to (nor kept in) the dispatcher.
    ///
    /// [`RuntimeBuilder::open_client`]: crate::RuntimeBuilder::open_client
    pub runs_work: bool,
    /// The store's leases when it is shared by many runtimes (`None`: all the work is this
    /// runtime's). Work for an instance or entity whose partition this runtime does not hold
    /// is left to the store, for the holder.
    pub leases: Option<Arc<dyn Leases>>,
}

/// A claim on one of the runtime's concurrency slots (orchestration steps, or activities,
/// running at once), held by the task doing the work.
pub(crate) struct Slot {
    permit: Option<OwnedSemaphorePermit>,
    slots: Arc<Semaphore>,
}

impl Slot {
    pub(crate) fn new(permit: OwnedSemaphorePermit, slots: &Arc<Semaphore>) -> Self {
        Slot {
            permit: Some(permit),
            slots: slots.clone(),
        }
    }

    /// Awaits `wait` without holding the slot, then takes one again. A step waiting for its
    /// commit is not running: if it kept its slot, one slow fsync would hold every slot with
    /// steps that are done computing, and the steps of other instances (a burst of timers
    /// due together) would wait for that fsync before they could even start.
    pub(crate) async fn released_during<F: Future>(&mut self, wait: F) -> F::Output {
        self.permit = None;
        let output = wait.await;
        // The semaphore is never closed; if it were, the work would go on without a slot
        // rather than stop halfway.
        self.permit = self.slots.clone().acquire_owned().await.ok();
        output
    }
}

impl Shared {
    /// Counts a piece of work as in flight for a test harness while the guard lives; nothing
    /// without hooks.
    pub(crate) fn busy(&self) -> hooks::Busy {
        match &self.hooks {
            Some(hooks) => hooks.busy(),
            None => hooks::Busy::none(),
        }
    }

    /// Commits `write` and hands the work it created to the workers. Both happen in a task of
    /// their own: a caller that stops waiting (a timeout, `select!`, a disconnected HTTP
    /// client) cannot leave durable work undelivered. (Run in the caller's task instead, and
    /// handed to a task only if the caller dropped it, a step measured the same within noise:
    /// the simpler form stays.)
    pub(crate) async fn commit(self: &Arc<Self>, write: Write) -> Result<Delivered, StoreError> {
        let shared = self.clone();
        let busy = self.busy();
        tokio::spawn(async move {
            let _busy = busy;
            let written = shared.store.write(write).await?;
            shared.health.write_succeeded();
            Ok(shared.dispatch(written))
        })
        .await
        .map_err(|_| StoreError::Closed)?
    }

    /// [`commit`](Self::commit), retrying transient errors: quickly a few times, then (the
    /// write counted as failing in the health) at the slow pace, until the store takes it.
    /// `write` makes each attempt's write. Errors of other classes are returned, and so is a
    /// transient one once the runtime stops while the write is failing.
    pub(crate) async fn commit_retrying(
        self: &Arc<Self>,
        what: &str,
        write: impl Fn() -> Write,
    ) -> Result<Delivered, StoreError> {
        let mut retry = WriteRetry::new(&self.health);
        loop {
            match self.commit(write()).await {
                Err(err) if err.class() == ErrorClass::Transient => {
                    if !retry.failed(what, &err).await {
                        // Stopping: the work stays in the store for the next start.
                        return Err(err);
                    }
                }
                other => return other,
            }
        }
    }

    /// Whether this runtime runs the work of `id` (an instance or an entity): always, unless
    /// the store is shared and another runtime holds its partition.
    pub(crate) fn holds(&self, id: &str) -> bool {
        match &self.leases {
            None => true,
            Some(leases) => leases.holds(id),
        }
    }

    /// Hands a stored message to its instance, unless recovery must hand over older ones
    /// first.
    pub(crate) fn deliver(&self, message: Message) {
        if let Some(message) = self.held_back.admit(message) {
            self.dispatcher.deliver(message);
        }
    }

    /// Hands a message this runtime wrote to its instance, after the older ones of a partition
    /// it has just taken over (see [`lease::AdoptionGate`]).
    fn deliver_written(&self, message: Message) {
        let message = match &self.leases {
            None => message,
            Some(leases) => match self.adoption_gate.admit(&**leases, message) {
                Some(message) => message,
                None => return,
            },
        };
        self.deliver(message);
    }

    /// New messages held back in memory, by startup recovery or adoption.
    pub(crate) fn held_messages(&self) -> usize {
        self.held_back.len() + self.adoption_gate.len()
    }

    /// Hands what a durable write created to the dispatcher.
    fn dispatch(self: &Arc<Self>, written: Written) -> Delivered {
        if !self.runs_work {
            return match written {
                Written::Delivered(None)
                | Written::Purged(_)
                | Written::Attempts { .. }
                | Written::WasRunning(_) => Delivered::Nothing,
                _ => Delivered::Sent,
            };
        }
        let written = match &self.leases {
            None => Some(written),
            // Another runtime's work stays in the store: its holder adopts it (woken by the
            // store's notification).
            Some(leases) => lease::held_only(&**leases, written),
        };
        let Some(written) = written else {
            return Delivered::Sent;
        };
        match written {
            Written::Instance(message) | Written::Delivered(Some(message)) => {
                self.deliver_written(message);
                Delivered::Sent
            }
            Written::Step(work) => {
                self.dispatcher.enqueue_activities(work.activities);
                self.dispatcher.arm_timers(work.timers);
                // Sub-orchestrations' starts, and outcomes on their way to parents.
                for message in work.messages {
                    self.deliver_written(message);
                }
                for message in work.entity_messages {
                    entity::Entities::deliver(self, message);
                }
                Delivered::Sent
            }
            Written::Managed(work) => {
                for item in work.activities {
                    self.dispatcher.enqueue_activity(item);
                }
                self.dispatcher.arm_timers(work.timers);
                // Messages first: a resumed instance's parked messages and its
                // `ExecutionResumed` are then stepped together.
                for message in work.messages {
                    self.deliver_written(message);
                }
                for instance_id in &work.changed {
                    self.dispatcher.changed(instance_id);
                }
                for message in work.entity_messages {
                    entity::Entities::deliver(self, message);
                }
                Delivered::Sent
            }
            Written::Entity(work) => {
                for message in work.signals {
                    entity::Entities::deliver(self, message);
                }
                // Results of operations orchestrations called.
                for message in work.messages {
                    self.deliver_written(message);
                }
                Delivered::Sent
            }
            Written::Delivered(None)
            | Written::Purged(_)
            | Written::Attempts { .. }
            | Written::WasRunning(_) => Delivered::Nothing,
        }
    }
}

/// Records that `instance_id` failed with `failure` (without touching its history), retrying
/// transient store errors for as long as they last (see [`Shared::commit_retrying`]), and wakes
/// whoever waits for it. Returns false if the store refuses it for good.
pub(crate) async fn record_failure(
    shared: &Arc<Shared>,
    instance_id: &str,
    failure: FailureDetails,
) -> bool {
    tracing::error!(instance = %instance_id, failure = %failure.message, "failing the instance");
    let write = || Write::FailInstance {
        instance_id: instance_id.to_string(),
        failure: failure.clone(),
        timestamp_ms: shared.clock.now_ms(),
    };
    match shared
        .commit_retrying("the failure of an instance", write)
        .await
    {
        Ok(_) => {
            shared.dispatcher.finished(instance_id);
            true
        }
        // Finished meanwhile: nothing to record.
        Err(err) if err.class() == ErrorClass::Conflict => true,
        Err(err) => {
            tracing::error!(instance = %instance_id, error = %err, "could not record the failure");
            false
        }
    }
}

/// What a committed write sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Delivered {
    /// Its messages or work items are on their way.
    Sent,
    /// Nothing: the store found it done before (a fired timer, a recorded result, a repeated
    /// idempotency key).
    Nothing,
}

/// The tasks a worker loop spawned, so that shutdown can wait for them, or abandon them.
#[derive(Default)]
pub(crate) struct InFlight {
    tasks: tokio::task::JoinSet<()>,
}

impl InFlight {
    pub(crate) fn spawn(&mut self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        // Reap what finished, so the set holds only what is running.
        while self.tasks.try_join_next().is_some() {}
        self.tasks.spawn(task);
    }

    /// How many tasks are still running (finished ones are freed).
    pub(crate) fn running(&mut self) -> usize {
        while self.tasks.try_join_next().is_some() {}
        self.tasks.len()
    }

    /// Waits for a task to finish and frees it (a finished task keeps its memory until it is
    /// joined); never resolves while none runs.
    pub(crate) async fn reap(&mut self) {
        if self.tasks.join_next().await.is_none() {
            std::future::pending::<()>().await;
        }
    }

    /// Waits until `deadline` for every task; aborts the rest. True if none was aborted. An
    /// aborted task's work is still in the store and runs again at the next start.
    pub(crate) async fn drain(mut self, deadline: Instant) -> bool {
        let all = async { while self.tasks.join_next().await.is_some() {} };
        let finished = tokio::time::timeout_at(deadline, all).await.is_ok();
        if !finished {
            // Aborted tasks normally end at once (releasing the store with them); one blocked
            // in user code (a blocking call inside an async activity) cannot be aborted, and
            // must not hold shutdown for long.
            self.tasks.abort_all();
            let aborted = async { while self.tasks.join_next().await.is_some() {} };
            if tokio::time::timeout(ABORT_GRACE, aborted).await.is_err() {
                self.tasks.detach_all();
            }
        }
        finished
    }
}

/// How long shutdown waits for aborted tasks to end before leaving them behind.
const ABORT_GRACE: Duration = Duration::from_millis(250);

/// The stop signal the worker loops watch: `None` while the runtime runs; once it stops, the
/// deadline for the work in flight.
pub(crate) type StopSignal = watch::Receiver<Option<Instant>>;

/// Waits for the stop signal; returns the deadline for the work in flight.
pub(crate) async fn stopping(signal: &mut StopSignal) -> Instant {
    match signal.wait_for(Option::is_some).await {
        Ok(deadline) => (*deadline).unwrap_or_else(Instant::now),
        // The runtime is gone without a shutdown: nothing waits for the work in flight.
        Err(_) => Instant::now(),
    }
}
