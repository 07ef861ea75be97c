//! Poison work: an orchestration step or an activity that stops the whole process (an abort, a
//! stack overflow, the out-of-memory killer, a crash in native code) would run again at every
//! restart and stop it again, forever, taking every other instance down with it.
//!
//! A runtime marks the store running when it starts and clears the mark when it has shut down
//! ([`Write::MarkRunning`]). A start that finds the mark set follows a runtime that stopped
//! without shutting down, and the work recovered from it is suspect: the messages and
//! activities startup recovery hands over, the results of those activities, and the timers that
//! were due before this start. The step an instance runs after suspect input reaches it, and a
//! suspect activity, is an attempt: counted in the store ([`Write::CountAttempt`]) before any
//! of its code runs (replay included), and cleared once it has run, whatever it did, since the
//! process survived it. So a count only grows for work that was running each time the process
//! stopped.
//!
//! Blame must not fall on innocent work that happened to run beside the poison. The first
//! attempt after a stop runs beside everything else; work whose count was already set (it
//! was running when the process stopped) runs alone, one attempt at a time, in quarantine:
//! if the process stops then, the one attempt running is the one counted. Past the limit, the
//! work is set aside instead of run: the instance fails, or the activity's task fails, with
//! the reason and with details no retry policy retries ([`POISON`]).
//!
//! Nothing is counted after a clean shutdown, nor for work created since the start, and a
//! runtime that started cleanly pays one atomic load per step. Entity operations are not
//! counted yet.
//!
//! Off by default (`poison_after(0)`), because the blame is not yet exact: the quarantine
//! runs work alone only among the work that was running at the stop; first attempts and new
//! work still run beside it, so when several things stop the process in turn, an innocent
//! attempt in quarantine can be counted for another's stop. A quarantined activity also
//! holds its activity slot, and the quarantine, for as long as it runs.

use super::{Shared, retry_delay};
use crate::failure::FailureDetails;
use crate::store::{AttemptOf, ErrorClass, StoreError, Write, Written};
use parking_lot::Mutex;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The default of [`RuntimeBuilder::poison_after`](crate::RuntimeBuilder::poison_after).
pub(crate) const DEFAULT_POISON_AFTER: u32 = 0;

/// The details of a task or instance set aside as poison; a retry policy never retries it.
pub(crate) const POISON: &str = "durable: set aside as poison";

/// Transient store errors in a row after which an attempt goes uncounted (the work runs).
const COUNT_RETRIES: u32 = 5;

/// How long shutdown waits to clear the running mark.
const MARK_STOPPED_TIMEOUT: Duration = Duration::from_secs(2);

/// The suspect work not attempted yet, and the quarantine.
pub(crate) struct Suspects {
    /// Set at the start when the runtime before did not shut down; the fast path otherwise.
    watching: AtomicBool,
    /// Timers due by then (ms since the epoch) are suspect.
    due_by_ms: AtomicI64,
    state: Mutex<State>,
    /// One permit: attempts at work that was running when the process stopped take turns.
    quarantine: Arc<Semaphore>,
}

impl Default for Suspects {
    fn default() -> Self {
        Suspects {
            watching: AtomicBool::new(false),
            due_by_ms: AtomicI64::new(i64::MIN),
            state: Mutex::default(),
            quarantine: Arc::new(Semaphore::new(1)),
        }
    }
}

#[derive(Default)]
struct State {
    /// Instances that suspect input has reached since their last attempt.
    instances: HashSet<String>,
    activities: HashSet<i64>,
}

impl Suspects {
    /// Whether recovered work is watched (see the module's documentation).
    pub(crate) fn watching(&self) -> bool {
        self.watching.load(Ordering::Acquire)
    }

    /// Suspect input reaches `instance_id`: its next step is an attempt.
    pub(crate) fn note_instance(&self, instance_id: &str) {
        self.state.lock().instances.insert(instance_id.to_string());
    }

    pub(crate) fn note_activity(&self, work_item_id: i64) {
        self.state.lock().activities.insert(work_item_id);
    }

    /// Whether a timer due at `fire_at_ms` was due before this start.
    pub(crate) fn timer_is_suspect(&self, fire_at_ms: i64) -> bool {
        self.watching() && fire_at_ms <= self.due_by_ms.load(Ordering::Acquire)
    }

    fn take_instance(&self, instance_id: &str) -> bool {
        self.watching() && self.state.lock().instances.remove(instance_id)
    }

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
                let suspects = &shared.suspects;
                suspects
                    .due_by_ms
                    .store(shared.clock.now_ms(), Ordering::Release);
                suspects.watching.store(true, Ordering::Release);
            }
        }
        Ok(_) => {}
        // A store that does not keep the mark (PostgreSQL, for now).
        Err(err @ StoreError::Refused(_)) => {
            tracing::debug!(error = %err, "poison work is not counted on this store");
        }
        Err(err) => {
            tracing::warn!(error = %err, "could not mark the store running: poison work is not counted in this run");
        }
    }
}

/// Clears the mark [`mark_running`] set: the runtime has shut down. Bounded: a store that
/// hangs must not hold shutdown.
pub(crate) async fn mark_stopped(shared: &Shared) {
    let write = shared.store.write(Write::MarkRunning(false));
    match tokio::time::timeout(MARK_STOPPED_TIMEOUT, write).await {
        Ok(Ok(_)) => {}
        Ok(Err(err)) if err.class() == ErrorClass::Fatal => {}
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "could not mark the store stopped: the next start counts the attempts at the work left");
        }
        Err(_) => tracing::warn!(
            "the store did not take the stopped mark in time: the next start counts the attempts at the work left"
        ),
    }
}

/// What to do with a step or an activity about to run.
pub(crate) enum Verdict {
    /// Not an attempt at suspect work: run it.
    Run,
    /// An attempt, counted: run it (alone, if it holds the quarantine), then [`Attempt::ran`].
    Attempt(Attempt),
    /// Set aside: fail it with this instead.
    SetAside(FailureDetails),
}

/// A counted attempt in progress.
pub(crate) struct Attempt {
    of: AttemptOf,
    _quarantine: Option<OwnedSemaphorePermit>,
}

impl Attempt {
    /// The attempt has run and the process survived it: its count goes back to 0 (and the
    /// quarantine is free for the next one).
    pub(crate) async fn ran(self, shared: &Arc<Shared>) {
        if let Err(err) = shared
            .store
            .write(Write::ClearAttempts(self.of.clone()))
            .await
        {
            tracing::warn!(error = %err, of = ?self.of, "could not clear the attempts at recovered work");
        }
    }
}

/// Whether the next step of `instance_id` is an attempt at suspect work (then
/// [`attempt_step`] says what to do; asked once per suspicion). Synchronous and cheap: the
/// path of every step.
pub(crate) fn suspect_step(shared: &Shared, instance_id: &str) -> bool {
    shared.suspects.take_instance(instance_id)
}

/// Before a suspect step of `instance_id` (before its history is replayed).
pub(crate) async fn attempt_step(shared: &Arc<Shared>, instance_id: &str) -> Verdict {
    let what = "set aside as poison: the process stopped while this instance's step ran";
    attempt(shared, AttemptOf::Instance(instance_id.to_string()), what).await
}

/// Before the activity `work_item_id` named `name` starts.
pub(crate) async fn before_activity(
    shared: &Arc<Shared>,
    work_item_id: i64,
    name: &str,
) -> Verdict {
    if !shared.suspects.take_activity(work_item_id) {
        return Verdict::Run;
    }
    let what = format!("activity '{name}' set aside as poison: the process stopped while it ran");
    attempt(shared, AttemptOf::Activity(work_item_id), &what).await
}

/// Counts an attempt at `of` (in quarantine if it was running when the process stopped), or
/// sets it aside, saying `what` happened.
async fn attempt(shared: &Arc<Shared>, of: AttemptOf, what: &str) -> Verdict {
    let limit = shared.limits.poison_after;
    // Counted now only if it was not running when the process stopped; otherwise it waits
    // for its turn alone and is counted only then, so that waiting behind the poison costs
    // it nothing.
    let (attempts, quarantine) = match count(shared, &of, true).await {
        // Gone meanwhile (finished, purged): nothing of it runs.
        None | Some(Counted::Already(0)) => return Verdict::Run,
        Some(Counted::Now(attempts)) => (attempts, None),
        Some(Counted::Already(attempts)) if attempts > limit => {
            return Verdict::SetAside(set_aside(what, attempts));
        }
        Some(Counted::Already(_)) => {
            let Ok(permit) = shared.suspects.quarantine.clone().acquire_owned().await else {
                return Verdict::Run;
            };
            match count(shared, &of, false).await {
                Some(Counted::Now(attempts) | Counted::Already(attempts)) => {
                    (attempts, Some(permit))
                }
                None => return Verdict::Run,
            }
        }
    };
    if attempts > limit {
        return Verdict::SetAside(set_aside(what, attempts));
    }
    Verdict::Attempt(Attempt {
        of,
        _quarantine: quarantine,
    })
}

/// The failure of work set aside after `attempts` counted attempts, each of which stopped
/// the process (the first count is the first retry after the stop that began it).
fn set_aside(what: &str, attempts: u32) -> FailureDetails {
    let retries = attempts.saturating_sub(1);
    let mut failure = FailureDetails::new(format!(
        "{what}, and again each of the {retries} times it was retried after a restart"
    ));
    failure.details = Some(POISON.to_string());
    failure
}

enum Counted {
    /// Counted by this call; the count now.
    Now(u32),
    /// Not counted: it was counted before (and not cleared); the count.
    Already(u32),
}

/// Counts one attempt (with `unless_counted`, only if the count is 0); `None` if it could not
/// be counted (the work runs: a store that cannot count is no reason to set anything aside).
async fn count(shared: &Arc<Shared>, of: &AttemptOf, unless_counted: bool) -> Option<Counted> {
    let mut failures = 0;
    loop {
        let write = Write::CountAttempt {
            of: of.clone(),
            unless_counted,
        };
        match shared.store.write(write).await {
            Ok(Written::Attempts {
                count,
                counted: true,
            }) => return Some(Counted::Now(count)),
            Ok(Written::Attempts {
                count,
                counted: false,
            }) => {
                return Some(Counted::Already(count));
            }
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
