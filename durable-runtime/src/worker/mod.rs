//! The workers: tasks that run orchestration steps and activities as work becomes durable.

pub(crate) mod activity;
pub(crate) mod orchestration;
pub(crate) mod timer;

use crate::dispatch::Dispatcher;
use crate::registry::Registry;
use crate::store::Backend;
use std::sync::Arc;
use std::time::Duration;

/// What every worker shares.
pub(crate) struct Shared {
    pub store: Arc<dyn Backend>,
    pub registry: Registry,
    pub dispatcher: Dispatcher,
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

    /// Waits up to `grace` for every task; aborts the rest. True if none was aborted. An
    /// aborted task's work is still in the store and runs again at the next start.
    pub(crate) async fn drain(mut self, grace: Duration) -> bool {
        let all = async { while self.tasks.join_next().await.is_some() {} };
        let finished = tokio::time::timeout(grace, all).await.is_ok();
        if !finished {
            self.tasks.abort_all();
            while self.tasks.join_next().await.is_some() {}
        }
        finished
    }
}

/// How long to wait before retrying work whose write failed (a full disk, an I/O error).
pub(crate) const RETRY_DELAY: Duration = Duration::from_millis(500);
