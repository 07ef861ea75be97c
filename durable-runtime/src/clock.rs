//! Where the runtime reads the time: the wall clock in production, a clock a test moves.
//!
//! Durable timers are due at wall-clock times. The timer service waits on the clock's
//! [`ClockTimer`], created once and re-armed before each wait (no allocation per timer). The
//! default timer sleeps on Tokio's monotonic clock, never longer than the service asks (a
//! second at most) before the service reads this clock again, so a suspended VM or a clock
//! that jumps forward fires its due timers promptly. A [`VirtualClock`] stands still until a
//! test moves it, and wakes the timers waiting on it the moment it is moved.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::{Instant, Sleep};

/// A source of wall-clock time, in milliseconds since the Unix epoch.
///
/// ```
/// use durable_runtime::clock::{Clock, SystemClock};
/// assert!(SystemClock.now_ms() > 1_600_000_000_000);
/// ```
pub trait Clock: Send + Sync + 'static {
    /// Now, in milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;

    /// A timer that waits for this clock to reach a time. The timer service makes one when it
    /// starts and re-arms it for every wait. The default sleeps on Tokio's clock, which suits
    /// any clock that moves with real time (the service reads the clock again after each
    /// wait, at least every second); a clock that jumps (a test's) returns a timer it wakes.
    fn timer(&self) -> Box<dyn ClockTimer> {
        Box::new(TokioTimer::new())
    }
}

/// What the timer service waits on: fires once its clock reaches the time it is armed for, or
/// once the real-time bound it was armed with has passed, whichever comes first.
pub trait ClockTimer: Send {
    /// Arms the timer, replacing what it waited for: it fires when the clock reads `due_ms` or
    /// later (`None`: never, by the clock), or after `at_most` of real time. `now_ms` is the
    /// clock's reading the caller computed `due_ms` from.
    fn reset(&mut self, now_ms: i64, due_ms: Option<i64>, at_most: Duration);

    /// Polls the armed timer: ready once it fired (and again on every poll until re-armed).
    fn poll_fired(&mut self, cx: &mut Context<'_>) -> Poll<()>;
}

impl dyn ClockTimer {
    /// Waits until the timer fires.
    pub async fn fired(&mut self) {
        std::future::poll_fn(|cx| self.poll_fired(cx)).await;
    }
}

/// The default [`ClockTimer`]: one Tokio sleep, allocated once and reset for each wait.
struct TokioTimer {
    sleep: Pin<Box<Sleep>>,
}

impl TokioTimer {
    fn new() -> Self {
        TokioTimer {
            sleep: Box::pin(tokio::time::sleep(Duration::ZERO)),
        }
    }
}

impl ClockTimer for TokioTimer {
    fn reset(&mut self, now_ms: i64, due_ms: Option<i64>, at_most: Duration) {
        let until_due = due_ms.map_or(at_most, |due| {
            Duration::from_millis(u64::try_from(due.saturating_sub(now_ms)).unwrap_or(0))
        });
        self.sleep
            .as_mut()
            .reset(Instant::now() + until_due.min(at_most));
    }

    fn poll_fired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.sleep.as_mut().poll(cx)
    }
}

/// The operating system's wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }
}

/// A clock that moves only when it is told to: for tests that run a 72-hour timer in
/// milliseconds. Clones share one time. Moving it wakes the runtime's timer service at once.
///
/// ```
/// use durable_runtime::clock::{Clock, VirtualClock};
/// use std::time::Duration;
///
/// let clock = VirtualClock::new(1_700_000_000_000);
/// clock.advance(Duration::from_secs(72 * 3600));
/// assert_eq!(clock.now_ms(), 1_700_000_000_000 + 72 * 3_600_000);
/// ```
///
/// Give it to [`RuntimeBuilder::clock`](crate::RuntimeBuilder::clock), or let
/// [`TestRuntime`](crate::testing::TestRuntime) drive one for you.
#[derive(Clone, Debug)]
pub struct VirtualClock {
    inner: Arc<VirtualInner>,
}

#[derive(Debug)]
struct VirtualInner {
    now_ms: AtomicI64,
    /// The timers waiting for the clock to move, by timer id.
    sleepers: Mutex<HashMap<u64, Waker>>,
    next_timer: AtomicU64,
}

impl VirtualClock {
    /// A clock reading `start_ms` (milliseconds since the Unix epoch) until it is moved.
    pub fn new(start_ms: i64) -> Self {
        VirtualClock {
            inner: Arc::new(VirtualInner {
                now_ms: AtomicI64::new(start_ms),
                sleepers: Mutex::new(HashMap::new()),
                next_timer: AtomicU64::new(0),
            }),
        }
    }

    /// A clock reading the system clock's time now, until it is moved.
    pub fn starting_now() -> Self {
        VirtualClock::new(SystemClock.now_ms())
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let by_ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        let _ = self
            .inner
            .now_ms
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |now| {
                Some(now.saturating_add(by_ms))
            });
        self.wake_sleepers();
    }

    /// Moves the clock to `at_ms`, if that is later than it reads (a clock never goes back:
    /// timers already fired would be due again).
    pub fn advance_to(&self, at_ms: i64) {
        self.inner.now_ms.fetch_max(at_ms, Ordering::SeqCst);
        self.wake_sleepers();
    }

    fn wake_sleepers(&self) {
        let sleepers: Vec<Waker> = self.inner.sleepers.lock().drain().map(|(_, w)| w).collect();
        for waker in sleepers {
            waker.wake();
        }
    }
}

impl Clock for VirtualClock {
    fn now_ms(&self) -> i64 {
        self.inner.now_ms.load(Ordering::SeqCst)
    }

    fn timer(&self) -> Box<dyn ClockTimer> {
        Box::new(VirtualTimer {
            id: self.inner.next_timer.fetch_add(1, Ordering::Relaxed),
            clock: self.inner.clone(),
            due_ms: None,
            bound: TokioTimer::new(),
        })
    }
}

/// Fires when its [`VirtualClock`] is moved to its due time, or after its real-time bound.
struct VirtualTimer {
    id: u64,
    clock: Arc<VirtualInner>,
    due_ms: Option<i64>,
    /// The real-time bound (the service's polls for reads and back-pressure).
    bound: TokioTimer,
}

impl ClockTimer for VirtualTimer {
    fn reset(&mut self, now_ms: i64, due_ms: Option<i64>, at_most: Duration) {
        self.due_ms = due_ms;
        self.bound.reset(now_ms, None, at_most);
    }

    fn poll_fired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.bound.poll_fired(cx).is_ready() {
            return Poll::Ready(());
        }
        let Some(due_ms) = self.due_ms else {
            return Poll::Pending;
        };
        // Registered before the clock is read: a move in between wakes this poll.
        self.clock
            .sleepers
            .lock()
            .insert(self.id, cx.waker().clone());
        if self.clock.now_ms.load(Ordering::SeqCst) >= due_ms {
            self.clock.sleepers.lock().remove(&self.id);
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

impl Drop for VirtualTimer {
    fn drop(&mut self) {
        self.clock.sleepers.lock().remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_virtual_timer_fires_when_the_clock_is_moved_to_its_due_time() {
        let clock = VirtualClock::new(1_000);
        let mut timer = clock.timer();
        timer.reset(clock.now_ms(), Some(5_000), Duration::from_secs(3600));
        let waiting = tokio::spawn(async move {
            timer.fired().await;
        });
        clock.advance(Duration::from_millis(1_000));
        assert_eq!(clock.now_ms(), 2_000);
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "fired before its due time");
        clock.advance_to(5_000);
        tokio::time::timeout(Duration::from_secs(10), waiting)
            .await
            .expect("fired once due")
            .expect("the task ran");
    }

    #[test]
    fn a_virtual_clock_never_goes_back() {
        let clock = VirtualClock::new(10);
        clock.advance_to(5);
        assert_eq!(clock.now_ms(), 10);
    }
}
