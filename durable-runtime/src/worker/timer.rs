//! The timer service: fires durable timers when they come due.
//!
//! Armed timers live in the store (so they survive restarts) and in a heap here ordered by due
//! time; one task sleeps until the earliest and then commits `TimerFired` for every due timer.
//!
//! Due times are wall-clock times, but Tokio sleeps on the monotonic clock, which stands still
//! while a VM is suspended and ignores clock adjustments. So the service never sleeps longer
//! than [`MAX_TIMER_SLEEP`] before reading the wall clock again: an 8-hour timer fires at most
//! that late after a suspend or a forward jump.

use super::{InFlight, Shared, StopSignal, retry_delay, stopping};
use crate::store::{ErrorClass, TimerWorkItem, Write};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Orders timers by due time, then id.
struct Due(TimerWorkItem);

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        (self.0.fire_at_ms, self.0.id) == (other.0.fire_at_ms, other.0.id)
    }
}

impl Eq for Due {}

impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Due {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.0.fire_at_ms, self.0.id).cmp(&(other.0.fire_at_ms, other.0.id))
    }
}

/// The longest the timer service sleeps before it reads the wall clock again.
pub(crate) const MAX_TIMER_SLEEP: Duration = Duration::from_secs(1);

/// Runs until the runtime stops.
pub(crate) async fn run(
    shared: Arc<Shared>,
    mut armed: mpsc::UnboundedReceiver<TimerWorkItem>,
    mut stopped: StopSignal,
) -> bool {
    let mut heap: BinaryHeap<Reverse<Due>> = BinaryHeap::new();
    let mut in_flight = InFlight::default();
    let deadline = loop {
        let now = shared.clock.now_ms();
        let mut due = Vec::new();
        while heap
            .peek()
            .is_some_and(|Reverse(next)| next.0.fire_at_ms <= now)
        {
            if let Some(Reverse(Due(timer))) = heap.pop() {
                due.push(timer);
            }
        }
        if !due.is_empty() {
            in_flight.spawn(fire_in_order(shared.clone(), due));
        }
        let wait = heap
            .peek()
            .map(|Reverse(due)| {
                Duration::from_millis(
                    u64::try_from(due.0.fire_at_ms.saturating_sub(now)).unwrap_or(0),
                )
            })
            .unwrap_or(MAX_TIMER_SLEEP)
            .min(MAX_TIMER_SLEEP);
        tokio::select! {
            biased;
            deadline = stopping(&mut stopped) => break deadline,
            timer = armed.recv() => match timer {
                Some(timer) => heap.push(Reverse(Due(timer))),
                None => break Instant::now(),
            },
            _ = tokio::time::sleep(wait) => {}
        }
    };
    drop(shared);
    in_flight.drain(deadline).await
}

/// Fires timers that came due together in their due order: their writes are queued to the
/// store in that order (one batch, one fsync) and their messages delivered in that order, so
/// `when_any` over timers that fired during downtime picks the one due first.
async fn fire_in_order(shared: Arc<Shared>, due: Vec<TimerWorkItem>) {
    let writes = due.iter().map(|timer| {
        shared.store.write(Write::FireTimer {
            timer_id: timer.id,
            instance_id: timer.instance_id.clone(),
            task_id: timer.task_id,
        })
    });
    let answers = futures::future::join_all(writes).await;
    for (timer, answer) in due.into_iter().zip(answers) {
        match answer {
            Ok(written) => {
                shared.dispatch(written);
            }
            // Fired again on its own, retrying as long as the error is transient.
            Err(_) => fire(shared.clone(), timer).await,
        }
    }
}

/// Commits the firing, which hands `TimerFired` to the instance.
async fn fire(shared: Arc<Shared>, timer: TimerWorkItem) {
    let mut attempt = 0;
    loop {
        let write = Write::FireTimer {
            timer_id: timer.id,
            instance_id: timer.instance_id.clone(),
            task_id: timer.task_id,
        };
        match shared.commit(write).await {
            Ok(_) => return,
            Err(err) if err.class() == ErrorClass::Transient => {
                tracing::warn!(error = %err, instance = %timer.instance_id, "timer not fired; retrying");
                tokio::time::sleep(retry_delay(attempt)).await;
                attempt += 1;
            }
            Err(err) => {
                // Retrying cannot help; the timer stays in the store for the next start.
                tracing::error!(error = %err, instance = %timer.instance_id, "timer cannot be fired");
                return;
            }
        }
    }
}
