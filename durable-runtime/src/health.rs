//! Store health: whether the runtime's writes are getting through.
//!
//! A write that fails for a transient reason (a full disk, an I/O error) is retried a few times
//! quickly ([`QUICK_RETRIES`], backing off from 50 ms): a blip passes unnoticed. A write still
//! failing after that is *failing*: it is logged as an error, counted in
//! [`Health::Degraded`], and retried at a slower pace (the builder's
//! `write_retry_interval`) for as long as it takes. Nothing is dropped: the work stays in the
//! store, or in memory where it is re-driven. The first write that gets through again wakes
//! every failing one at once, so the runtime recovers as soon as the disk has room, and health
//! returns to [`Health::Healthy`] once none is failing.
//!
//! Client calls (`start`, `raise_event`) are not retried: facing a failing store they return
//! [`Error::StoreUnavailable`](crate::Error::StoreUnavailable) at once, and mark the store
//! degraded until a write gets through.

use crate::clock::Clock;
use crate::store::StoreError;
use parking_lot::Mutex;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{Notify, watch};

/// Quick retries of a write that failed transiently before it counts as failing (with the
/// back-off of 50, 100, 200, 400 and 800 ms: about 1.5 s in all).
pub(crate) const QUICK_RETRIES: u32 = 5;

/// How often a failing write is retried when nothing says otherwise.
pub const DEFAULT_WRITE_RETRY_INTERVAL: Duration = Duration::from_secs(5);

/// Whether the runtime's writes are getting through to its store, from
/// [`Runtime::health`](crate::Runtime::health) (or watched with
/// [`Runtime::watch_health`](crate::Runtime::watch_health)).
///
/// ```no_run
/// # async fn demo(runtime: durable_runtime::Runtime) {
/// use durable_runtime::Health;
/// match runtime.health() {
///     Health::Healthy => println!("ok"),
///     Health::Degraded { last_error, failing_writes, .. } => {
///         eprintln!("{failing_writes} writes waiting on the store: {last_error}")
///     }
/// }
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Health {
    /// Writes are getting through.
    Healthy,
    /// Writes are failing (a full disk, an I/O error). Work is kept and retried at a slower
    /// pace; the runtime returns to [`Health::Healthy`] by itself once they get through.
    Degraded {
        /// When the store started failing (the runtime's clock).
        since: SystemTime,
        /// The most recent write error.
        last_error: String,
        /// Pieces of work (orchestration steps, timer firings, recorded failures) whose writes
        /// failed past their quick retries and now wait to be retried. 0 when only client
        /// calls were refused.
        failing_writes: usize,
    },
}

impl Health {
    /// True for [`Health::Healthy`].
    pub fn is_healthy(&self) -> bool {
        matches!(self, Health::Healthy)
    }
}

/// What the monitor knows, under its lock.
#[derive(Default)]
struct State {
    /// Writes past their quick retries, waiting for the next one.
    failing: usize,
    /// A write nobody retries (a client call) failed, and none got through since.
    refused: bool,
    /// When the store started failing (ms since the epoch).
    since_ms: Option<i64>,
    last_error: String,
}

/// Tracks write failures and publishes [`Health`].
pub(crate) struct HealthMonitor {
    /// True while degraded: a write that gets through checks only this (one relaxed load on
    /// the hot path) and takes the lock only to report a recovery.
    degraded: AtomicBool,
    state: Mutex<State>,
    published: watch::Sender<Health>,
    /// Wakes failing writes when one gets through, or when the runtime stops.
    recovered: Notify,
    /// Set when the runtime stops: failing writes give up (their work stays in the store for
    /// the next start) instead of holding shutdown until its timeout.
    stopping: AtomicBool,
    clock: Arc<dyn Clock>,
    retry_interval: Duration,
}

impl HealthMonitor {
    pub(crate) fn new(clock: Arc<dyn Clock>, retry_interval: Duration) -> Self {
        HealthMonitor {
            degraded: AtomicBool::new(false),
            state: Mutex::new(State::default()),
            published: watch::Sender::new(Health::Healthy),
            recovered: Notify::new(),
            stopping: AtomicBool::new(false),
            clock,
            retry_interval,
        }
    }

    /// The health now.
    pub(crate) fn current(&self) -> Health {
        self.published.borrow().clone()
    }

    /// A receiver that sees every change of health.
    pub(crate) fn subscribe(&self) -> watch::Receiver<Health> {
        self.published.subscribe()
    }

    /// A write got through.
    #[inline]
    pub(crate) fn write_succeeded(&self) {
        if self.degraded.load(Ordering::Relaxed) {
            let mut state = self.state.lock();
            state.refused = false;
            self.publish(&mut state);
            drop(state);
            // The failing writes try again now rather than at their next slow retry.
            self.recovered.notify_waiters();
        }
    }

    /// The runtime stops: writes that are failing give up.
    pub(crate) fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.recovered.notify_waiters();
    }

    /// A write that nobody retries (a client call) failed transiently.
    pub(crate) fn write_refused(&self, error: &StoreError) {
        tracing::error!(%error, "the store refused a client write");
        let mut state = self.state.lock();
        state.refused = true;
        state.last_error = error.to_string();
        self.publish(&mut state);
    }

    /// Recomputes the health and publishes it if it changed.
    fn publish(&self, state: &mut State) {
        let degraded = state.failing > 0 || state.refused;
        let health = if degraded {
            let since_ms = *state.since_ms.get_or_insert_with(|| self.clock.now_ms());
            let since = UNIX_EPOCH + Duration::from_millis(u64::try_from(since_ms).unwrap_or(0));
            Health::Degraded {
                since,
                last_error: state.last_error.clone(),
                failing_writes: state.failing,
            }
        } else {
            state.since_ms = None;
            Health::Healthy
        };
        let was_degraded = self.degraded.swap(degraded, Ordering::Relaxed);
        if was_degraded && !degraded {
            tracing::info!("store writes are getting through again; the runtime is healthy");
        }
        self.published.send_if_modified(|current| {
            let changed = *current != health;
            *current = health;
            changed
        });
    }
}

/// Retries one piece of work's write: quickly at first, then (counted as failing in the
/// health) at the slow pace, until it gets through. One per piece of work; dropping it stops
/// counting the work as failing.
pub(crate) struct WriteRetry<'a> {
    monitor: &'a HealthMonitor,
    attempt: u32,
    failing: bool,
}

impl<'a> WriteRetry<'a> {
    pub(crate) fn new(monitor: &'a HealthMonitor) -> Self {
        WriteRetry {
            monitor,
            attempt: 0,
            failing: false,
        }
    }

    /// How many times the write failed so far.
    pub(crate) fn attempts(&self) -> u32 {
        self.attempt
    }

    /// Waits before the next attempt at a write that failed with the transient `error`.
    /// Returns false if the caller should give up instead: the write is failing past its quick
    /// retries and the runtime is stopping (the work stays in the store for the next start).
    pub(crate) async fn failed(&mut self, what: &str, error: &StoreError) -> bool {
        let attempt = self.attempt;
        self.attempt = self.attempt.saturating_add(1);
        if attempt < QUICK_RETRIES {
            tracing::warn!(%error, attempt, "{what} not written; retrying");
            tokio::time::sleep(retry_delay(attempt)).await;
            return true;
        }
        {
            let mut state = self.monitor.state.lock();
            if !self.failing {
                self.failing = true;
                state.failing += 1;
                tracing::error!(
                    %error,
                    attempts = self.attempt,
                    "{what} still not written after its quick retries; retrying every {:?} \
                     until the store takes it",
                    self.monitor.retry_interval
                );
            }
            state.last_error = error.to_string();
            self.monitor.publish(&mut state);
        }
        // Registered before the flag is read, so a recovery or a stop in between is not
        // missed.
        let recovered = self.monitor.recovered.notified();
        if self.monitor.stopping.load(Ordering::SeqCst) {
            tracing::error!("{what} given up at shutdown: the store does not take it");
            return false;
        }
        tokio::select! {
            () = recovered => {}
            () = tokio::time::sleep(self.monitor.retry_interval) => {}
        }
        !self.monitor.stopping.load(Ordering::SeqCst)
    }
}

impl Drop for WriteRetry<'_> {
    fn drop(&mut self) {
        if self.failing {
            let mut state = self.monitor.state.lock();
            state.failing -= 1;
            self.monitor.publish(&mut state);
        }
    }
}

/// Back-off before a quick retry of a write that failed transiently: doubling from 50 ms.
pub(crate) fn retry_delay(attempt: u32) -> Duration {
    let ms = 50u64.saturating_mul(1u64 << attempt.min(7));
    Duration::from_millis(ms.min(5_000))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;

    fn monitor() -> HealthMonitor {
        HealthMonitor::new(Arc::new(SystemClock), Duration::from_millis(1))
    }

    #[test]
    fn a_refused_client_write_degrades_until_a_write_gets_through() {
        let monitor = monitor();
        let mut watch = monitor.subscribe();
        monitor.write_refused(&StoreError::Unavailable("disk full".into()));
        assert!(watch.has_changed().expect("open"));
        match watch.borrow_and_update().clone() {
            Health::Degraded {
                last_error,
                failing_writes,
                ..
            } => {
                assert!(last_error.contains("disk full"), "{last_error}");
                assert_eq!(failing_writes, 0);
            }
            Health::Healthy => panic!("a refused write degrades"),
        }
        monitor.write_succeeded();
        assert_eq!(monitor.current(), Health::Healthy);
    }

    #[tokio::test]
    async fn a_write_counts_as_failing_only_after_its_quick_retries() {
        let monitor = monitor();
        let error = StoreError::Unavailable("I/O error".into());
        let mut retry = WriteRetry::new(&monitor);
        for _ in 0..QUICK_RETRIES {
            assert!(retry.failed("a step", &error).await);
            assert!(monitor.current().is_healthy(), "a blip is not reported");
        }
        assert!(retry.failed("a step", &error).await);
        let Health::Degraded { failing_writes, .. } = monitor.current() else {
            panic!("failing past the quick retries degrades");
        };
        assert_eq!(failing_writes, 1);
        // Failing again is still one failing write.
        assert!(retry.failed("a step", &error).await);
        let Health::Degraded { failing_writes, .. } = monitor.current() else {
            panic!("still failing");
        };
        assert_eq!(failing_writes, 1);
        // A write getting through elsewhere does not make a failing one healthy...
        monitor.write_succeeded();
        assert!(!monitor.current().is_healthy());
        // ...its own success (the retry is dropped) does.
        drop(retry);
        assert_eq!(monitor.current(), Health::Healthy);
    }

    #[tokio::test]
    async fn a_failing_write_gives_up_when_the_runtime_stops() {
        // Slow retries an hour apart: only the stop can end the wait.
        let monitor = Arc::new(HealthMonitor::new(
            Arc::new(SystemClock),
            Duration::from_secs(3600),
        ));
        let error = StoreError::Unavailable("disk full".into());
        let (failing_tx, mut failing_rx) = tokio::sync::mpsc::channel(1);
        let waiting = tokio::spawn({
            let monitor = monitor.clone();
            async move {
                let mut retry = WriteRetry::new(&monitor);
                for _ in 0..QUICK_RETRIES {
                    assert!(retry.failed("a step", &error).await);
                }
                let failing = retry.failed("a step", &error);
                // Past the quick retries; the slow wait starts with the next poll.
                let _ = failing_tx.send(()).await;
                failing.await
            }
        });
        failing_rx.recv().await.expect("reaches the slow retry");
        monitor.stop();
        let gave_up = tokio::time::timeout(Duration::from_secs(30), waiting)
            .await
            .expect("the stop ends the wait")
            .expect("joins");
        assert!(!gave_up);
        assert!(
            monitor.current().is_healthy(),
            "given up, it counts as failing no more"
        );
    }
}
