//! Poison work: an orchestration step or an activity that stops the whole process (an abort, a
//! stack overflow, the out-of-memory killer, a crash in native code) would run again at every
//! restart and stop it again, forever, taking every other instance down with it.
//!
//! So after a start that finds the store left open ([`Backend::stopped_uncleanly`]), the work
//! recovered from the process before is a suspect: the messages and activities startup
//! recovery hands over, and the timers that were due before this start. Before a suspect
//! instance's first step here, and before a suspect activity starts, one more attempt is
//! counted in the store ([`Write::CountAttempt`]), durably, before any user code runs. Work
//! whose count goes past the limit is set aside instead of run: the instance fails, or the
//! activity's task fails (its orchestration decides, as for any [`TaskFailed`]), with the
//! reason recorded. A step that commits sets its instance's count back to 0, and a finished
//! activity's count goes with its work item, so only work that was in hand at each of
//! several stops in a row is set aside.
//!
//! Nothing is counted after a clean stop, nor for work created since the start, and nothing
//! costs anything on the path of a runtime that started cleanly.
//!
//! [`Backend::stopped_uncleanly`]: crate::store::Backend::stopped_uncleanly
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

/// Transient store errors in a row after which an attempt goes uncounted (the work runs).
const COUNT_RETRIES: u32 = 5;

/// The recovered work not yet attempted in this process.
#[derive(Default)]
pub(crate) struct Suspects {
    /// False until the first suspect is noted: the fast path of a clean start.
    any: AtomicBool,
    instances: Mutex<HashSet<String>>,
    activities: Mutex<HashSet<i64>>,
}

impl Suspects {
    pub(crate) fn note_instance(&self, instance_id: &str) {
        self.any.store(true, Ordering::Release);
        self.instances.lock().insert(instance_id.to_string());
    }

    pub(crate) fn note_activity(&self, work_item_id: i64) {
        self.any.store(true, Ordering::Release);
        self.activities.lock().insert(work_item_id);
    }

    /// True (once) if `instance_id` is a suspect not attempted yet.
    fn take_instance(&self, instance_id: &str) -> bool {
        self.any.load(Ordering::Acquire) && self.instances.lock().remove(instance_id)
    }

    /// True (once) if the activity `work_item_id` is a suspect not attempted yet.
    fn take_activity(&self, work_item_id: i64) -> bool {
        self.any.load(Ordering::Acquire) && self.activities.lock().remove(&work_item_id)
    }
}

/// Whether recovered work is watched: the store was left open, and the limit is on.
pub(crate) fn watching(shared: &Shared) -> bool {
    shared.limits.poison_after > 0 && shared.store.stopped_uncleanly()
}

/// Before a step of `instance_id`: `Some(reason)` if it is to be set aside instead.
pub(crate) async fn before_step(shared: &Arc<Shared>, instance_id: &str) -> Option<FailureDetails> {
    if !shared.suspects.take_instance(instance_id) {
        return None;
    }
    let attempts = count(shared, AttemptOf::Instance(instance_id.to_string())).await?;
    over_limit(shared, attempts).then(|| {
        FailureDetails::new(format!(
            "set aside as poison: the process stopped without closing the store while this \
             instance's step was in hand, and again each of the {} times it was retried after \
             a restart",
            attempts - 1
        ))
    })
}

/// Before the activity `work_item_id` named `name` starts: `Some(reason)` if its task is to
/// fail instead.
pub(crate) async fn before_activity(
    shared: &Arc<Shared>,
    work_item_id: i64,
    name: &str,
) -> Option<FailureDetails> {
    if !shared.suspects.take_activity(work_item_id) {
        return None;
    }
    let attempts = count(shared, AttemptOf::Activity(work_item_id)).await?;
    over_limit(shared, attempts).then(|| {
        FailureDetails::new(format!(
            "activity '{name}' set aside as poison: the process stopped without closing the \
             store while it ran, and again each of the {} times it was retried after a restart",
            attempts - 1
        ))
    })
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
