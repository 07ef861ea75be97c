//! The loops that drain the runtime's work queues (orchestration steps, activities), each item
//! a task of its own, at most as many at a time as the queue has slots, until the runtime
//! stops.

use super::{InFlight, Shared, Slot, StopSignal, stopping};
use crate::dispatch::FairQueue;
use crate::store::ActivityWorkItem;
use std::sync::Arc;
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;

/// What a queue loop does with the items still queued when the runtime stops.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum AfterStop {
    /// Leave them to the store (activities not started run at the next start).
    LeaveQueued,
    /// Run them before the deadline (steps that record results already computed).
    RunQueued,
}

/// A queue a worker loop drains.
pub(crate) trait WorkQueue<T>: Send {
    /// The next item; `None` once no more can come.
    fn recv(&mut self) -> impl std::future::Future<Output = Option<T>> + Send;
    /// The next item if one is waiting.
    fn try_recv(&mut self) -> Option<T>;
}

impl<T: Send> WorkQueue<T> for mpsc::UnboundedReceiver<T> {
    fn recv(&mut self) -> impl std::future::Future<Output = Option<T>> + Send {
        mpsc::UnboundedReceiver::recv(self)
    }

    fn try_recv(&mut self) -> Option<T> {
        mpsc::UnboundedReceiver::try_recv(self).ok()
    }
}

impl WorkQueue<ActivityWorkItem> for Arc<FairQueue> {
    async fn recv(&mut self) -> Option<ActivityWorkItem> {
        Some(self.pop().await)
    }

    fn try_recv(&mut self) -> Option<ActivityWorkItem> {
        self.try_pop()
    }
}

/// Drains `queue`, running `work` on each item as its own task, at most `slots` at a time
/// (the work holds its [`Slot`] for as long as it counts as running),
/// until the runtime stops; then lets the tasks in flight finish (until the stop's deadline).
/// Returns false if some had to be abandoned.
pub(crate) async fn run_queue<T, Q, F, Fut>(
    shared: Arc<Shared>,
    mut queue: Q,
    slots: Arc<Semaphore>,
    mut stopped: StopSignal,
    after_stop: AfterStop,
    work: F,
) -> bool
where
    T: Send + 'static,
    Q: WorkQueue<T>,
    F: Fn(Arc<Shared>, T, Slot) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut in_flight = InFlight::default();
    let deadline = loop {
        let item = tokio::select! {
            biased;
            deadline = stopping(&mut stopped) => break deadline,
            next = queue.recv() => match next { Some(item) => item, None => break Instant::now() },
            // An idle queue still frees the tasks that finished.
            () = in_flight.reap() => continue,
        };
        // Waiting for a slot watches the stop signal too: with every slot held by work that
        // never ends, shutdown must still go ahead.
        let permit = tokio::select! {
            biased;
            deadline = stopping(&mut stopped) => break deadline,
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break Instant::now(),
            },
        };
        in_flight.spawn(work(shared.clone(), item, Slot::new(permit, &slots)));
    };
    if after_stop == AfterStop::RunQueued {
        while let Some(item) = queue.try_recv() {
            let Ok(Ok(permit)) =
                tokio::time::timeout_at(deadline, slots.clone().acquire_owned()).await
            else {
                break;
            };
            in_flight.spawn(work(shared.clone(), item, Slot::new(permit, &slots)));
        }
    }
    drop(shared);
    in_flight.drain(deadline).await
}
