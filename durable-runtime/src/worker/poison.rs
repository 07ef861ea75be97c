//! Poison work: an orchestration step or an activity that stops the whole process (an abort, a
//! stack overflow, the out-of-memory killer, a crash in native code) would run again at every
//! restart and stop it again, forever, taking every other instance down with it.
//!
//! A runtime marks the store running when it starts and clears the mark when it has shut down
//! ([`Write::MarkRunning`]). A start that finds the mark set follows a runtime that stopped
//! without shutting down, and the work recovered from it is a suspect: the messages and
//! activities startup recovery hands over (and the instances of those activities, whose
//! results reach them in memory), and the timers that were due before this start. Right
//! before a suspect instance's first step here runs its code, and before a suspect activity
//! starts, one more attempt is counted in the store ([`Write::CountAttempt`]), durably,
//! before any user code runs. Work whose count goes past the limit is set aside instead of
//! run: the instance fails, or the activity's task fails (with a failure no retry policy
//! retries; its orchestration decides, as for any [`TaskFailed`]), with the reason recorded.
//! A step that commits sets its instance's count back to 0, and so does an activity that
//! returns, so only work that was running at each of several stops in a row is set aside.
//!
//! Nothing is counted after a clean shutdown, nor for work created since the start, and
//! nothing costs anything on the path of a runtime that started cleanly. Entity operations
//! are not counted yet.
//!
//! [`TaskFailed`]: crate::HistoryEvent::TaskFailed

use super::{Shared, retry_delay};
use crate::failure::FailureDetails;
use crate::store::{AttemptOf, ErrorClass, Write, Written};
use parking_lot::Mutex;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The default of [`RuntimeBuilder::poison_after`](crate::RuntimeBuilder::poison_after).
pub(crate) const DEFAULT_POISON_AFTER: u32 = 10;

/// The details of a task set aside as poison; a retry policy never retries it.
pub(crate) const POISON: &str = "durable: set aside as poison";

/// Transient store errors in a row after which an attempt goes uncounted (the work runs).
const COUNT_RETRIES: u32 = 5;

/// The recovered work not yet attempted in this process.
#[derive(Default)]
pub(crate) struct Suspects {
    /// Set at the start when the runtime before did not shut down; the fast path otherwise.
    watching: AtomicBool,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    instances: HashSet<String>,
    activities: HashSet<i64>,
    /// Instances counted once here already: a timer read later does not count them again.
    attempted: HashSet<String>,
}

impl Suspects {
    /// Whether recovered work is watched (see the module's documentation).
    pub(crate) fn watching(&self) -> bool {
        self.watching.load(Ordering::Acquire)
    }

    pub(crate) fn note_instance(&self, instance_id: &str) {
        let mut state = self.state.lock();
        if !state.attempted.contains(instance_id) {
            state.instances.insert(instance_id.to_string());
        }
    }

    pub(crate) fn note_activity(&self, work_item_id: i64) {
        self.state.lock().activities.insert(work_item_id);
    }

    /// True (once) if `instance_id` is a suspect not attempted yet.
    fn take_instance(&self, instance_id: &str) -> bool {
        if !self.watching() {
            return false;
        }
        let mut state = self.state.lock();
        let taken = state.instances.remove(instance_id);
        if taken {
            state.attempted.insert(instance_id.to_string());
        }
        taken
    }

    /// True (once) if the activity `work_item_id` is a suspect not attempted yet.
    fn take_activity(&self, work_item_id: i64) -> bool {
        self.watching() && self.state.lock().activities.remove(&work_item_id)
    }
}

/// Marks the store running; from now on recovered work is watched if the runtime before did
/// not shut down (and the limit is on). Called before recovery hands anything over.
pub(crate) async fn mark_running(shared: &Shared) {
    match shared.store.write(Write::MarkRunning(true)).await {
        Ok(Written::WasRunning(true)) => {
            tracing::warn!(
                "the runtime before stopped without shutting down (killed, crashed): the attempts at the work it left are counted"
            );
            if shared.limits.poison_after > 0 {
                shared.suspects.watching.store(true, Ordering::Release);
            }
        }
        Ok(_) => {}
        Err(err) => {
            tracing::debug!(error = %err, "the store does not keep whether a runtime runs on it; poison work is not counted");
        }
    }
}

/// Clears the mark [`mark_running`] set: the runtime has shut down.
pub(crate) async fn mark_stopped(shared: &Shared) {
    if let Err(err) = shared.store.write(Write::MarkRunning(false)).await
        && err.class() != ErrorClass::Fatal
    {
        tracing::warn!(error = %err, "could not mark the store stopped: the next start counts the attempts at the work left");
    }
}

/// Right before a step of `instance_id` runs its code: `Some(reason)` if the instance is to
/// be set aside instead.
pub(crate) async fn before_step(shared: &Arc<Shared>, instance_id: &str) -> Option<FailureDetails> {
    if !shared.suspects.take_instance(instance_id) {
        return None;
    }
    let attempts = count(shared, AttemptOf::Instance(instance_id.to_string())).await?;
    over_limit(shared, attempts).then(|| {
        FailureDetails::new(format!(
            "set aside as poison: the process stopped while this instance's step ran, and \
             again each of the {} times it was retried after a restart",
            attempts - 1
        ))
    })
}

/// What to do with an activity about to start.
pub(crate) enum ActivityVerdict {
    /// Not a suspect: run it.
    Run,
    /// A suspect, counted: run it, then call [`returned`].
    RunCounted,
    /// Set aside: its task fails with this.
    SetAside(FailureDetails),
}

/// Before the activity `work_item_id` named `name` starts.
pub(crate) async fn before_activity(
    shared: &Arc<Shared>,
    work_item_id: i64,
    name: &str,
) -> ActivityVerdict {
    if !shared.suspects.take_activity(work_item_id) {
        return ActivityVerdict::Run;
    }
    let Some(attempts) = count(shared, AttemptOf::Activity(work_item_id)).await else {
        return ActivityVerdict::Run;
    };
    if !over_limit(shared, attempts) {
        return ActivityVerdict::RunCounted;
    }
    let mut failure = FailureDetails::new(format!(
        "activity '{name}' set aside as poison: the process stopped while it ran, and again \
         each of the {} times it was retried after a restart",
        attempts - 1
    ));
    failure.details = Some(POISON.to_string());
    ActivityVerdict::SetAside(failure)
}

/// A counted activity returned: the process survived it, so it is no suspect any more (its
/// result becomes durable only with its orchestration's next step, which may be the poison).
pub(crate) async fn returned(shared: &Arc<Shared>, work_item_id: i64) {
    if let Err(err) = shared
        .store
        .write(Write::ClearAttempts(AttemptOf::Activity(work_item_id)))
        .await
    {
        tracing::warn!(error = %err, "could not clear an activity's attempts");
    }
}

/// The first attempt counted is the first retry after a stop: the limit is on the retries.
fn over_limit(shared: &Shared, attempts: u32) -> bool {
    attempts > shared.limits.poison_after
}

/// Counts one attempt; `None` if it could not be counted (the work runs: a store that cannot
/// count is no reason to set anything aside).
async fn count(shared: &Arc<Shared>, of: AttemptOf) -> Option<u32> {
    let mut failures = 0;
    loop {
        match shared.store.write(Write::CountAttempt(of.clone())).await {
            Ok(Written::Attempts(attempts)) => return Some(attempts),
            Ok(other) => {
                tracing::error!(
                    ?other,
                    "the store answered an attempt count with something else"
                );
                return None;
            }
            Err(err) if err.class() == ErrorClass::Transient && failures < COUNT_RETRIES => {
                failures += 1;
                tokio::time::sleep(retry_delay(failures)).await;
            }
            Err(err) => {
                tracing::warn!(error = %err, ?of, "could not count an attempt at recovered work; it runs");
                return None;
            }
        }
    }
}
