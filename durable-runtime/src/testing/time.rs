//! Moving virtual time: when every instance is idle, and only then.
//!
//! "Idle" comes from the engine's own counters: the work the hooks count in flight (steps,
//! commits, activities running, timer firings, startup recovery), the messages waiting in the
//! dispatcher's slots, the activities queued, the messages recovery holds back, plus the
//! store's armed timers, none of which may be due already (a due timer is a firing the timer
//! service has yet to hand over). Entity operations count too: a delivered message holds a
//! guard until its entity's task takes it in, and the task holds one while it has operations
//! to run (not while they all wait for a lock: the holder's own work counts then).

use super::{TestError, TestRuntime};
use crate::clock::Clock;
use crate::error::Error;
use crate::instance::InstanceStatus;
use crate::store::DueKey;
use std::time::Duration;

/// How long a due timer may stay in the store, with the engine otherwise idle, before the
/// harness stops waiting for it (it belongs to no live run, say); real time.
const STUCK_TIMER_GRACE: Duration = Duration::from_secs(2);

impl TestRuntime {
    /// Waits until every instance is idle, without moving the clock: every step committed,
    /// every activity run and its result recorded, every due timer fired.
    pub async fn run_until_idle(&self) -> Result<(), TestError> {
        self.settle().await.map(|_| ())
    }

    /// Moves the virtual clock forward by `by`, one due time after another: the timers due
    /// within it fire in due order, and each one's consequences (the steps and activities it
    /// causes, timers they arm within `by`) play out before the clock moves on. Returns once
    /// every instance is idle at the new time.
    pub async fn advance(&self, by: Duration) -> Result<(), TestError> {
        let target = self
            .now_ms()
            .saturating_add(i64::try_from(by.as_millis()).unwrap_or(i64::MAX));
        loop {
            match self.settle().await? {
                Some(due) if due <= target => self.clock.advance_to(due),
                _ => break,
            }
        }
        self.clock.advance_to(target);
        self.settle().await.map(|_| ())
    }

    /// Runs the instance to its end, moving the virtual clock to the next due timer whenever
    /// every instance is idle, and returns its final status (with its history).
    ///
    /// Fails with [`TestError::Stalled`] if every instance is idle, no timer is armed and the
    /// instance has not finished (it waits for an event, say): raise it, then wait again.
    pub async fn wait_for_completion(
        &self,
        instance_id: &str,
    ) -> Result<InstanceStatus, TestError> {
        loop {
            let next_due = self.settle().await?;
            let status = self.status(instance_id).await?;
            if status.runtime_status.is_terminal() {
                return Ok(status);
            }
            match next_due {
                Some(due) => self.clock.advance_to(due),
                None => {
                    return Err(TestError::Stalled {
                        instance_id: instance_id.to_string(),
                        status: status.runtime_status,
                    });
                }
            }
        }
    }

    /// Waits until every instance is idle; returns when the next armed timer is due, if any
    /// is (always later than now).
    async fn settle(&self) -> Result<Option<i64>, TestError> {
        let shared = &self.runtime.shared;
        let mut stuck: Option<(DueKey, tokio::time::Instant)> = None;
        loop {
            // Enabled before the counters are read: work that ends in between still wakes us.
            let settled = self.hooks.settled();
            tokio::pin!(settled);
            settled.as_mut().enable();
            if self.engine_idle() {
                let page = shared
                    .store
                    .pending_timers(DueKey::FIRST, 1)
                    .await
                    .map_err(Error::from)?;
                let now = self.clock.now_ms();
                let first = page.items.first().map(|timer| timer.due_key());
                // Work that began while the store was read (a due timer fired) is waited for.
                if self.engine_idle() {
                    match first {
                        None => return Ok(None),
                        Some(key) if key.fire_at_ms > now => return Ok(Some(key.fire_at_ms)),
                        Some(key) => match stuck {
                            // The same due timer, still there with nothing else going on.
                            Some((seen, since))
                                if seen == key && since.elapsed() >= STUCK_TIMER_GRACE =>
                            {
                                tracing::warn!(
                                    timer = key.id,
                                    "a due timer is not firing; ignored by the test runtime"
                                );
                                return self.next_after(key).await;
                            }
                            Some((seen, _)) if seen == key => {}
                            _ => stuck = Some((key, tokio::time::Instant::now())),
                        },
                    }
                    // A due timer the timer service has yet to hand over: it pokes the hooks
                    // when it does. The timeout only bounds waiting for one that never fires.
                    let _ = tokio::time::timeout(STUCK_TIMER_GRACE, settled).await;
                    continue;
                }
            }
            settled.await;
        }
    }

    /// When the first armed timer after `key` is due, if any is.
    async fn next_after(&self, key: DueKey) -> Result<Option<i64>, TestError> {
        let shared = &self.runtime.shared;
        let now = self.clock.now_ms();
        let after = DueKey {
            fire_at_ms: key.fire_at_ms.max(now),
            id: i64::MAX,
        };
        let page = shared
            .store
            .pending_timers(after, 1)
            .await
            .map_err(Error::from)?;
        Ok(page.items.first().map(|timer| timer.fire_at_ms))
    }

    /// True when no work is in flight or waiting in memory.
    fn engine_idle(&self) -> bool {
        let shared = &self.runtime.shared;
        let (messages, activities) = shared.dispatcher.backlog();
        self.hooks.in_flight() == 0
            && messages == 0
            && activities == 0
            && shared.held_messages() == 0
    }
}
