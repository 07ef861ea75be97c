//! Where the runtime reads the time: the wall clock in production, a clock a test moves.
//!
//! Durable timers are due at wall-clock times. The timer service sleeps on Tokio's monotonic
//! clock but never longer than a second before reading this clock
//! again, so a suspended VM or a clock that jumps forward fires its due timers promptly.

use std::time::{SystemTime, UNIX_EPOCH};

/// A source of wall-clock time, in milliseconds since the Unix epoch.
///
/// ```
/// use durable_runtime::clock::{Clock, SystemClock};
/// assert!(SystemClock.now_ms() > 1_600_000_000_000);
/// ```
pub trait Clock: Send + Sync + 'static {
    /// Now, in milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
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
