//! The timer service: fires durable timers when they come due.
//!
//! Armed timers live in the store (so they survive restarts) and in a heap here ordered by due
//! time; one task sleeps until the earliest and then commits `TimerFired` for every due timer.

use super::{InFlight, RETRY_DELAY, Shared};
use crate::history::now_ms;
use crate::store::{TimerWorkItem, Write, Written};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

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

/// Runs until the runtime stops.
pub(crate) async fn run(
    shared: Arc<Shared>,
    mut armed: mpsc::UnboundedReceiver<TimerWorkItem>,
    mut stopped: watch::Receiver<bool>,
    grace: Duration,
) -> bool {
    let mut heap: BinaryHeap<Reverse<Due>> = BinaryHeap::new();
    let mut in_flight = InFlight::default();
    loop {
        let now = now_ms();
        while heap
            .peek()
            .is_some_and(|Reverse(due)| due.0.fire_at_ms <= now)
        {
            if let Some(Reverse(Due(timer))) = heap.pop() {
                in_flight.spawn(fire(shared.clone(), timer));
            }
        }
        let wait = heap
            .peek()
            .map(|Reverse(due)| {
                Duration::from_millis(u64::try_from(due.0.fire_at_ms - now).unwrap_or(0))
            })
            .unwrap_or(Duration::from_secs(3600));
        tokio::select! {
            biased;
            _ = stopped.wait_for(|stop| *stop) => break,
            timer = armed.recv() => match timer {
                Some(timer) => heap.push(Reverse(Due(timer))),
                None => break,
            },
            _ = tokio::time::sleep(wait) => {}
        }
    }
    drop(shared);
    in_flight.drain(grace).await
}

/// Commits the firing, then hands `TimerFired` to the instance.
async fn fire(shared: Arc<Shared>, timer: TimerWorkItem) {
    loop {
        let write = Write::FireTimer {
            timer_id: timer.id,
            instance_id: timer.instance_id.clone(),
            task_id: timer.task_id,
        };
        match shared.store.write(write).await {
            Ok(Written::Delivered(Some(message))) => return shared.dispatcher.deliver(message),
            Ok(_) => return,
            Err(err) => {
                tracing::error!(error = %err, instance = %timer.instance_id, "timer not fired; retrying");
                tokio::time::sleep(RETRY_DELAY).await;
            }
        }
    }
}
