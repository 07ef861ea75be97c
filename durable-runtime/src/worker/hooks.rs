//! What a test harness may attach to a runtime: a count of the engine's work in flight (to
//! know when every instance is idle), activities replaced by mocks, and a log of the
//! activities run. A production runtime has none (`Shared::hooks` is `None`): each hook point
//! then costs one branch.

use crate::failure::FailureDetails;
use crate::payload::Payload;
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::Notify;

/// What replaces an activity: its encoded input to its encoded result.
pub(crate) type Mock = Arc<dyn Fn(Payload) -> Result<Payload, FailureDetails> + Send + Sync>;

/// An activity the workers started: its registered name and encoded input.
#[derive(Clone, Debug)]
pub(crate) struct StartedActivity {
    pub instance_id: String,
    pub name: String,
    pub input: Payload,
}

/// The hooks of one runtime.
#[derive(Default)]
pub(crate) struct Hooks {
    /// Work in flight that the dispatcher's counters do not see: steps, commits, activities
    /// running, timer firings, startup recovery.
    busy: AtomicUsize,
    /// Notified whenever a piece of that work ends.
    settled: Notify,
    /// Activities replaced, by registered name.
    mocks: RwLock<HashMap<String, Mock>>,
    /// Every activity started, in order.
    started: Mutex<Vec<StartedActivity>>,
}

impl Hooks {
    /// Counts a piece of work until the returned guard is dropped.
    pub(crate) fn busy(self: &Arc<Self>) -> Busy {
        self.busy.fetch_add(1, Ordering::SeqCst);
        Busy(Some(self.clone()))
    }

    /// How many pieces of work are in flight.
    pub(crate) fn in_flight(&self) -> usize {
        self.busy.load(Ordering::SeqCst)
    }

    /// Resolves after the next piece of work ends. Create it (and enable it) before looking at
    /// the counters, so that work ending in between still wakes it.
    pub(crate) fn settled(&self) -> tokio::sync::futures::Notified<'_> {
        self.settled.notified()
    }

    /// Wakes whoever waits for work to end, without a piece of work ending (the timer service
    /// handed a firing over in memory).
    pub(crate) fn poke(&self) {
        self.settled.notify_waiters();
    }

    pub(crate) fn set_mock(&self, name: &str, mock: Mock) {
        self.mocks.write().insert(name.to_string(), mock);
    }

    pub(crate) fn remove_mock(&self, name: &str) {
        self.mocks.write().remove(name);
    }

    pub(crate) fn mock(&self, name: &str) -> Option<Mock> {
        self.mocks.read().get(name).cloned()
    }

    pub(crate) fn record_start(&self, activity: StartedActivity) {
        self.started.lock().push(activity);
    }

    pub(crate) fn started(&self) -> Vec<StartedActivity> {
        self.started.lock().clone()
    }
}

/// Counts one piece of work in flight while it lives (nothing without hooks).
#[must_use = "the work counts as in flight only while the guard lives"]
pub(crate) struct Busy(Option<Arc<Hooks>>);

impl Busy {
    /// The guard of a runtime without hooks.
    pub(crate) fn none() -> Self {
        Busy(None)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        if let Some(hooks) = self.0.take() {
            hooks.busy.fetch_sub(1, Ordering::SeqCst);
            hooks.settled.notify_waiters();
        }
    }
}
