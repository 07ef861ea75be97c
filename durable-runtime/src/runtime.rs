//! `Runtime`: opens the store, recovers unfinished work, and runs the workers.

use crate::client::Client;
use crate::clock::{Clock, SystemClock};
use crate::dispatch::{CacheCounters, Dispatcher};
use crate::error::Error;
use crate::health::{DEFAULT_WRITE_RETRY_INTERVAL, Health, HealthMonitor};
use crate::registry::Registry;
use crate::store::Backend;
use crate::store::sqlite::SqliteStore;
use crate::worker::hooks::Hooks;
use crate::worker::queue::{AfterStop, run_queue};
use crate::worker::{
    Limits, Shared, activity, entity, orchestration, poison, recovery, retention, timer,
};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, watch};
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
    write_retry_interval: Duration,
    hooks: Option<Arc<Hooks>>,
    /// Share the PostgreSQL schema with other runtimes, with these leases.
    #[cfg(feature = "postgres")]
    shared: Option<crate::store::postgres::SharedOptions>,
}

/// The default payload limit: 16 MiB.
pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 16 * 1024 * 1024;

enum StoreChoice {
    Sqlite(PathBuf),
    #[cfg(feature = "postgres")]
    Postgres {
        url: String,
        schema: String,
    },
    Custom(Arc<dyn Backend>),
}

impl RuntimeBuilder {
    /// Use the embedded store in the file at `path` (created if missing). The default is
    /// `durable.db` in the working directory.
    pub fn sqlite(mut self, path: impl Into<PathBuf>) -> Self {
        self.store = StoreChoice::Sqlite(path.into());
        self
    }

    /// Use the PostgreSQL store at `url` (feature `postgres`), in the schema `durable` unless
    /// [`postgres_schema`](Self::postgres_schema) names another. The schema and its tables are
    /// created (or migrated) when the runtime starts.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), durable_runtime::Error> {
    /// let runtime = durable_runtime::Runtime::builder()
    ///     .postgres("postgres://app@localhost/app")
    ///     .postgres_schema("orders")
    ///     .start()
    ///     .await?;
    /// # runtime.shutdown().await; Ok(()) }
    /// ```
    #[cfg(feature = "postgres")]
    pub fn postgres(mut self, url: impl Into<String>) -> Self {
        let schema = match self.store {
            StoreChoice::Postgres { schema, .. } => schema,
            _ => crate::store::postgres::DEFAULT_SCHEMA.to_string(),
        };
        self.store = StoreChoice::Postgres {
            url: url.into(),
            schema,
        };
        self
    }

    /// The PostgreSQL schema the store's tables live in (feature `postgres`; a lower-case
    /// identifier), so that several apps can share one database. Takes effect with
    /// [`postgres`](Self::postgres), in either order.
    #[cfg(feature = "postgres")]
    pub fn postgres_schema(mut self, schema: impl Into<String>) -> Self {
        let schema = schema.into();
        self.store = match self.store {
            StoreChoice::Postgres { url, .. } => StoreChoice::Postgres { url, schema },
            _ => StoreChoice::Postgres {
                url: String::new(),
                schema,
            },
        };
        self
    }

    /// Share the PostgreSQL schema (feature `postgres`) with other runtimes: N identical
    /// worker processes, on one machine or many, run the work stored in one database
    /// together. Instances and entities are divided among the live workers by leased
    /// partitions; a worker that dies (or stalls) loses its leases after the
    /// [`lease_ttl`](Self::lease_ttl) and another one takes its work over, activities that were
    /// running included (at least once, as after a crash). A client of any of them can start
    /// instances, raise events and wait for any instance. Without this, a second runtime on
    /// the schema is refused. See [`PostgresStore::connect_shared`].
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), durable_runtime::Error> {
    /// // Run this same program N times, on as many machines.
    /// let runtime = durable_runtime::Runtime::builder()
    ///     .postgres("postgres://app@db/app")
    ///     .postgres_shared()
    ///     .start()
    ///     .await?;
    /// # runtime.shutdown().await; Ok(()) }
    /// ```
    ///
    /// [`PostgresStore::connect_shared`]: crate::store::postgres::PostgresStore::connect_shared
    #[cfg(feature = "postgres")]
    pub fn postgres_shared(mut self) -> Self {
        self.shared.get_or_insert_with(Default::default);
        self
    }

    /// How long a lease on shared work lasts without renewal (feature `postgres`, with
    /// [`postgres_shared`](Self::postgres_shared); default 10 s, at least 100 ms): the work of
    /// a worker that dies waits this long before another takes it over. Implies
    /// `postgres_shared`.
    #[cfg(feature = "postgres")]
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.shared.get_or_insert_with(Default::default).lease_ttl = ttl;
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

    /// Most orchestration steps running at once (default 512). A step whose commit is waiting
    /// for the store does not count: a slow fsync must not keep other instances' steps from
    /// starting.
    pub fn orchestration_concurrency(mut self, limit: usize) -> Self {
        self.orchestration_concurrency = limit.max(1);
        self
    }

    /// Most idle instances kept in memory between steps (default 10,000). When it is full, the
    /// instance idle for the longest is evicted to make room (least recently used first). An
    /// instance that is not cached is rebuilt by replaying its history when its next message
    /// arrives; 0 replays every step.
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
    /// orchestration output over it fails the instance, and an entity operation's state, or
    /// an input it sends (a signal, an orchestration it starts), over it fails the operation,
    /// each with a message giving the size and the limit.
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

    /// How many times work that stopped the process is retried after restarts before it is
    /// set aside as poison (default: 0, off: retried forever).
    ///
    /// An orchestration step or an activity that stops the whole process (an abort, a stack
    /// overflow, the out-of-memory killer, a crash in native code) would run again at every
    /// restart and stop it again, taking every other instance down with it. After a start
    /// that finds the runtime before did not [`shutdown`](Runtime::shutdown), each attempt at
    /// the work recovered from it is counted in the store before its code runs (replay
    /// included) and cleared once the process survived it; work that was running when the
    /// process stopped is retried alone, one attempt at a time, so that the blame falls on
    /// the right one. Past this many retries, an instance fails, and an activity's task fails
    /// (its orchestration sees a `TaskFailed`, which no retry policy retries:
    /// [`TaskFailed::is_poison`]), with the reason recorded. Counted on the embedded store,
    /// for steps and activities; entity operations and the PostgreSQL store are not counted
    /// yet.
    ///
    /// Off by default: the blame is not yet exact (see `worker/poison.rs`): first attempts
    /// and new work run beside the quarantine, and a quarantined activity holds it.
    ///
    /// [`TaskFailed::is_poison`]: crate::TaskFailed::is_poison
    pub fn poison_after(mut self, retries: u32) -> Self {
        self.limits.poison_after = retries;
        self
    }

    /// The clock durable timers and step times are read from (default: the system clock).
    /// For tests that move time.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// How often a write that keeps failing (a full disk, an I/O error) is retried once its
    /// quick retries (about 1.5 s) are spent (default [`DEFAULT_WRITE_RETRY_INTERVAL`], 5 s).
    /// Whatever write gets through first wakes every failing one at once, so a store that
    /// recovers is used again without waiting for this interval. See [`Runtime::health`].
    pub fn write_retry_interval(mut self, interval: Duration) -> Self {
        self.write_retry_interval = interval;
        self
    }

    /// Attaches a test harness's hooks (see [`crate::testing`]).
    pub(crate) fn hooks(mut self, hooks: Arc<Hooks>) -> Self {
        self.hooks = Some(hooks);
        self
    }

    /// Opens the store chosen.
    async fn open_store(&mut self) -> Result<Arc<dyn Backend>, Error> {
        let store = std::mem::replace(&mut self.store, StoreChoice::Sqlite(PathBuf::new()));
        Ok(match store {
            StoreChoice::Sqlite(path) => Arc::new(
                tokio::task::spawn_blocking(move || SqliteStore::open(path))
                    .await
                    .map_err(|_| Error::ShutDown)??,
            ),
            #[cfg(feature = "postgres")]
            StoreChoice::Postgres { url, schema } => {
                if url.is_empty() {
                    return Err(Error::Store(crate::store::StoreError::Refused(
                        "postgres_schema was set without postgres(url)".into(),
                    )));
                }
                use crate::store::postgres::PostgresStore;
                Arc::new(match self.shared.take() {
                    None => PostgresStore::connect(&url, &schema).await?,
                    Some(options) => PostgresStore::connect_shared(&url, &schema, options).await?,
                })
            }
            StoreChoice::Custom(store) => store,
        })
    }

    /// Opens the store for client calls only, with no workers: a handle for tools (the
    /// `durable` CLI's `--store`) on a store no runtime is running on. The store is locked
    /// while the handle (and its clones) live, as by a runtime.
    ///
    /// Reads see the store as it is. Writes are durable as always, but nothing runs them in
    /// this process: an instance started, an event raised, a rewound activity, a resumed
    /// instance's work, all wait in the store until a runtime opens it, whose startup
    /// recovery takes them over. Starting by name does not need the orchestrator to be
    /// linked in (the instance records no version; the runtime that picks it up runs its
    /// orchestrator of that name, or fails the instance if it has none).
    /// [`Client::wait_for_completion`] only sees what is already finished.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), durable_runtime::Error> {
    /// use durable_runtime::{InstanceQuery, Runtime};
    /// let client = Runtime::builder().sqlite("durable.db").open_client().await?;
    /// let page = client.list(&InstanceQuery::default()).await?;
    /// println!("{} instances", page.instances.len());
    /// # Ok(()) }
    /// ```
    pub async fn open_client(mut self) -> Result<Client, Error> {
        let registry = Registry::from_inventory()?;
        let store = self.open_store().await?;
        // No workers, and nothing dispatched (`runs_work: false`): what the client's writes
        // create stays in the store for the next runtime, not in memory here.
        let (dispatcher, _queues) = Dispatcher::new(0, false);
        let health = HealthMonitor::new(self.clock.clone(), self.write_retry_interval);
        // No entity task is started either; the entities' stop signal is set from the start
        // all the same.
        let (_stopped, stop) = watch::channel(Some(tokio::time::Instant::now()));
        let shared = Arc::new(Shared {
            entities: entity::Entities::new(false, stop),
            store,
            registry,
            dispatcher,
            health,
            clock: self.clock,
            limits: self.limits,
            held_back: recovery::HeldBack::new(),
            suspects: Default::default(),
            adoption_gate: Default::default(),
            hooks: None,
            runs_work: false,
            leases: None,
        });
        Ok(Client::detached(shared))
    }

    /// Checks the registrations, opens the store, resumes unfinished work and starts workers.
    /// Must be called inside a Tokio runtime.
    pub async fn start(mut self) -> Result<Runtime, Error> {
        let registry = Registry::from_inventory()?;
        let store = self.open_store().await?;
        let leases = store.leases();
        let (dispatcher, queues) = Dispatcher::new(self.cache_capacity, leases.is_some());
        let health = HealthMonitor::new(self.clock.clone(), self.write_retry_interval);
        // Two stop signals: intake (activities, timers, recovery, entities) stops first, so
        // that the results of the activities shutdown waits for are still committed by the
        // steps, which stop second.
        let (stop_intake, intake) = watch::channel(None);
        let (stop_steps, steps) = watch::channel(None);
        let shared = Arc::new(Shared {
            entities: entity::Entities::new(self.cache_capacity > 0, intake.clone()),
            store,
            registry,
            dispatcher,
            health,
            clock: self.clock,
            limits: self.limits,
            held_back: recovery::HeldBack::new(),
            suspects: Default::default(),
            adoption_gate: Default::default(),
            hooks: self.hooks,
            runs_work: true,
            leases: leases.clone(),
        });
        if leases.is_none() {
            // Before recovery hands anything over: it decides whether recovered work is
            // counted as a suspect of having stopped the runtime before.
            poison::mark_running(&shared).await;
        }
        // Taken before any worker or client can create work: recovery reads up to here.
        let marks = shared.store.work_watermarks().await?;
        let orchestration_slots = Arc::new(Semaphore::new(self.orchestration_concurrency));
        let activity_slots = Arc::new(Semaphore::new(self.activity_concurrency));
        let mut intake_loops = vec![tokio::spawn(run_queue(
            shared.clone(),
            queues.activities,
            activity_slots,
            intake.clone(),
            AfterStop::LeaveQueued,
            // An activity holds its slot until it returns.
            |shared, item, slot| async move {
                let _slot = slot;
                activity::execute(shared, item).await
            },
        ))];
        intake_loops.push(tokio::spawn(timer::run(
            shared.clone(),
            queues.timers,
            intake.clone(),
        )));
        let lease_loop = match leases {
            // A shared store: the work stored for this runtime is what it adopts as it takes
            // leases, not what startup recovery would read.
            Some(leases) => {
                shared.held_back.release_now(&shared.dispatcher);
                Some(tokio::spawn(crate::worker::lease::run(
                    shared.clone(),
                    leases,
                    steps.clone(),
                )))
            }
            None => {
                // Beside the workers: a large backlog neither delays the start nor has to fit
                // in memory.
                intake_loops.push(tokio::spawn({
                    // Counted from before it is spawned: a test harness must not find the
                    // runtime idle while recovery has yet to hand over the stored work.
                    let busy = shared.busy();
                    let recovery = recovery::run(shared.clone(), marks, intake.clone());
                    async move {
                        let _busy = busy;
                        recovery.await
                    }
                }));
                intake_loops.push(tokio::spawn(entity::recover(
                    shared.clone(),
                    intake.clone(),
                )));
                None
            }
        };
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
            lease_loop,
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
    pub(crate) shared: Arc<Shared>,
    /// The activity queue, the timer service and startup recovery.
    intake_loops: Vec<tokio::task::JoinHandle<bool>>,
    /// The orchestration step queue.
    step_loop: tokio::task::JoinHandle<bool>,
    /// The lease loop of a runtime on a shared store: stops (giving its leases up) after the
    /// steps.
    lease_loop: Option<tokio::task::JoinHandle<bool>>,
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
                poison_after: poison::DEFAULT_POISON_AFTER,
            },
            write_retry_interval: DEFAULT_WRITE_RETRY_INTERVAL,
            hooks: None,
            #[cfg(feature = "postgres")]
            shared: None,
        }
    }

    /// Whether the runtime's writes are getting through to its store: [`Health::Healthy`], or
    /// [`Health::Degraded`] while writes fail (a full disk, an I/O error) past their quick
    /// retries, or client calls are refused. Degraded work is kept and retried; health returns
    /// to `Healthy` by itself once the store takes writes again.
    ///
    /// ```no_run
    /// # async fn demo(runtime: durable_runtime::Runtime) {
    /// if !runtime.health().is_healthy() {
    ///     eprintln!("the store is failing: {:?}", runtime.health());
    /// }
    /// # }
    /// ```
    pub fn health(&self) -> Health {
        self.shared.health.current()
    }

    /// How the hot cache fared so far: hits, replays, evictions. For tests and diagnostics;
    /// not a stable API.
    #[doc(hidden)]
    pub fn cache_counters(&self) -> CacheCounters {
        self.shared.dispatcher.cache_counters()
    }

    /// Activities queued in memory and not started yet. For tests and diagnostics; not a
    /// stable API.
    #[doc(hidden)]
    pub fn queued_activities(&self) -> usize {
        self.shared.dispatcher.backlog().1
    }

    /// Every change of [`health`](Self::health), to wait on or to export to a health probe.
    ///
    /// ```no_run
    /// # async fn demo(runtime: durable_runtime::Runtime) {
    /// let mut health = runtime.watch_health();
    /// // Wakes when the store recovers.
    /// let _ = health.wait_for(|health| health.is_healthy()).await;
    /// # }
    /// ```
    pub fn watch_health(&self) -> watch::Receiver<Health> {
        self.shared.health.subscribe()
    }

    /// A client for starting and querying instances.
    pub fn client(&self) -> Client {
        Client::new(self.shared.clone())
    }

    /// Stops taking new work and waits (up to the shutdown timeout) for steps and activities in
    /// flight to finish and commit; what is still running then is abandoned, to run again at
    /// the next start. Work not started stays in the store, and so does work whose writes are
    /// failing (see [`health`](Self::health)): it does not hold shutdown. The store closes (and its lock is
    /// released) once the runtime and every [`Client`] of it are dropped.
    pub async fn shutdown(self) {
        let deadline = Instant::now() + self.shutdown_timeout;
        // Writes failing on a full disk would hold shutdown until its timeout: they give up,
        // their work staying in the store.
        self.shared.health.stop();
        let _ = self.stop_intake.send(Some(deadline));
        let mut clean = true;
        for handle in self.intake_loops {
            clean &= handle.await.unwrap_or(false);
        }
        // The activities that finished have handed their results to their instances: the
        // steps that record them run before the step loop stops.
        let _ = self.stop_steps.send(Some(deadline));
        clean &= self.step_loop.await.unwrap_or(false);
        let shared_store = self.lease_loop.is_some();
        if let Some(lease_loop) = self.lease_loop {
            // Bounded: a renewal or the release of the leases waits on a database that may
            // hang. Not aborted at the deadline (a renewal cut off in its claim's transaction
            // would return its connection to the pool with the transaction open): left to
            // finish on its own, it stops after the statement in flight and gives the leases
            // up, or they expire.
            clean &= tokio::time::timeout_at(deadline, lease_loop)
                .await
                .is_ok_and(|ran| ran.unwrap_or(false));
        }
        if !clean {
            tracing::warn!("shutdown timed out with work in flight; it resumes at the next start");
        }
        if !shared_store {
            // Shut down: the work left was not what stopped the process.
            poison::mark_stopped(&self.shared).await;
        }
    }
}
