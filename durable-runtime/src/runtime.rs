//! `Runtime`: opens the store, recovers unfinished work, and runs the workers.

use crate::client::Client;
use crate::dispatch::Dispatcher;
use crate::error::Error;
use crate::failure::FailureDetails;
use crate::history::now_ms;
use crate::registry::Registry;
use crate::store::sqlite::SqliteStore;
use crate::store::{Backend, CorruptRow, Write};
use crate::worker::{InFlight, Shared, activity, orchestration, timer};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc, watch};

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
}

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
        });
        resume(&shared).await?;
        let (stop, stopped) = watch::channel(false);
        let orchestration_slots = Arc::new(Semaphore::new(self.orchestration_concurrency));
        let activity_slots = Arc::new(Semaphore::new(self.activity_concurrency));
        let grace = self.shutdown_timeout;
        let loops = vec![
            tokio::spawn(run_queue(
                shared.clone(),
                queues.ready,
                orchestration_slots,
                stopped.clone(),
                grace,
                orchestration::process_instance,
            )),
            tokio::spawn(run_queue(
                shared.clone(),
                queues.activities,
                activity_slots,
                stopped.clone(),
                grace,
                activity::execute,
            )),
            tokio::spawn(timer::run(shared.clone(), queues.timers, stopped, grace)),
        ];
        Ok(Runtime {
            shared,
            loops,
            stop,
        })
    }
}

/// A running durable runtime: workers plus the store they share.
///
/// Every `#[orchestrator]` and `#[activity]` linked into the program is registered.
pub struct Runtime {
    shared: Arc<Shared>,
    loops: Vec<tokio::task::JoinHandle<bool>>,
    stop: watch::Sender<bool>,
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
        let _ = self.stop.send(true);
        let mut clean = true;
        for handle in self.loops {
            clean &= handle.await.unwrap_or(false);
        }
        if !clean {
            tracing::warn!("shutdown timed out with work in flight; it resumes at the next start");
        }
    }
}

/// Rows read per page when resuming unfinished work.
const RESUME_PAGE: usize = 1_000;

/// Hands every message, activity and timer an earlier process left to the dispatcher, page by
/// page; fails the instance of each stored row that does not decode.
async fn resume(shared: &Shared) -> Result<(), Error> {
    let store = &shared.store;
    let (mut messages, mut activities, mut timers) = (0usize, 0usize, 0usize);
    let mut after = 0;
    loop {
        let page = store.pending_messages(after, RESUME_PAGE).await?;
        messages += page.items.len();
        for message in page.items {
            shared.dispatcher.deliver(message);
        }
        fail_corrupt(shared, page.corrupt).await;
        let Some(last) = page.last_id else { break };
        after = last;
    }
    after = 0;
    loop {
        let page = store.pending_activities(after, RESUME_PAGE).await?;
        activities += page.items.len();
        for item in page.items {
            shared.dispatcher.enqueue_activity(item);
        }
        fail_corrupt(shared, page.corrupt).await;
        let Some(last) = page.last_id else { break };
        after = last;
    }
    after = 0;
    loop {
        let page = store.pending_timers(after, RESUME_PAGE).await?;
        timers += page.items.len();
        for timer in page.items {
            shared.dispatcher.arm_timer(timer);
        }
        fail_corrupt(shared, page.corrupt).await;
        let Some(last) = page.last_id else { break };
        after = last;
    }
    tracing::info!(messages, activities, timers, "resumed unfinished work");
    Ok(())
}

/// Fails the instance of each corrupt pending row, naming the row (the row stays for repair).
async fn fail_corrupt(shared: &Shared, rows: Vec<CorruptRow>) {
    for row in rows {
        let Some(instance_id) = row.instance_id.clone() else {
            tracing::error!(table = row.table, id = row.id, reason = %row.reason,
                "corrupt pending row of an unknown instance; left in the store");
            continue;
        };
        let failure = FailureDetails::new(format!(
            "corrupt {} row {}: {}",
            row.table, row.id, row.reason
        ));
        tracing::error!(instance = %instance_id, failure = %failure.message, "failing the instance");
        let write = Write::FailInstance {
            instance_id,
            failure,
            timestamp_ms: now_ms(),
        };
        if let Err(err) = shared.store.write(write).await {
            tracing::error!(error = %err, "could not record the failure");
        }
    }
}

/// Drains `queue`, running `work` on each item as its own task, at most `slots` at a time,
/// until the runtime stops; then lets the tasks in flight finish (up to `grace`). Returns false
/// if some had to be abandoned.
async fn run_queue<T, F, Fut>(
    shared: Arc<Shared>,
    mut queue: mpsc::UnboundedReceiver<T>,
    slots: Arc<Semaphore>,
    mut stopped: watch::Receiver<bool>,
    grace: Duration,
    work: F,
) -> bool
where
    T: Send + 'static,
    F: Fn(Arc<Shared>, T) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut in_flight = InFlight::default();
    loop {
        let item = tokio::select! {
            biased;
            _ = stopped.wait_for(|stop| *stop) => break,
            next = queue.recv() => match next { Some(item) => item, None => break },
        };
        let Ok(permit) = slots.clone().acquire_owned().await else {
            break;
        };
        let task = work(shared.clone(), item);
        in_flight.spawn(async move {
            task.await;
            drop(permit);
        });
    }
    drop(shared);
    in_flight.drain(grace).await
}
