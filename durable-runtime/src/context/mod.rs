//! `OrchestrationContext`: the only door an orchestrator has to the outside world.
//!
//! Every call on it is recorded in (or, on replay, checked against) the instance's history, so
//! that re-running the orchestrator's code reproduces the same decisions.

mod action;
mod continue_as_new;
mod custom_status;
mod entities;
mod futures;
mod retry;
mod state;
mod sub_orchestration;

pub(crate) use self::action::{Action, ChildCall, ChildVersion, EntityAction, Recorded};
pub use self::continue_as_new::ContinueAsNew;
pub use self::custom_status::{CustomStatusError, MAX_CUSTOM_STATUS_BYTES};
pub use self::entities::{EntityLock, LOCKING_RULES};
pub use self::futures::{
    DurableFuture, Either, EventWithTimeout, TaskFuture, TimerFuture, WhenAny, WhenAny2,
};
pub use self::retry::{RetryFuture, RetryIf, RetryPolicy};
pub(crate) use self::state::{Delivery, Divergence, OrchestrationState};

use crate::failure::FailureDetails;
use crate::function::ActivityFn;
use crate::payload::Payload;
use parking_lot::Mutex;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::future::Future;
use std::sync::Arc;
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
    /// What deterministic ids and random numbers derive from: the run's id (the instance id
    /// for runs started before runs had ids).
    seed: Arc<str>,
}

impl OrchestrationContext {
    pub(crate) fn new(
        instance_id: Arc<str>,
        seed: Arc<str>,
        state: Arc<Mutex<OrchestrationState>>,
    ) -> Self {
        OrchestrationContext {
            state,
            instance_id,
            seed,
        }
    }

    /// Schedules `activity` with `input`; the result is typed by the activity's signature.
    ///
    /// The call is recorded at once (in call order), whether or not the future is awaited.
    /// `activity` is the function marked `#[activity]` (see [`ActivityFn`]); a function of the
    /// right shape without the attribute fails the task with a message saying so.
    pub fn call_activity<F: ActivityFn<M>, M>(
        &self,
        activity: F,
        input: F::Input,
    ) -> TaskFuture<F::Output> {
        let _ = activity;
        match crate::registry::activity_of::<F>() {
            Some(registration) => self
                .call_activity_encoded(registration.name, encode_input(registration.name, &input)),
            None => self.failed(std::any::type_name::<F>(), not_an_activity::<F>()),
        }
    }

    /// Schedules the activity registered as `name`; `O` is the type its result decodes into.
    ///
    /// A result that does not decode into `O` fails the task with a message naming both.
    pub fn call_activity_by_name<O: DeserializeOwned>(
        &self,
        name: &str,
        input: impl Serialize,
    ) -> TaskFuture<O> {
        self.call_activity_encoded(name, encode_input(name, &input))
    }

    /// Schedules activity `name`, or fails the task if its input cannot be handed to the store.
    fn call_activity_encoded<O>(
        &self,
        name: &str,
        input: Result<Payload, String>,
    ) -> TaskFuture<O> {
        match self.checked_input(name, input) {
            Ok(input) => self.schedule_activity(name, input),
            Err(message) => self.failed(name, message),
        }
    }

    /// Schedules activity `name` with an input already checked.
    fn schedule_activity<O>(&self, name: &str, input: Payload) -> TaskFuture<O> {
        let action = Action::Activity {
            name: name.to_string(),
            input,
        };
        let task_id = self.state.lock().schedule(name, action);
        TaskFuture::new(self.state.clone(), task_id)
    }

    /// A task that failed before it could be scheduled (it takes no task id in history).
    fn failed<O>(&self, name: &str, message: String) -> TaskFuture<O> {
        let task_id = self
            .state
            .lock()
            .failed_before_scheduling(name, FailureDetails::new(message));
        TaskFuture::new(self.state.clone(), task_id)
    }

    /// The input of a task to schedule next, as the store may take it: within the payload
    /// limit, unless history recorded the task already (a task history recorded is replayed
    /// as recorded, whatever the limit is now: a lower limit must not rewrite past decisions).
    fn checked_input(&self, name: &str, input: Result<Payload, String>) -> Result<Payload, String> {
        let input = input?;
        let state = self.state.lock();
        let limit = state.max_payload_bytes;
        match input.as_str().len() {
            size if size > limit && !state.replays_next_task() => Err(format!(
                "the input for '{name}' is {size} bytes, over the payload limit of {limit} bytes"
            )),
            _ => Ok(input),
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
        TaskFuture::new(self.state.clone(), task_id)
    }

    /// [`wait_for_event`](Self::wait_for_event) with a deadline (Durable Functions'
    /// `WaitForExternalEvent(name, timeout)`): the event's payload, or
    /// [`EventWaitError::TimedOut`](crate::EventWaitError::TimedOut) if a durable timer of
    /// `timeout` fires first. The race is decided by history order, so a replay decides it the
    /// same way.
    ///
    /// The loser lets go: once an event arrived, the timer no longer holds the instance (it
    /// may complete while the timer is still armed; the timer's later firing is discarded),
    /// and once the timer fired, a later event with this name stays buffered for the next
    /// wait. A payload that does not decode as `T` is
    /// [`EventWaitError::Failed`](crate::EventWaitError::Failed).
    ///
    /// ```
    /// use durable_runtime::prelude::*;
    ///
    /// #[orchestrator]
    /// async fn approval(ctx: OrchestrationContext) -> Result<String, OrchestrationError> {
    ///     match ctx
    ///         .wait_for_event_with_timeout::<bool>("approved", Duration::from_secs(72 * 3600))
    ///         .await
    ///     {
    ///         Ok(approved) => Ok(format!("approved: {approved}")),
    ///         Err(EventWaitError::TimedOut { .. }) => Ok("escalated".to_string()),
    ///         Err(other) => Err(other.into()),
    ///     }
    /// }
    /// ```
    pub fn wait_for_event_with_timeout<T: DeserializeOwned>(
        &self,
        name: &str,
        timeout: Duration,
    ) -> EventWithTimeout<T> {
        let wait = self.wait_for_event(name);
        let deadline = self.sleep(timeout);
        EventWithTimeout::new(name, timeout, wait, deadline)
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
        TimerFuture::new(TaskFuture::new(self.state.clone(), task_id))
    }

    /// A durable timer that fires `duration` after the current step's time. A duration too
    /// large to represent (`Duration::MAX`, a common "sleep forever") saturates to the latest
    /// representable time instead of failing.
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
        let now = self.current_utc_datetime();
        let fire_at = now.checked_add(duration).unwrap_or_else(|| {
            UNIX_EPOCH + Duration::from_millis(u64::try_from(i64::MAX).unwrap_or(u64::MAX))
        });
        self.create_timer(fire_at)
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
    ///
    /// An empty `tasks` fails the instance (nothing can finish first) rather than waiting
    /// forever.
    pub fn when_any<F: DurableFuture + Unpin>(&self, tasks: Vec<F>) -> WhenAny<F> {
        WhenAny::new(tasks)
    }

    /// [`when_any`](Self::when_any) over two tasks of different types.
    pub fn when_any2<A, B>(&self, left: A, right: B) -> WhenAny2<A, B>
    where
        A: DurableFuture + Unpin,
        B: DurableFuture + Unpin,
    {
        WhenAny2::new(left, right)
    }

    /// A new UUID, the same on every replay of this run, different in another run of the
    /// instance (derived from the run's id and a counter).
    pub fn new_guid(&self) -> uuid::Uuid {
        let mut state = self.state.lock();
        state.guids += 1;
        let name = format!("{}:{}", self.seed, state.guids);
        uuid::Uuid::new_v5(&GUID_NAMESPACE, name.as_bytes())
    }

    /// A pseudo-random number, the same on every replay of this run (seeded by the run's id).
    pub fn random_u64(&self) -> u64 {
        let mut state = self.state.lock();
        state.randoms += 1;
        let seed = self.seed.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        splitmix64(seed.wrapping_add(state.randoms.wrapping_mul(0x9e37_79b9_7f4a_7c15)))
    }

    /// Waits for every future and returns their outputs in the order given.
    ///
    /// Scales to many thousands of tasks: only futures whose result arrived are polled again.
    pub fn when_all<F>(&self, futures: impl IntoIterator<Item = F>) -> ::futures::future::JoinAll<F>
    where
        F: Future,
    {
        ::futures::future::join_all(futures)
    }

    /// The id of the running instance.
    pub fn instance_id(&self) -> &str {
        &self.instance_id
    }

    /// True while the code re-executes steps already recorded in history (after a restart or
    /// a cache eviction), false while it runs a step for the first time. Use it to avoid
    /// repeating side effects such as log lines; the [`info!`](crate::info) family of macros
    /// does it for `tracing`.
    ///
    /// ```
    /// use durable_runtime::prelude::*;
    ///
    /// #[orchestrator]
    /// async fn greet(ctx: OrchestrationContext, name: String) -> String {
    ///     if !ctx.is_replaying() {
    ///         println!("greeting {name}"); // once, not once per replay
    ///     }
    ///     format!("hello {name}")
    /// }
    /// ```
    pub fn is_replaying(&self) -> bool {
        self.state.lock().is_replaying
    }

    /// The time at which the current step started, identical on every replay of the step.
    pub fn current_utc_datetime(&self) -> SystemTime {
        let ms = self.state.lock().current_time_ms;
        UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
    }
}

/// Encodes the input of task `name`, or says why it does not serialize.
fn encode_input(name: &str, input: &impl Serialize) -> Result<Payload, String> {
    Payload::encode(input)
        .map_err(|err| format!("the input for '{name}' does not serialize: {err}"))
}

/// Why an activity call failed: the function passed is not marked `#[activity]`.
fn not_an_activity<F>() -> String {
    let function = std::any::type_name::<F>();
    match function.strip_prefix('&') {
        // `&f` is a `Fn` too, of another type than `f`'s.
        Some(itself) => format!(
            "`{function}` is a reference to a function: pass the function itself, \
             `call_activity({itself}, ..)`"
        ),
        None => format!(
            "`{function}` is not an activity: mark the function with #[activity] (or call a \
             registered activity by name with `call_activity_by_name`)"
        ),
    }
}

/// Namespace of the UUIDs from [`OrchestrationContext::new_guid`].
const GUID_NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x9e1f_5d2c_6a4b_4c1e_9a7e_3b2f_d0c8_a417);

fn splitmix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(run: &str) -> OrchestrationContext {
        let state = Arc::new(Mutex::new(OrchestrationState::new(
            Default::default(),
            usize::MAX,
        )));
        OrchestrationContext::new("instance".into(), run.into(), state)
    }

    #[test]
    fn generated_values_repeat_within_a_run_and_differ_across_runs() {
        let (first, replayed, next_run) = (context("run-a"), context("run-a"), context("run-b"));
        assert_eq!(first.new_guid(), replayed.new_guid());
        assert_eq!(first.random_u64(), replayed.random_u64());
        assert_ne!(context("run-a").new_guid(), next_run.new_guid());
        assert_ne!(context("run-a").random_u64(), next_run.random_u64());
    }
}
