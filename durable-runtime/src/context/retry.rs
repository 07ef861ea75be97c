//! Retries: a failed activity or sub-orchestration called again after a back-off, on durable
//! timers.
//!
//! A retry loop is ordinary orchestrator code: every attempt is a task and every wait a
//! durable timer, all recorded in history. A replay therefore takes the same decisions, and a
//! restart in the middle of a back-off finds the timer armed in the store: the wait is neither
//! skipped nor started again.

use super::sub_orchestration::not_an_orchestrator;
use super::{ChildVersion, OrchestrationContext, TaskFuture, encode_input, not_an_activity};
use crate::failure::TaskFailed;
use crate::function::{ActivityFn, OrchestratorFn};
use crate::payload::Payload;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

/// Decides whether a failure is worth another attempt; see [`RetryPolicy::retry_if`].
pub type RetryIf = Arc<dyn Fn(&TaskFailed) -> bool + Send + Sync>;

/// How to retry a failed activity or sub-orchestration (Durable Functions' `RetryOptions`).
///
/// After attempt `n` fails, the next one starts after
/// `first_interval * backoff_coefficient^(n - 1)`, capped by `max_interval`, unless
/// - `n` attempts were made already (`max_attempts`, counting the first),
/// - `retry_if` says the failure is not worth retrying, or
/// - the next attempt would start later than `total_timeout` after the first one started.
///
/// Then the last attempt's [`TaskFailed`] is the result.
///
/// ```
/// use durable_runtime::prelude::*;
///
/// let policy = RetryPolicy::new(5, Duration::from_secs(1))
///     .backoff_coefficient(2.0)
///     .max_interval(Duration::from_secs(30))
///     .total_timeout(Duration::from_secs(300))
///     .retry_if(|failure| !failure.message.contains("card declined"));
/// assert_eq!(policy.backoff(1), Duration::from_secs(1));
/// assert_eq!(policy.backoff(3), Duration::from_secs(4));
/// assert_eq!(policy.backoff(10), Duration::from_secs(30));
/// ```
///
/// `retry_if` runs inside the orchestrator, on every replay: it must decide by the failure
/// alone (no clock, no I/O), like the rest of the orchestrator's code.
#[derive(Clone)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Attempts in all, the first included (at least 1).
    pub max_attempts: u32,
    /// The wait before the second attempt.
    pub first_interval: Duration,
    /// What each wait is multiplied by for the next one (default 1: equal waits).
    pub backoff_coefficient: f64,
    /// The longest wait between two attempts (default: none).
    pub max_interval: Option<Duration>,
    /// No attempt starts later than this after the first one started (default: none).
    pub total_timeout: Option<Duration>,
    /// Retries only the failures this returns true for (default: every failure).
    pub retry_if: Option<RetryIf>,
}

impl RetryPolicy {
    /// Up to `max_attempts` attempts (the first included), `first_interval` apart, every
    /// failure retried.
    pub fn new(max_attempts: u32, first_interval: Duration) -> Self {
        RetryPolicy {
            max_attempts: max_attempts.max(1),
            first_interval,
            backoff_coefficient: 1.0,
            max_interval: None,
            total_timeout: None,
            retry_if: None,
        }
    }

    /// Sets the number of attempts in all, the first included (at least 1).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// Sets what each wait is multiplied by for the next one. A value that is not a finite
    /// positive number counts as 1.
    pub fn backoff_coefficient(mut self, coefficient: f64) -> Self {
        self.backoff_coefficient = coefficient;
        self
    }

    /// Caps every wait at `interval`.
    pub fn max_interval(mut self, interval: Duration) -> Self {
        self.max_interval = Some(interval);
        self
    }

    /// Starts no attempt later than `timeout` after the first attempt started.
    pub fn total_timeout(mut self, timeout: Duration) -> Self {
        self.total_timeout = Some(timeout);
        self
    }

    /// Retries only the failures `predicate` returns true for; any other failure is the
    /// result at once. It must decide deterministically (by the failure alone).
    pub fn retry_if(
        mut self,
        predicate: impl Fn(&TaskFailed) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.retry_if = Some(Arc::new(predicate));
        self
    }

    /// The wait after attempt `attempt` (counted from 1) failed, before the next one:
    /// `first_interval * backoff_coefficient^(attempt - 1)`, capped by `max_interval`.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let coefficient = if self.backoff_coefficient.is_finite() && self.backoff_coefficient > 0.0
        {
            self.backoff_coefficient
        } else {
            1.0
        };
        let exponent = i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX);
        let seconds = self.first_interval.as_secs_f64() * coefficient.powi(exponent);
        let cap = self.max_interval.unwrap_or(Duration::MAX);
        // `try_from_secs_f64` refuses what overflows (or is not a number): that is the cap.
        Duration::try_from_secs_f64(seconds).map_or(cap, |wait| wait.min(cap))
    }

    /// The wait before the next attempt after attempt `attempt` failed with `failure`, or
    /// `None` if there is no next attempt. `started` is when the first attempt started, `now`
    /// the time of the step deciding.
    fn next_wait(
        &self,
        attempt: u32,
        failure: &TaskFailed,
        started: SystemTime,
        now: SystemTime,
    ) -> Option<Duration> {
        if attempt >= self.max_attempts || failure.is_poison() {
            return None;
        }
        if let Some(retry_if) = &self.retry_if
            && !retry_if(failure)
        {
            return None;
        }
        let wait = self.backoff(attempt);
        if let Some(total) = self.total_timeout {
            let deadline = started.checked_add(total)?;
            let next_start = now.checked_add(wait)?;
            if next_start > deadline {
                return None;
            }
        }
        Some(wait)
    }
}

impl fmt::Debug for RetryPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryPolicy")
            .field("max_attempts", &self.max_attempts)
            .field("first_interval", &self.first_interval)
            .field("backoff_coefficient", &self.backoff_coefficient)
            .field("max_interval", &self.max_interval)
            .field("total_timeout", &self.total_timeout)
            .field(
                "retry_if",
                &self.retry_if.as_ref().map(|_| "Fn(&TaskFailed) -> bool"),
            )
            .finish()
    }
}

/// The future of a call with retries: the first successful attempt's output, or the last
/// attempt's [`TaskFailed`].
///
/// Await it, or gather several with [`when_all`](OrchestrationContext::when_all). It is not a
/// [`DurableFuture`](super::DurableFuture) (its end is decided by the code between attempts,
/// not by one recorded result), so it cannot race in `when_any`.
#[must_use = "the first attempt is scheduled either way, but only awaiting it retries"]
pub struct RetryFuture<O> {
    inner: Pin<Box<dyn Future<Output = Result<O, TaskFailed>> + Send>>,
}

impl<O> Future for RetryFuture<O> {
    type Output = Result<O, TaskFailed>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

impl<O> fmt::Debug for RetryFuture<O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RetryFuture")
    }
}

impl OrchestrationContext {
    /// [`call_activity`](Self::call_activity), retried on failure as `policy` says, with
    /// durable timers between the attempts. Each attempt is a task of its own in history
    /// (`TaskScheduled`, then `TaskCompleted` or `TaskFailed`), each wait a `TimerCreated`.
    /// The first attempt is scheduled at once, in call order; the result is the first
    /// successful attempt's output, or the last attempt's failure.
    ///
    /// ```
    /// use durable_runtime::prelude::*;
    ///
    /// #[activity]
    /// async fn charge(amount: u64) -> Result<String, ActivityError> {
    ///     Ok(format!("charged {amount}"))
    /// }
    ///
    /// #[orchestrator]
    /// async fn checkout(ctx: OrchestrationContext, amount: u64) -> Result<String, OrchestrationError> {
    ///     let policy = RetryPolicy::new(3, Duration::from_secs(5)).backoff_coefficient(2.0);
    ///     Ok(ctx.call_activity_with_retry(&policy, charge, amount).await?)
    /// }
    /// ```
    ///
    /// A failure that no attempt can change (the function is not marked `#[activity]`, the
    /// input does not serialize or is over the payload limit) is the result at once.
    pub fn call_activity_with_retry<F: ActivityFn<M>, M>(
        &self,
        policy: &RetryPolicy,
        activity: F,
        input: F::Input,
    ) -> RetryFuture<F::Output> {
        let _ = activity;
        match crate::registry::activity_of::<F>() {
            Some(registration) => {
                let input = encode_input(registration.name, &input);
                self.activity_with_retry(policy, registration.name, input)
            }
            None => self.failed_at_once(std::any::type_name::<F>(), not_an_activity::<F>()),
        }
    }

    /// [`call_activity_by_name`](Self::call_activity_by_name), retried as `policy` says (see
    /// [`call_activity_with_retry`](Self::call_activity_with_retry)).
    pub fn call_activity_by_name_with_retry<O: DeserializeOwned + Send + 'static>(
        &self,
        policy: &RetryPolicy,
        name: &str,
        input: impl Serialize,
    ) -> RetryFuture<O> {
        self.activity_with_retry(policy, name, encode_input(name, &input))
    }

    /// [`call_sub_orchestrator`](Self::call_sub_orchestrator), retried on failure as `policy`
    /// says, with durable timers between the attempts. Every attempt is a sub-orchestration
    /// instance of its own, with an id of its own.
    ///
    /// ```
    /// use durable_runtime::prelude::*;
    ///
    /// #[orchestrator]
    /// async fn provision(ctx: OrchestrationContext, host: String) -> Result<String, OrchestrationError> {
    ///     Ok(format!("{host} ready"))
    /// }
    ///
    /// #[orchestrator]
    /// async fn deploy(ctx: OrchestrationContext, host: String) -> Result<String, OrchestrationError> {
    ///     let policy = RetryPolicy::new(3, Duration::from_secs(30));
    ///     Ok(ctx.call_sub_orchestrator_with_retry(&policy, provision, host).await?)
    /// }
    /// ```
    pub fn call_sub_orchestrator_with_retry<F: OrchestratorFn<M>, M>(
        &self,
        policy: &RetryPolicy,
        orchestrator: F,
        input: F::Input,
    ) -> RetryFuture<F::Output> {
        let _ = orchestrator;
        match crate::registry::orchestrator_of::<F>() {
            Some(registration) => {
                let version = ChildVersion::Exact(registration.version.map(str::to_string));
                let input = encode_input(registration.name, &input);
                self.child_with_retry(policy, registration.name, version, input)
            }
            None => self.failed_at_once(std::any::type_name::<F>(), not_an_orchestrator::<F>()),
        }
    }

    /// [`call_sub_orchestrator_by_name`](Self::call_sub_orchestrator_by_name), retried as
    /// `policy` says (see
    /// [`call_sub_orchestrator_with_retry`](Self::call_sub_orchestrator_with_retry)).
    pub fn call_sub_orchestrator_by_name_with_retry<O: DeserializeOwned + Send + 'static>(
        &self,
        policy: &RetryPolicy,
        name: &str,
        input: impl Serialize,
    ) -> RetryFuture<O> {
        let input = encode_input(name, &input);
        self.child_with_retry(policy, name, ChildVersion::Newest, input)
    }

    fn activity_with_retry<O: DeserializeOwned + Send + 'static>(
        &self,
        policy: &RetryPolicy,
        name: &str,
        input: Result<Payload, String>,
    ) -> RetryFuture<O> {
        // No locking rule here: activities may run inside a critical section.
        match self.checked_input(name, input) {
            Ok(input) => {
                let name = name.to_string();
                self.retry(policy, move |ctx| {
                    ctx.schedule_activity(&name, input.clone())
                })
            }
            Err(message) => self.failed_at_once(name, message),
        }
    }

    fn child_with_retry<O: DeserializeOwned + Send + 'static>(
        &self,
        policy: &RetryPolicy,
        name: &str,
        version: ChildVersion,
        input: Result<Payload, String>,
    ) -> RetryFuture<O> {
        if let Some(violation) = self.child_in_critical_section(name) {
            return self.failed_at_once(name, violation);
        }
        match self.checked_input(name, input) {
            Ok(input) => {
                let name = name.to_string();
                self.retry(policy, move |ctx| {
                    ctx.schedule_child(&name, version.clone(), None, input.clone())
                })
            }
            Err(message) => self.failed_at_once(name, message),
        }
    }

    /// A call that failed before its first attempt, as a retry future.
    fn failed_at_once<O: DeserializeOwned + Send + 'static>(
        &self,
        name: &str,
        message: String,
    ) -> RetryFuture<O> {
        let failed = self.failed::<O>(name, message);
        RetryFuture {
            inner: Box::pin(failed),
        }
    }

    /// Runs `attempt` (scheduling the first at once), then again after each retryable failure.
    fn retry<O, A>(&self, policy: &RetryPolicy, attempt: A) -> RetryFuture<O>
    where
        O: DeserializeOwned + Send + 'static,
        A: Fn(&OrchestrationContext) -> TaskFuture<O> + Send + 'static,
    {
        let ctx = self.clone();
        let policy = policy.clone();
        let started = self.current_utc_datetime();
        let first = attempt(self);
        RetryFuture {
            inner: Box::pin(async move {
                let mut pending = first;
                let mut attempts = 1u32;
                loop {
                    let failure = match pending.await {
                        Ok(output) => return Ok(output),
                        Err(failure) => failure,
                    };
                    let now = ctx.current_utc_datetime();
                    let Some(wait) = policy.next_wait(attempts, &failure, started, now) else {
                        return Err(failure);
                    };
                    ctx.sleep(wait).await;
                    attempts += 1;
                    pending = attempt(&ctx);
                }
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(message: &str) -> TaskFailed {
        TaskFailed {
            name: "a".into(),
            message: message.into(),
            details: None,
        }
    }

    #[test]
    fn waits_grow_by_the_coefficient_up_to_the_cap() {
        let policy = RetryPolicy::new(10, Duration::from_millis(100))
            .backoff_coefficient(3.0)
            .max_interval(Duration::from_secs(1));
        let waits: Vec<u128> = (1..=4).map(|n| policy.backoff(n).as_millis()).collect();
        assert_eq!(waits, [100, 300, 900, 1000]);
        assert_eq!(policy.backoff(u32::MAX), Duration::from_secs(1));
        let odd = RetryPolicy::new(3, Duration::from_millis(100)).backoff_coefficient(f64::NAN);
        assert_eq!(odd.backoff(3), Duration::from_millis(100));
        let uncapped = RetryPolicy::new(3, Duration::from_secs(1)).backoff_coefficient(1e300);
        assert_eq!(uncapped.backoff(5), Duration::MAX);
    }

    #[test]
    fn attempts_predicate_and_total_timeout_each_stop_retries() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let policy = RetryPolicy::new(3, Duration::from_secs(1));
        assert_eq!(
            policy.next_wait(2, &failure("x"), start, start),
            Some(Duration::from_secs(1))
        );
        assert_eq!(policy.next_wait(3, &failure("x"), start, start), None);
        let picky = policy.clone().retry_if(|f| f.message != "fatal");
        assert_eq!(picky.next_wait(1, &failure("fatal"), start, start), None);
        assert!(picky.next_wait(1, &failure("busy"), start, start).is_some());
        let bounded =
            RetryPolicy::new(10, Duration::from_secs(1)).total_timeout(Duration::from_secs(5));
        let later = start + Duration::from_secs(4);
        assert!(bounded.next_wait(1, &failure("x"), start, later).is_some());
        let too_late = start + Duration::from_millis(4_001);
        assert_eq!(bounded.next_wait(1, &failure("x"), start, too_late), None);
        assert_eq!(RetryPolicy::new(0, Duration::ZERO).max_attempts, 1);
    }
}
