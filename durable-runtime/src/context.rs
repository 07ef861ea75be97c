//! `OrchestrationContext`: the only door an orchestrator has to the outside world.
//!
//! Every call on it is recorded in (or, on replay, checked against) the instance's history, so
//! that re-running the orchestrator's code reproduces the same decisions.

use crate::failure::{FailureDetails, TaskFailed};
use crate::payload::Payload;
use crate::registry::Activity;
use parking_lot::Mutex;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Handed to every orchestrator; cheap to clone.
///
/// ```
/// use durable_runtime::prelude::*;
///
/// #[activity]
/// async fn double(n: u64) -> u64 { n * 2 }
///
/// #[orchestrator]
/// async fn sum_of_doubles(ctx: OrchestrationContext, n: u64) -> Result<u64, OrchestrationError> {
///     let tasks = (0..n).map(|i| ctx.call_activity(double, i));
///     let mut sum = 0;
///     for result in ctx.when_all(tasks).await {
///         sum += result?;
///     }
///     Ok(sum)
/// }
/// ```
#[derive(Clone)]
pub struct OrchestrationContext {
    state: Arc<Mutex<OrchestrationState>>,
    instance_id: Arc<str>,
}

/// Something the orchestrator asked for, which history records.
#[derive(Debug, Clone)]
pub(crate) enum Action {
    /// Run an activity.
    Activity { name: String, input: Payload },
    /// Fire a durable timer at this time (ms since the epoch).
    Timer { fire_at_ms: i64 },
}

/// What history says a task id was used for, to check the code against on replay.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Recorded {
    Activity(String),
    Timer,
}

impl Recorded {
    fn describe(&self) -> String {
        match self {
            Recorded::Activity(name) => format!("TaskScheduled '{name}'"),
            Recorded::Timer => "TimerCreated".to_string(),
        }
    }
}

impl Action {
    fn recorded(&self) -> Recorded {
        match self {
            Action::Activity { name, .. } => Recorded::Activity(name.clone()),
            Action::Timer { .. } => Recorded::Timer,
        }
    }

    fn describe(&self) -> String {
        match self {
            Action::Activity { name, .. } => format!("schedules activity '{name}'"),
            Action::Timer { .. } => "creates a timer".to_string(),
        }
    }
}

/// A task the orchestrator scheduled during the current step.
#[derive(Debug)]
pub(crate) struct ScheduledTask {
    pub task_id: u64,
    pub action: Action,
}

enum TaskSlot {
    Waiting {
        name: String,
        waker: Option<Waker>,
    },
    Done {
        name: String,
        result: Result<Payload, FailureDetails>,
        /// Position among all results delivered to this instance: history order.
        order: u64,
    },
    Taken,
}

/// The mutable half of a context, shared with the replay engine.
pub(crate) struct OrchestrationState {
    /// One slot per task id the orchestrator has handed out.
    tasks: Vec<TaskSlot>,
    /// What history recorded for each task id; `None` where nothing was recorded.
    recorded: Vec<Option<Recorded>>,
    /// Results delivered so far, for ordering `when_any` by history.
    delivered: u64,
    /// Events that arrived before anyone waited for them, by name, oldest first.
    buffered_events: HashMap<String, VecDeque<Payload>>,
    /// Task slots waiting for an event, by name, oldest first.
    event_waiters: HashMap<String, VecDeque<u64>>,
    /// Deterministic ids and random numbers handed out so far.
    guids: u64,
    randoms: u64,
    /// Tasks scheduled in this step that history does not hold yet.
    pub(crate) new_tasks: Vec<ScheduledTask>,
    /// Set when the code diverged from history; the step then fails the instance.
    pub(crate) nondeterminism: Option<String>,
    pub(crate) is_replaying: bool,
    pub(crate) current_time_ms: i64,
}

/// How a history event relates to the tasks the code scheduled.
pub(crate) enum Delivery {
    Delivered,
    /// A result for a task id the code never scheduled, or one already resolved.
    Unexpected,
}

impl OrchestrationState {
    pub(crate) fn new(recorded: Vec<Option<Recorded>>) -> Self {
        OrchestrationState {
            tasks: Vec::new(),
            recorded,
            delivered: 0,
            buffered_events: HashMap::new(),
            event_waiters: HashMap::new(),
            guids: 0,
            randoms: 0,
            new_tasks: Vec::new(),
            nondeterminism: None,
            is_replaying: false,
            current_time_ms: 0,
        }
    }

    /// Resolves task `task_id`, waking whoever awaits it.
    pub(crate) fn deliver(
        &mut self,
        task_id: u64,
        result: Result<Payload, FailureDetails>,
    ) -> (Delivery, Option<Waker>) {
        let Some(slot) = usize::try_from(task_id)
            .ok()
            .and_then(|i| self.tasks.get_mut(i))
        else {
            return (Delivery::Unexpected, None);
        };
        match std::mem::replace(slot, TaskSlot::Taken) {
            TaskSlot::Waiting { name, waker } => {
                self.delivered += 1;
                *slot = TaskSlot::Done {
                    name,
                    result,
                    order: self.delivered,
                };
                (Delivery::Delivered, waker)
            }
            other => {
                *slot = other;
                (Delivery::Unexpected, None)
            }
        }
    }

    /// Hands an external event to the oldest wait for its name, or buffers it until one comes.
    pub(crate) fn raise_event(&mut self, name: &str, input: Payload) -> Option<Waker> {
        let waiter = self
            .event_waiters
            .get_mut(name)
            .and_then(VecDeque::pop_front);
        match waiter {
            Some(task_id) => self.deliver(task_id, Ok(input)).1,
            None => {
                self.buffered_events
                    .entry(name.to_string())
                    .or_default()
                    .push_back(input);
                None
            }
        }
    }

    /// A slot that resolves with the next event called `name`. Waits are not recorded in
    /// history: the code makes them in the same order on every replay, and the events they
    /// receive are recorded.
    fn wait_for_event(&mut self, name: &str) -> u64 {
        let task_id = self.tasks.len() as u64;
        self.tasks.push(TaskSlot::Waiting {
            name: name.to_string(),
            waker: None,
        });
        let buffered = self
            .buffered_events
            .get_mut(name)
            .and_then(VecDeque::pop_front);
        match buffered {
            Some(input) => {
                // Nobody polls this slot yet, so there is no waker to wake.
                let _ = self.deliver(task_id, Ok(input));
            }
            None => self
                .event_waiters
                .entry(name.to_string())
                .or_default()
                .push_back(task_id),
        }
        task_id
    }

    /// The first recorded task the code has not scheduled (again), for the end-of-replay check.
    pub(crate) fn first_unreplayed_task(&self) -> Option<(u64, String)> {
        self.recorded
            .iter()
            .enumerate()
            .skip(self.tasks.len())
            .find_map(|(id, recorded)| recorded.as_ref().map(|r| (id as u64, r.describe())))
    }

    fn completion_order(&self, task_id: u64) -> Option<u64> {
        match self.tasks.get(task_id as usize) {
            Some(TaskSlot::Done { order, .. }) => Some(*order),
            _ => None,
        }
    }

    /// Hands out the next task id for `action`, checking it against history on replay.
    fn schedule(&mut self, name: &str, action: Action) -> u64 {
        let task_id = self.tasks.len() as u64;
        match self.recorded.get(task_id as usize) {
            Some(Some(recorded)) if *recorded == action.recorded() => {}
            Some(recorded) if self.nondeterminism.is_none() => {
                let expected = match recorded {
                    Some(recorded) => recorded.describe(),
                    None => "no task".to_string(),
                };
                self.nondeterminism = Some(format!(
                    "non-deterministic orchestrator: history has {expected} as task {task_id}, \
                     but the code now {}",
                    action.describe()
                ));
            }
            Some(_) => {}
            None => self.new_tasks.push(ScheduledTask { task_id, action }),
        }
        self.tasks.push(TaskSlot::Waiting {
            name: name.to_string(),
            waker: None,
        });
        task_id
    }

    /// A task that failed before it could be scheduled (its input did not serialize). It uses
    /// no task id in history, so replays see the same ids.
    fn failed_before_scheduling(&mut self, name: &str, failure: FailureDetails) -> u64 {
        let task_id = self.tasks.len() as u64;
        self.delivered += 1;
        self.tasks.push(TaskSlot::Done {
            name: name.to_string(),
            result: Err(failure),
            order: self.delivered,
        });
        task_id
    }
}

impl OrchestrationContext {
    pub(crate) fn new(instance_id: &str, state: Arc<Mutex<OrchestrationState>>) -> Self {
        OrchestrationContext {
            state,
            instance_id: instance_id.into(),
        }
    }

    /// Schedules `activity` with `input`; the result is typed by the activity's signature.
    ///
    /// The call is recorded at once (in call order), whether or not the future is awaited.
    pub fn call_activity<A: Activity>(
        &self,
        activity: A,
        input: A::Input,
    ) -> TaskFuture<A::Output> {
        let _ = activity;
        self.schedule(A::NAME, Payload::encode(&input))
    }

    /// Schedules the activity registered as `name`; `O` is the type its result decodes into.
    ///
    /// A result that does not decode into `O` fails the task with a message naming both.
    pub fn call_activity_by_name<O: DeserializeOwned>(
        &self,
        name: &str,
        input: impl Serialize,
    ) -> TaskFuture<O> {
        self.schedule(name, Payload::encode(&input))
    }

    fn schedule<O>(&self, name: &str, input: Result<Payload, serde_json::Error>) -> TaskFuture<O> {
        let mut state = self.state.lock();
        let task_id = match input {
            Ok(input) => state.schedule(
                name,
                Action::Activity {
                    name: name.to_string(),
                    input,
                },
            ),
            Err(err) => state.failed_before_scheduling(
                name,
                FailureDetails::new(format!("the input for '{name}' does not serialize: {err}")),
            ),
        };
        drop(state);
        TaskFuture {
            state: self.state.clone(),
            task_id,
            output: PhantomData,
        }
    }

    /// Waits for the external event `name` (sent with `Client::raise_event`) and decodes its
    /// payload as `T`. Events that arrive before the wait are buffered; several waits for one
    /// name receive its events in arrival order. A payload that does not decode as `T` is an
    /// `Err` naming the type. Combine with a timer through [`when_any2`](Self::when_any2) for a
    /// deadline.
    ///
    /// ```
    /// use durable_runtime::prelude::*;
    ///
    /// #[orchestrator]
    /// async fn approval(ctx: OrchestrationContext) -> Result<bool, OrchestrationError> {
    ///     let decision = ctx.wait_for_event::<bool>("approved");
    ///     let deadline = ctx.sleep(Duration::from_secs(72 * 3600));
    ///     Ok(match ctx.when_any2(decision, deadline).await {
    ///         Either::Left(approved) => approved?,
    ///         Either::Right(()) => false,
    ///     })
    /// }
    /// ```
    pub fn wait_for_event<T: DeserializeOwned>(&self, name: &str) -> TaskFuture<T> {
        let task_id = self.state.lock().wait_for_event(name);
        TaskFuture {
            state: self.state.clone(),
            task_id,
            output: PhantomData,
        }
    }

    /// A durable timer that fires at `fire_at`: it survives restarts, and a replay does not wait
    /// for it again. A time in the past fires at once.
    pub fn create_timer(&self, fire_at: SystemTime) -> TimerFuture {
        let fire_at_ms = fire_at
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        let task_id = self
            .state
            .lock()
            .schedule("timer", Action::Timer { fire_at_ms });
        TimerFuture {
            inner: TaskFuture {
                state: self.state.clone(),
                task_id,
                output: PhantomData,
            },
        }
    }

    /// A durable timer that fires `duration` after the current step's time.
    ///
    /// ```
    /// use durable_runtime::prelude::*;
    ///
    /// #[orchestrator]
    /// async fn reminder(ctx: OrchestrationContext) -> Result<(), OrchestrationError> {
    ///     ctx.sleep(Duration::from_secs(72 * 3600)).await; // costs nothing while waiting
    ///     Ok(())
    /// }
    /// ```
    pub fn sleep(&self, duration: Duration) -> TimerFuture {
        self.create_timer(self.current_utc_datetime() + duration)
    }

    /// Waits for the first of `tasks` to finish and returns its index and output. When several
    /// have finished, the one recorded first in history wins, so replays choose the same one;
    /// poll order never decides.
    ///
    /// ```
    /// use durable_runtime::prelude::*;
    ///
    /// #[activity]
    /// async fn approve(request: u32) -> bool { request % 2 == 0 }
    ///
    /// #[orchestrator]
    /// async fn approval(ctx: OrchestrationContext, request: u32) -> Result<String, OrchestrationError> {
    ///     let decision = ctx.call_activity(approve, request);
    ///     let deadline = ctx.sleep(Duration::from_secs(3600));
    ///     match ctx.when_any2(decision, deadline).await {
    ///         Either::Left(approved) => Ok(format!("approved: {}", approved?)),
    ///         Either::Right(()) => Ok("timed out".into()),
    ///     }
    /// }
    /// ```
    pub fn when_any<F: DurableFuture + Unpin>(&self, tasks: Vec<F>) -> WhenAny<F> {
        WhenAny { tasks }
    }

    /// [`when_any`](Self::when_any) over two tasks of different types.
    pub fn when_any2<A, B>(&self, left: A, right: B) -> WhenAny2<A, B>
    where
        A: DurableFuture + Unpin,
        B: DurableFuture + Unpin,
    {
        WhenAny2 {
            left: Some(left),
            right: Some(right),
        }
    }

    /// A new UUID, the same on every replay (derived from the instance id and a counter).
    pub fn new_guid(&self) -> uuid::Uuid {
        let mut state = self.state.lock();
        state.guids += 1;
        let name = format!("{}:{}", self.instance_id, state.guids);
        uuid::Uuid::new_v5(&GUID_NAMESPACE, name.as_bytes())
    }

    /// A pseudo-random number, the same on every replay (seeded by the instance id).
    pub fn random_u64(&self) -> u64 {
        let mut state = self.state.lock();
        state.randoms += 1;
        let seed = self
            .instance_id
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
            });
        splitmix64(seed.wrapping_add(state.randoms.wrapping_mul(0x9e37_79b9_7f4a_7c15)))
    }

    /// Waits for every future and returns their outputs in the order given.
    ///
    /// Scales to many thousands of tasks: only futures whose result arrived are polled again.
    pub fn when_all<F>(&self, futures: impl IntoIterator<Item = F>) -> futures::future::JoinAll<F>
    where
        F: Future,
    {
        futures::future::join_all(futures)
    }

    /// The id of the running instance.
    pub fn instance_id(&self) -> &str {
        &self.instance_id
    }

    /// True while the code re-executes steps already recorded in history. Use it to avoid
    /// repeating side effects such as log lines.
    pub fn is_replaying(&self) -> bool {
        self.state.lock().is_replaying
    }

    /// The time at which the current step started, identical on every replay of the step.
    pub fn current_utc_datetime(&self) -> SystemTime {
        let ms = self.state.lock().current_time_ms;
        UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
    }
}

/// Namespace of the UUIDs from [`OrchestrationContext::new_guid`].
const GUID_NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x9e1f_5d2c_6a4b_4c1e_9a7e_3b2f_d0c8_a417);

fn splitmix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A future whose completion is recorded in history; [`OrchestrationContext::when_any`] uses
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

impl<O: DeserializeOwned> Future for TaskFuture<O> {
    type Output = Result<O, TaskFailed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.state.lock();
        let Some(slot) = state.tasks.get_mut(self.task_id as usize) else {
            return Poll::Pending;
        };
        match std::mem::replace(slot, TaskSlot::Taken) {
            TaskSlot::Waiting { name, waker } => {
                let waker = match waker {
                    Some(w) if w.will_wake(cx.waker()) => Some(w),
                    _ => Some(cx.waker().clone()),
                };
                *slot = TaskSlot::Waiting { name, waker };
                Poll::Pending
            }
            TaskSlot::Done { name, result, .. } => {
                drop(state);
                Poll::Ready(decode_result(&name, result))
            }
            // Polled again after completion: behave like a fused future that never resolves again.
            TaskSlot::Taken => Poll::Pending,
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

/// The future of [`OrchestrationContext::when_any`]: the winner's index and output.
pub struct WhenAny<F> {
    tasks: Vec<F>,
}

impl<F: DurableFuture + Unpin> Future for WhenAny<F> {
    type Output = (usize, F::Output);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
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

/// The future of [`OrchestrationContext::when_any2`].
pub struct WhenAny2<A, B> {
    left: Option<A>,
    right: Option<B>,
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
