//! `Runtime`: opens the store, recovers unfinished work, and runs the workers.

use crate::client::Client;
use crate::clock::{Clock, SystemClock};
use crate::dispatch::Dispatcher;
use crate::error::Error;
use crate::registry::Registry;
use crate::store::Backend;
use crate::store::sqlite::SqliteStore;
use crate::worker::{
    InFlight, Limits, Shared, StopSignal, activity, orchestration, recovery, retention, stopping,
    timer,
};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::time::Instant;

/// Configures and starts a [`Runtime`].
///
/// ```no_run
/// # async fn demo() -> Result<(), durable_runtime::Error> {
/// use durable_runtime::Runtime;
/// let runtime = Runtime::builder()
///     .sqlite("durable.db")
///     .activity_concurrency(256)
///     .start()
///     .await?;
/// runtime.shutdown().await;
/// # Ok(()) }
/// ```
#[must_use = "call .start().await to run the runtime"]
pub struct RuntimeBuilder {
    store: StoreChoice,
    activity_concurrency: usize,
    orchestration_concurrency: usize,
    cache_capacity: usize,
    shutdown_timeout: Duration,
    clock: Arc<dyn Clock>,
    limits: Limits,
}

/// The default payload limit: 16 MiB.
pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 16 * 1024 * 1024;

enum StoreChoice {
    Sqlite(PathBuf),
    Custom(Arc<dyn Backend>),
}

impl RuntimeBuilder {
    /// Use the embedded store in the file at `path` (created if missing). The default is
    /// `durable.db` in the working directory.
    pub fn sqlite(mut self, path: impl Into<PathBuf>) -> Self {
        self.store = StoreChoice::Sqlite(path.into());
        self
    }

    /// Use another [`Backend`].
    pub fn store(mut self, store: Arc<dyn Backend>) -> Self {
        self.store = StoreChoice::Custom(store);
        self
    }

    /// Most activities running at once (default 512).
    pub fn activity_concurrency(mut self, limit: usize) -> Self {
        self.activity_concurrency = limit.max(1);
        self
    }

    /// Most orchestration steps running at once (default 512).
    pub fn orchestration_concurrency(mut self, limit: usize) -> Self {
        self.orchestration_concurrency = limit.max(1);
        self
    }

    /// Most idle instances kept in memory between steps (default 10,000). An instance that is
    /// not cached is rebuilt by replaying its history when its next message arrives; 0 replays
    /// every step.
    pub fn cache_capacity(mut self, instances: usize) -> Self {
        self.cache_capacity = instances;
        self
    }

    /// How long [`Runtime::shutdown`] waits for work in flight (default 30 s).
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// Largest encoded payload, in bytes (default [`DEFAULT_MAX_PAYLOAD_BYTES`]): orchestration
    /// and activity inputs and outputs, and event data. A client call over it is refused with
    /// [`Error::PayloadTooLarge`]; an activity input or result over it fails the task, and an
    /// orchestration output over it fails the instance, each with a message giving the size
    /// and the limit.
    pub fn max_payload_size(mut self, bytes: usize) -> Self {
        self.limits.max_payload_bytes = bytes;
        self
    }

    /// Start-to-close timeout of every activity (default: none). An activity still running
    /// after it is cancelled, its task fails with `TaskFailed` saying so, and its slot is
    /// freed for the next activity.
    pub fn activity_timeout(mut self, timeout: Duration) -> Self {
        self.limits.activity_timeout = Some(timeout);
        self
    }

    /// Start-to-close timeout of the activity registered as `name`, overriding
    /// [`activity_timeout`](Self::activity_timeout).
    pub fn activity_timeout_for(mut self, name: impl Into<String>, timeout: Duration) -> Self {
        self.limits.activity_timeouts.insert(name.into(), timeout);
        self
    }

    /// How many armed timers the runtime keeps in memory (default: 10,000). Later timers stay
    /// in the store and are read, earliest first, as the earlier ones fire, so a backlog of
    /// millions of timers costs no more memory than this many.
    pub fn max_timers_in_memory(mut self, timers: usize) -> Self {
        self.limits.max_timers_in_memory = timers;
        self
    }

    /// Purges finished instances (`Completed`, `Failed`, `Terminated`) once they were last
    /// updated more than `age` ago, automatically, with everything stored about them (see
    /// [`Client::purge`]); default: kept forever. Sweeps follow the runtime's clock and run
    /// every tenth of `age` (at least every second, at most every hour).
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), durable_runtime::Error> {
    /// use durable_runtime::Runtime;
    /// use std::time::Duration;
    /// let runtime = Runtime::builder()
    ///     .retention(Duration::from_secs(30 * 24 * 3600))
    ///     .start()
    ///     .await?;
    /// # let _ = runtime; Ok(()) }
    /// ```
    pub fn retention(mut self, age: Duration) -> Self {
        self.limits.retention = Some(age);
        self
    }

    /// The clock durable timers and step times are read from (default: the system clock).
    /// For tests that move time.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Checks the registrations, opens the store, resumes unfinished work and starts workers.
    /// Must be called inside a Tokio runtime.
    pub async fn start(self) -> Result<Runtime, Error> {
        let registry = Registry::from_inventory()?;
        let store: Arc<dyn Backend> = match self.store {
            StoreChoice::Sqlite(path) => Arc::new(
                tokio::task::spawn_blocking(move || SqliteStore::open(path))
                    .await
                    .map_err(|_| Error::ShutDown)??,
            ),
            StoreChoice::Custom(store) => store,
        };
        let (dispatcher, queues) = Dispatcher::new(self.cache_capacity);
        let shared = Arc::new(Shared {
            store,
            registry,
            dispatcher,
            clock: self.clock,
            limits: self.limits,
            held_back: recovery::HeldBack::new(),
        });
        // Taken before any worker or client can create work: recovery reads up to here.
        let marks = shared.store.work_watermarks().await?;
        // Two stop signals: intake (activities, timers, recovery) stops first, so that the
        // results of the activities shutdown waits for are still committed by the steps,
        // which stop second.
        let (stop_intake, intake) = watch::channel(None);
        let (stop_steps, steps) = watch::channel(None);
        let orchestration_slots = Arc::new(Semaphore::new(self.orchestration_concurrency));
        let activity_slots = Arc::new(Semaphore::new(self.activity_concurrency));
        let mut intake_loops = vec![
            tokio::spawn(run_queue(
                shared.clone(),
                queues.activities,
                activity_slots,
                intake.clone(),
                AfterStop::LeaveQueued,
                activity::execute,
            )),
            tokio::spawn(timer::run(shared.clone(), queues.timers, intake.clone())),
            // Beside the workers: a large backlog neither delays the start nor has to fit in
            // memory.
            tokio::spawn(recovery::run(shared.clone(), marks, intake.clone())),
        ];
        if let Some(age) = shared.limits.retention {
            intake_loops.push(tokio::spawn(retention::run(shared.clone(), age, intake)));
        }
        let step_loop = tokio::spawn(run_queue(
            shared.clone(),
            queues.ready,
            orchestration_slots,
            steps,
            AfterStop::RunQueued,
            orchestration::process_instance,
        ));
        Ok(Runtime {
            shared,
            intake_loops,
            step_loop,
            stop_intake,
            stop_steps,
            shutdown_timeout: self.shutdown_timeout,
        })
    }
}

/// A running durable runtime: workers plus the store they share.
///
/// Every `#[orchestrator]` and `#[activity]` linked into the program is registered.
pub struct Runtime {
    shared: Arc<Shared>,
    /// The activity queue, the timer service and startup recovery.
    intake_loops: Vec<tokio::task::JoinHandle<bool>>,
    /// The orchestration step queue.
    step_loop: tokio::task::JoinHandle<bool>,
    stop_intake: watch::Sender<Option<Instant>>,
    stop_steps: watch::Sender<Option<Instant>>,
    shutdown_timeout: Duration,
}

impl Runtime {
    /// A builder with the defaults: the embedded store in `durable.db`.
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder {
            store: StoreChoice::Sqlite(PathBuf::from("durable.db")),
            activity_concurrency: 512,
            orchestration_concurrency: 512,
            cache_capacity: 10_000,
            shutdown_timeout: Duration::from_secs(30),
            clock: Arc::new(SystemClock),
            limits: Limits {
                max_payload_bytes: DEFAULT_MAX_PAYLOAD_BYTES,
                activity_timeout: None,
                activity_timeouts: HashMap::new(),
                max_timers_in_memory: timer::DEFAULT_MAX_TIMERS_IN_MEMORY,
                retention: None,
            },
        }
    }

    /// A client for starting and querying instances.
    pub fn client(&self) -> Client {
        Client::new(self.shared.clone())
    }

    /// Stops taking new work and waits (up to the shutdown timeout) for steps and activities in
    /// flight to finish and commit; what is still running then is abandoned, to run again at
    /// the next start. Work not started stays in the store. The store closes (and its lock is
    /// released) once the runtime and every [`Client`] of it are dropped.
    pub async fn shutdown(self) {
        let deadline = Instant::now() + self.shutdown_timeout;
        let _ = self.stop_intake.send(Some(deadline));
        let mut clean = true;
        for handle in self.intake_loops {
            clean &= handle.await.unwrap_or(false);
        }
        // The activities that finished have handed their results to their instances: the
        // steps that record them run before the step loop stops.
        let _ = self.stop_steps.send(Some(deadline));
        clean &= self.step_loop.await.unwrap_or(false);
        if !clean {
            tracing::warn!("shutdown timed out with work in flight; it resumes at the next start");
        }
    }
}

/// What a queue loop does with the items still queued when the runtime stops.
#[derive(Clone, Copy, PartialEq, Eq)]
enum AfterStop {
    /// Leave them to the store (activities not started run at the next start).
    LeaveQueued,
    /// Run them before the deadline (steps that record results already computed).
    RunQueued,
}

/// Drains `queue`, running `work` on each item as its own task, at most `slots` at a time,
/// until the runtime stops; then lets the tasks in flight finish (until the stop's deadline).
/// Returns false if some had to be abandoned.
async fn run_queue<T, F, Fut>(
    shared: Arc<Shared>,
    mut queue: mpsc::UnboundedReceiver<T>,
    slots: Arc<Semaphore>,
    mut stopped: StopSignal,
    after_stop: AfterStop,
    work: F,
) -> bool
where
    T: Send + 'static,
    F: Fn(Arc<Shared>, T) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut in_flight = InFlight::default();
    let deadline = loop {
        let item = tokio::select! {
            biased;
            deadline = stopping(&mut stopped) => break deadline,
            next = queue.recv() => match next { Some(item) => item, None => break Instant::now() },
            // An idle queue still frees the tasks that finished.
            () = in_flight.reap() => continue,
        };
        // Waiting for a slot watches the stop signal too: with every slot held by work that
        // never ends, shutdown must still go ahead.
        let permit = tokio::select! {
            biased;
            deadline = stopping(&mut stopped) => break deadline,
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break Instant::now(),
            },
        };
        let task = work(shared.clone(), item);
        in_flight.spawn(async move {
            task.await;
            drop(permit);
        });
    };
    if after_stop == AfterStop::RunQueued {
        while let Ok(item) = queue.try_recv() {
            let Ok(Ok(permit)) =
                tokio::time::timeout_at(deadline, slots.clone().acquire_owned()).await
            else {
                break;
            };
            let task = work(shared.clone(), item);
            in_flight.spawn(async move {
                task.await;
                drop(permit);
            });
        }
    }
    drop(shared);
    in_flight.drain(deadline).await
}
