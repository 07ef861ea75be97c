//! Testing orchestrations: a runtime with virtual time and mocked activities
//! ([`TestRuntime`]), and a replay tester that checks new code against recorded histories
//! ([`replay_history`]).
//!
//! A [`TestRuntime`] is a normal [`Runtime`] (the same engine, store and workers as in
//! production) on a store in a temporary directory, with a [`VirtualClock`]. Time moves only
//! when the test lets it: [`TestRuntime::wait_for_completion`] jumps the clock to the next due
//! timer whenever every instance is idle, so a 72-hour timer passes in milliseconds, and
//! [`TestRuntime::advance`] moves it by a given amount, firing the timers due on the way in
//! order. Activities can be replaced by mocks, and every activity the workers start is logged.
//!
//! ```standalone_crate
//! use durable_runtime::prelude::*;
//! use durable_runtime::testing::TestRuntime;
//!
//! #[activity]
//! async fn send_reminder(user: String) -> String {
//!     format!("reminded {user}") // imagine an e-mail going out
//! }
//!
//! #[orchestrator]
//! async fn remind_in_three_days(
//!     ctx: OrchestrationContext,
//!     user: String,
//! ) -> Result<String, OrchestrationError> {
//!     ctx.sleep(Duration::from_secs(72 * 3600)).await;
//!     Ok(ctx.call_activity(send_reminder, user).await?)
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let test = TestRuntime::new().await?;
//! // No e-mail goes out from a test: the mock runs instead of the activity.
//! test.mock_activity(send_reminder, |user: String| format!("pretended to remind {user}"))?;
//!
//! let id = test.client().start(remind_in_three_days, "ada".to_string()).await?;
//! let status = test.wait_for_completion(&id).await?; // 72 virtual hours, a few ms of real time
//!
//! assert_eq!(status.runtime_status, RuntimeStatus::Completed);
//! assert_eq!(status.output_as::<String>()?, "pretended to remind ada");
//! assert_eq!(test.calls_of(send_reminder)?, vec!["ada".to_string()]);
//! assert!(test.elapsed() >= Duration::from_secs(72 * 3600));
//! test.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! To check that new code can still replay the histories of instances in flight, export a
//! history ([`HistoryRecord`]s as JSON, see [`load_history`]) and run
//! [`replay_history`] on it in a test.

mod mocks;
mod replay;
mod time;

pub use mocks::ActivityCall;
pub use replay::{Divergence, ReplayReport, load_history, replay_history, save_history};

use crate::client::Client;
use crate::clock::{Clock, VirtualClock};
use crate::error::Error;
use crate::history::HistoryRecord;
use crate::instance::{InstanceStatus, RuntimeStatus};
use crate::runtime::{Runtime, RuntimeBuilder};
use crate::worker::hooks::Hooks;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Where a [`TestRuntime`]'s virtual clock starts: 2025-01-01T00:00:00Z, so that every run of
/// a test records the same times.
pub const DEFAULT_START_MS: i64 = 1_735_689_600_000;

/// What a [`TestRuntime`] call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum TestError {
    /// The runtime or a client call failed.
    #[error(transparent)]
    Runtime(#[from] Error),
    /// Every instance is idle and no timer is armed, yet the instance waited for has not
    /// finished: it waits for something only the test can send (an event, say).
    #[error(
        "instance '{instance_id}' is {status} and can make no progress: every instance is idle \
         and no timer is armed (is it waiting for an event the test did not raise?)"
    )]
    Stalled {
        /// The instance waited for.
        instance_id: String,
        /// Its status.
        status: RuntimeStatus,
    },
    /// The function given to a mock or an assertion is not marked `#[activity]`.
    #[error("`{0}` is not marked #[activity]")]
    NotAnActivity(&'static str),
    /// A logged activity input does not decode as the activity's input type.
    #[error("an input of activity '{name}' does not decode: {source}")]
    Decode {
        /// The activity's registered name.
        name: String,
        /// Why.
        source: serde_json::Error,
    },
    /// The temporary directory of the store could not be created.
    #[error("cannot create the temporary store directory {path}: {source}")]
    TempDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A history cannot be replayed at all: it does not start a run, or the orchestrator
    /// does not start on it (its input no longer decodes, say).
    #[error("cannot replay the history: {0}")]
    Replay(String),
    /// A history fixture could not be read or parsed.
    #[error("history fixture {path}: {reason}")]
    Fixture {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// Configures a [`TestRuntime`].
#[must_use = "call .start().await to run the test runtime"]
pub struct TestRuntimeBuilder {
    start_ms: i64,
    store: Option<PathBuf>,
    configure: Option<Arc<Configure>>,
}

impl TestRuntimeBuilder {
    /// Where the virtual clock starts, in milliseconds since the Unix epoch (default
    /// [`DEFAULT_START_MS`]).
    pub fn start_time_ms(mut self, start_ms: i64) -> Self {
        self.start_ms = start_ms;
        self
    }

    /// Uses the embedded store in the file at `path` instead of one in a temporary directory
    /// (kept after the test; a test can open it again, or look at it).
    pub fn sqlite(mut self, path: impl Into<PathBuf>) -> Self {
        self.store = Some(path.into());
        self
    }

    /// Adjusts the underlying [`RuntimeBuilder`]: `cache_capacity(0)` to replay every step,
    /// a payload limit, activity timeouts. Its store and clock are the test runtime's. It is
    /// applied again at each [`restart`](TestRuntime::restart).
    ///
    /// ```
    /// # async fn demo() -> Result<(), durable_runtime::testing::TestError> {
    /// use durable_runtime::testing::TestRuntime;
    /// let test = TestRuntime::builder()
    ///     .configure(|runtime| runtime.cache_capacity(0))
    ///     .start()
    ///     .await?;
    /// # test.shutdown().await; Ok(()) }
    /// ```
    pub fn configure(
        mut self,
        configure: impl Fn(RuntimeBuilder) -> RuntimeBuilder + Send + Sync + 'static,
    ) -> Self {
        self.configure = Some(Arc::new(configure));
        self
    }

    /// Starts the runtime: every `#[orchestrator]` and `#[activity]` linked into the test
    /// binary is registered, as in production.
    pub async fn start(self) -> Result<TestRuntime, TestError> {
        let (dir, path) = match self.store {
            Some(path) => (None, path),
            None => {
                let dir = TempDir::new()?;
                let path = dir.0.join("durable.db");
                (Some(dir), path)
            }
        };
        let clock = VirtualClock::new(self.start_ms);
        let hooks = Arc::new(Hooks::default());
        let configure = self.configure;
        let runtime = start_runtime(&path, &clock, &hooks, configure.as_deref()).await?;
        Ok(TestRuntime {
            runtime,
            clock,
            hooks,
            start_ms: self.start_ms,
            path,
            configure,
            _dir: dir,
        })
    }
}

type Configure = dyn Fn(RuntimeBuilder) -> RuntimeBuilder + Send + Sync;

async fn start_runtime(
    path: &std::path::Path,
    clock: &VirtualClock,
    hooks: &Arc<Hooks>,
    configure: Option<&Configure>,
) -> Result<Runtime, Error> {
    let mut builder = Runtime::builder();
    if let Some(configure) = configure {
        builder = configure(builder);
    }
    // Set after the user's adjustments: the store and clock are the test runtime's.
    builder
        .sqlite(path)
        .clock(Arc::new(clock.clone()))
        .hooks(hooks.clone())
        .start()
        .await
}

/// A [`Runtime`] for tests: a temporary store, a [`VirtualClock`] that moves only when the
/// test lets it, activities that can be mocked, and a log of the activities run. See the
/// [module docs](self) for an example.
///
/// Only durable time is virtual: timers, retry backoffs, event timeouts, scheduled starts, the
/// steps' `current_utc_datetime` and the times history records. What runs in real time stays
/// so: activity start-to-close timeouts, and the activities themselves. The clock never moves
/// while an activity runs, so an activity that never returns holds the test: bound a test that
/// may hang with `tokio::time::timeout`.
///
/// Entities run on the same runtime; their queued operations count as work in flight in the
/// idle check, so time never moves past a signal that has yet to be applied.
pub struct TestRuntime {
    runtime: Runtime,
    clock: VirtualClock,
    hooks: Arc<Hooks>,
    start_ms: i64,
    path: PathBuf,
    configure: Option<Arc<Configure>>,
    _dir: Option<TempDir>,
}

impl TestRuntime {
    /// A test runtime with the defaults: a temporary store, the clock at
    /// [`DEFAULT_START_MS`].
    pub async fn new() -> Result<Self, TestError> {
        Self::builder().start().await
    }

    /// A builder, to change the defaults.
    pub fn builder() -> TestRuntimeBuilder {
        TestRuntimeBuilder {
            start_ms: DEFAULT_START_MS,
            store: None,
            configure: None,
        }
    }

    /// A client of the runtime, to start instances, raise events, manage them.
    pub fn client(&self) -> Client {
        self.runtime.client()
    }

    /// The virtual clock. Moving it yourself fires the timers due by then, all at once;
    /// [`advance`](Self::advance) fires them one due time after another.
    pub fn clock(&self) -> &VirtualClock {
        &self.clock
    }

    /// The virtual time now, in milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// How far the virtual clock moved since the runtime started.
    pub fn elapsed(&self) -> Duration {
        Duration::from_millis(u64::try_from(self.now_ms() - self.start_ms).unwrap_or(0))
    }

    /// The instance's status with its history.
    pub async fn status(&self, instance_id: &str) -> Result<InstanceStatus, TestError> {
        Ok(self
            .client()
            .get_status_with_history(instance_id)
            .await?
            .ok_or_else(|| Error::InstanceNotFound(instance_id.to_string()))?)
    }

    /// The instance's history: what it recorded so far.
    pub async fn history(&self, instance_id: &str) -> Result<Vec<HistoryRecord>, TestError> {
        Ok(self.status(instance_id).await?.history.unwrap_or_default())
    }

    /// Stops the runtime and starts it again on the same store and clock, as after a crash
    /// or a deployment: instances in flight are rebuilt by replaying their histories. Mocks,
    /// the activity log and the configuration are kept. Drop the clients of the old runtime
    /// first: the store stays locked while one lives.
    pub async fn restart(self) -> Result<Self, TestError> {
        let TestRuntime {
            runtime,
            clock,
            hooks,
            start_ms,
            path,
            configure,
            _dir,
        } = self;
        runtime.shutdown().await;
        let runtime = start_runtime(&path, &clock, &hooks, configure.as_deref()).await?;
        Ok(TestRuntime {
            runtime,
            clock,
            hooks,
            start_ms,
            path,
            configure,
            _dir,
        })
    }

    /// Stops the runtime (its temporary store is removed with it).
    pub async fn shutdown(self) {
        self.runtime.shutdown().await;
    }
}

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<Self, TestError> {
        let path = std::env::temp_dir().join(format!("durable-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&path).map_err(|source| TestError::TempDir {
            path: path.clone(),
            source,
        })?;
        Ok(TempDir(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // Best effort: a leftover directory in the temp dir harms nothing.
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
