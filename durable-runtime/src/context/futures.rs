//! The futures an orchestrator awaits: one task's result, a timer, and the races between them.

use super::state::{OrchestrationState, TaskSlot};
use crate::failure::{EventWaitError, FailureDetails, TaskFailed};
use crate::payload::Payload;
use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

/// A future whose completion is recorded in history; [`OrchestrationContext::when_any`](super::OrchestrationContext::when_any) uses
/// the recorded order to pick a winner.
pub trait DurableFuture: Future {
    /// When this task's result arrived, among all results of the instance; `None` if it has not.
    fn completion_order(&self) -> Option<u64>;
}

/// The future of one scheduled task; resolves to its typed result or [`TaskFailed`].
#[must_use = "a task is scheduled either way, but its result is lost unless awaited"]
pub struct TaskFuture<O> {
    state: Arc<Mutex<OrchestrationState>>,
    task_id: u64,
    output: PhantomData<fn() -> O>,
}

impl<O> TaskFuture<O> {
    pub(crate) fn new(state: Arc<Mutex<OrchestrationState>>, task_id: u64) -> Self {
        TaskFuture {
            state,
            task_id,
            output: PhantomData,
        }
    }
}

impl<O: DeserializeOwned> Future for TaskFuture<O> {
    type Output = Result<O, TaskFailed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.state.lock();
        let Some(slot) = state.tasks.get_mut(self.task_id as usize) else {
            return Poll::Pending;
        };
        match std::mem::replace(slot, TaskSlot::Taken) {
            TaskSlot::Done { name, result, .. } => {
                drop(state);
                Poll::Ready(decode_result(&name, result.map_err(|failure| *failure)))
            }
            TaskSlot::Waiting { name, waits, waker } => {
                let waker = match waker {
                    Some(w) if w.will_wake(cx.waker()) => Some(w),
                    _ => Some(cx.waker().clone()),
                };
                *slot = TaskSlot::Waiting { name, waits, waker };
                Poll::Pending
            }
            // Polled again after completion: behave like a fused future that never resolves again.
            other => {
                *slot = other;
                Poll::Pending
            }
        }
    }
}

impl<O> Drop for TaskFuture<O> {
    fn drop(&mut self) {
        // A dropped wait must not keep (or swallow) what it was waiting for.
        let handed_on = self.state.lock().forget(self.task_id);
        if let Some(waker) = handed_on {
            waker.wake();
        }
    }
}

impl<O: DeserializeOwned> DurableFuture for TaskFuture<O> {
    fn completion_order(&self) -> Option<u64> {
        self.state.lock().completion_order(self.task_id)
    }
}

/// A durable timer; resolves when it fires.
#[must_use = "the timer is recorded either way, but awaiting it is what waits"]
pub struct TimerFuture {
    inner: TaskFuture<()>,
}

impl TimerFuture {
    pub(crate) fn new(inner: TaskFuture<()>) -> Self {
        TimerFuture { inner }
    }
}

impl Future for TimerFuture {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // A timer cannot fail: its TimerFired event carries no error.
        Pin::new(&mut self.inner).poll(cx).map(|_| ())
    }
}

impl DurableFuture for TimerFuture {
    fn completion_order(&self) -> Option<u64> {
        self.inner.completion_order()
    }
}

/// The future of [`OrchestrationContext::when_any`](super::OrchestrationContext::when_any): the winner's index and output.
pub struct WhenAny<F> {
    tasks: Vec<F>,
}

impl<F> WhenAny<F> {
    pub(crate) fn new(tasks: Vec<F>) -> Self {
        WhenAny { tasks }
    }
}

impl<F: DurableFuture + Unpin> Future for WhenAny<F> {
    type Output = (usize, F::Output);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // Nothing can finish first among no tasks: a programming error, which fails the
        // instance with this message (the orchestrator's poll catches panics) instead of
        // waiting forever.
        assert!(
            !self.tasks.is_empty(),
            "when_any was given no tasks, so none can finish first"
        );
        let winner = self
            .tasks
            .iter()
            .enumerate()
            .filter_map(|(i, task)| task.completion_order().map(|order| (order, i)))
            .min();
        if let Some((_, index)) = winner
            && let Poll::Ready(output) = Pin::new(&mut self.tasks[index]).poll(cx)
        {
            return Poll::Ready((index, output));
        }
        for task in &mut self.tasks {
            // Registers the waker; none is ready (or it would have won above).
            let _ = Pin::new(task).poll(cx).is_ready();
        }
        Poll::Pending
    }
}

/// Which of two tasks finished first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Either<L, R> {
    /// The first task.
    Left(L),
    /// The second task.
    Right(R),
}

/// The future of [`OrchestrationContext::when_any2`](super::OrchestrationContext::when_any2).
pub struct WhenAny2<A, B> {
    left: Option<A>,
    right: Option<B>,
}

impl<A, B> WhenAny2<A, B> {
    pub(crate) fn new(left: A, right: B) -> Self {
        WhenAny2 {
            left: Some(left),
            right: Some(right),
        }
    }
}

impl<A, B> Future for WhenAny2<A, B>
where
    A: DurableFuture + Unpin,
    B: DurableFuture + Unpin,
{
    type Output = Either<A::Output, B::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let left = self.left.as_ref().and_then(DurableFuture::completion_order);
        let right = self
            .right
            .as_ref()
            .and_then(DurableFuture::completion_order);
        let left_first = match (left, right) {
            (Some(l), Some(r)) => Some(l < r),
            (Some(_), None) => Some(true),
            (None, Some(_)) => Some(false),
            (None, None) => None,
        };
        match left_first {
            Some(true) => {
                if let Some(task) = self.left.as_mut()
                    && let Poll::Ready(output) = Pin::new(task).poll(cx)
                {
                    return Poll::Ready(Either::Left(output));
                }
            }
            Some(false) => {
                if let Some(task) = self.right.as_mut()
                    && let Poll::Ready(output) = Pin::new(task).poll(cx)
                {
                    return Poll::Ready(Either::Right(output));
                }
            }
            None => {}
        }
        if let Some(task) = self.left.as_mut() {
            let _ = Pin::new(task).poll(cx).is_ready();
        }
        if let Some(task) = self.right.as_mut() {
            let _ = Pin::new(task).poll(cx).is_ready();
        }
        Poll::Pending
    }
}

impl<A, B> DurableFuture for WhenAny2<A, B>
where
    A: DurableFuture + Unpin,
    B: DurableFuture + Unpin,
{
    /// A race finishes when its first task does.
    fn completion_order(&self) -> Option<u64> {
        let left = self.left.as_ref().and_then(DurableFuture::completion_order);
        let right = self
            .right
            .as_ref()
            .and_then(DurableFuture::completion_order);
        match (left, right) {
            (Some(l), Some(r)) => Some(l.min(r)),
            (one, other) => one.or(other),
        }
    }
}

impl<F: DurableFuture + Unpin> DurableFuture for WhenAny<F> {
    /// A race finishes when its first task does.
    fn completion_order(&self) -> Option<u64> {
        self.tasks
            .iter()
            .filter_map(DurableFuture::completion_order)
            .min()
    }
}

/// The future of
/// [`OrchestrationContext::wait_for_event_with_timeout`](super::OrchestrationContext::wait_for_event_with_timeout):
/// the event's payload, or [`EventWaitError::TimedOut`].
#[must_use = "the wait and its timer are recorded either way, but awaiting is what waits"]
pub struct EventWithTimeout<T> {
    /// `None` once decided: the loser is dropped at once, so it no longer holds anything.
    race: Option<WhenAny2<TaskFuture<T>, TimerFuture>>,
    name: String,
    timeout: Duration,
}

impl<T> EventWithTimeout<T> {
    pub(crate) fn new(
        name: &str,
        timeout: Duration,
        wait: TaskFuture<T>,
        deadline: TimerFuture,
    ) -> Self {
        EventWithTimeout {
            race: Some(WhenAny2::new(wait, deadline)),
            name: name.to_string(),
            timeout,
        }
    }
}

impl<T: DeserializeOwned> Future for EventWithTimeout<T> {
    type Output = Result<T, EventWaitError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(race) = self.race.as_mut() else {
            // Polled after completion: like a fused future.
            return Poll::Pending;
        };
        let decided = match Pin::new(race).poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(decided) => decided,
        };
        // Dropping the race drops the loser: a timer that lost stops holding the instance, a
        // wait that lost hands on any event it received.
        self.race = None;
        Poll::Ready(match decided {
            Either::Left(event) => event.map_err(EventWaitError::Failed),
            Either::Right(()) => Err(EventWaitError::TimedOut {
                name: std::mem::take(&mut self.name),
                timeout: self.timeout,
            }),
        })
    }
}

impl<T: DeserializeOwned> DurableFuture for EventWithTimeout<T> {
    fn completion_order(&self) -> Option<u64> {
        self.race.as_ref().and_then(DurableFuture::completion_order)
    }
}

fn decode_result<O: DeserializeOwned>(
    name: &str,
    result: Result<Payload, FailureDetails>,
) -> Result<O, TaskFailed> {
    match result {
        Ok(payload) => payload.decode().map_err(|err| TaskFailed {
            name: name.to_string(),
            message: format!(
                "the result {payload} does not decode as `{}`: {err}",
                std::any::type_name::<O>()
            ),
            details: None,
        }),
        Err(failure) => Err(TaskFailed::from_details(name, failure)),
    }
}
