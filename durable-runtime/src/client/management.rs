//! Managing instances: scheduled starts, terminate, suspend, resume and restart.
//!
//! Each operation is one atomic store write, durable before it returns, that checks the
//! instance's status first: where it does not apply it changes nothing and returns
//! [`Error::NotApplicable`] (an unknown id is [`Error::InstanceNotFound`]).
//!
//! | operation | applies to | becomes |
//! |---|---|---|
//! | [`terminate`](Client::terminate) | Pending, Running, Suspended | Terminated |
//! | [`suspend`](Client::suspend) | Pending, Running | Suspended |
//! | [`resume`](Client::resume) | Suspended | Running (Pending if it never ran) |
//! | [`restart`](Client::restart) (same id) | Completed, Failed, Terminated | Pending |
//! | [`restart`](Client::restart) (new id) | any | a new instance, Pending |
//! | [`rewind`](Client::rewind) | Failed | Running |
//! | [`purge`](Client::purge) | Completed, Failed, Terminated | gone |

use super::{Client, StartFuture, new_instance_id, store_error};
use crate::error::Error;
use crate::function::OrchestratorFn;
use crate::store::{Manage, Write};
use serde::Serialize;
use std::time::SystemTime;

/// How [`Client::start_with`] (and [`Client::start_by_name_with`], by name) starts an
/// instance.
///
/// ```no_run
/// # async fn demo(client: durable_runtime::Client) -> Result<(), durable_runtime::Error> {
/// use durable_runtime::prelude::*;
/// use durable_runtime::client::StartOptions;
/// use std::time::SystemTime;
///
/// #[orchestrator]
/// async fn nightly_report(ctx: OrchestrationContext) -> u32 { 0 }
///
/// let tonight = SystemTime::now() + Duration::from_secs(6 * 3600);
/// let options = StartOptions {
///     instance_id: Some("report-2026-11-27".into()),
///     scheduled_start: Some(tonight),
/// };
/// let id = client.start_with(nightly_report, (), options).await?;
/// # let _ = id; Ok(()) }
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StartOptions {
    /// The instance id (a fresh one when `None`).
    pub instance_id: Option<String>,
    /// When the instance starts (Durable Functions' `scheduledStartTime`). Until then it is
    /// `Pending` and runs no code; the start is a durable timer, so it survives restarts. A
    /// time that has passed starts it at once.
    pub scheduled_start: Option<SystemTime>,
}

impl StartOptions {
    /// The instance id (a fresh one if none was given) and the start time in epoch
    /// milliseconds: the same for a start by function and by name.
    fn resolve(self) -> (String, Option<i64>) {
        let instance_id = self.instance_id.unwrap_or_else(new_instance_id);
        (instance_id, self.scheduled_start.map(ms_since_epoch))
    }
}

impl Client {
    /// Starts `orchestrator` with `input` as `options` say: under a given id, and at a
    /// scheduled time. Returns the instance id once the instance is durable.
    pub fn start_with<F: OrchestratorFn<M>, M>(
        &self,
        orchestrator: F,
        input: F::Input,
        options: StartOptions,
    ) -> StartFuture<'_> {
        let _ = orchestrator;
        let start = match crate::registry::orchestrator_of::<F>() {
            None => Err(Error::NotAnOrchestrator(std::any::type_name::<F>())),
            Some(registration) => self.encode("input", &input).map(|input| {
                (
                    registration.name,
                    registration.version.map(str::to_string),
                    input,
                )
            }),
        };
        let (instance_id, start_at_ms) = options.resolve();
        Box::pin(async move {
            let (name, version, input) = start?;
            self.create(name, version, instance_id, input, start_at_ms)
                .await
        })
    }

    /// Starts the orchestrator registered as `name` with `input` as `options` say: the by-name
    /// form of [`start_with`](Self::start_with), for inputs and start times from HTTP or a
    /// CLI. The name and input are checked as [`start_by_name`](Self::start_by_name) checks
    /// them (an unknown name is [`Error::UnknownOrchestrator`], and nothing is written).
    /// Returns the instance id once the instance is durable.
    ///
    /// ```no_run
    /// # async fn demo(client: durable_runtime::Client) -> Result<(), durable_runtime::Error> {
    /// use durable_runtime::StartOptions;
    /// use std::time::{Duration, SystemTime};
    ///
    /// let options = StartOptions {
    ///     instance_id: Some("report-2026-11-27".into()),
    ///     scheduled_start: Some(SystemTime::now() + Duration::from_secs(6 * 3600)),
    /// };
    /// let id = client
    ///     .start_by_name_with("nightly_report", serde_json::json!({ "region": "eu" }), options)
    ///     .await?;
    /// # let _ = id; Ok(()) }
    /// ```
    pub async fn start_by_name_with(
        &self,
        name: &str,
        input: impl Serialize,
        options: StartOptions,
    ) -> Result<String, Error> {
        let (name, version) = self.orchestrator_named(name)?;
        let input = self.encode("input", &input)?;
        let (instance_id, start_at_ms) = options.resolve();
        self.create(name, version, instance_id, input, start_at_ms)
            .await
    }

    /// Terminates the instance: it ends `Terminated` with `reason` as its output, an
    /// `ExecutionTerminated` event ends its history, and its armed timers, queued activities
    /// and waiting events are discarded (an activity already running finishes, but its result
    /// is not recorded). A step computing at that moment is fenced off. Its running
    /// sub-orchestrations are terminated too, recursively, in the same transaction; if it is
    /// itself a sub-orchestration, its parent's call fails with a `TaskFailed` saying it was
    /// terminated.
    ///
    /// Refused with [`Error::NotApplicable`] once the instance has finished.
    ///
    /// ```no_run
    /// # async fn demo(client: durable_runtime::Client) -> Result<(), durable_runtime::Error> {
    /// client.terminate("order-42", "cancelled by the customer").await?;
    /// # Ok(()) }
    /// ```
    pub async fn terminate(&self, instance_id: &str, reason: &str) -> Result<(), Error> {
        let write = Manage::Terminate {
            instance_id: instance_id.to_string(),
            reason: reason.to_string(),
            timestamp_ms: self.shared.clock.now_ms(),
        };
        self.manage(write).await
    }

    /// Suspends a `Pending` or `Running` instance: it runs no step until
    /// [`resume`](Self::resume)d. Events, activity results, timer firings and outcomes of
    /// sub-orchestrations that arrive meanwhile are kept durably (across restarts too) and
    /// processed on resume. Its history records `ExecutionSuspended` (with the first step
    /// after the resume).
    ///
    /// Refused with [`Error::NotApplicable`] if it is suspended already or finished.
    pub async fn suspend(&self, instance_id: &str, reason: &str) -> Result<(), Error> {
        let write = Manage::Suspend {
            instance_id: instance_id.to_string(),
            reason: reason.to_string(),
            timestamp_ms: self.shared.clock.now_ms(),
        };
        self.manage(write).await
    }

    /// Resumes a suspended instance: it processes what arrived while it was suspended, and
    /// its history records `ExecutionResumed`.
    ///
    /// Refused with [`Error::NotApplicable`] if it is not suspended.
    pub async fn resume(&self, instance_id: &str, reason: &str) -> Result<(), Error> {
        let write = Manage::Resume {
            instance_id: instance_id.to_string(),
            reason: reason.to_string(),
            timestamp_ms: self.shared.clock.now_ms(),
        };
        self.manage(write).await
    }

    /// Runs the instance's orchestrator (the version it started on) again with the same
    /// input, and returns the id it runs under.
    ///
    /// With `new_id`, a new instance with a fresh id starts, whatever the old one's status;
    /// the old one is left as it is. Without it, the instance starts over under its own id:
    /// only once it has finished ([`Error::NotApplicable`] otherwise), and its old history,
    /// output and pending work are deleted, as its new run begins. A restarted
    /// sub-orchestration runs on its own: its parent's call was answered already.
    pub async fn restart(&self, instance_id: &str, new_id: bool) -> Result<String, Error> {
        if new_id {
            let old = self
                .get_status(instance_id)
                .await?
                .ok_or_else(|| Error::InstanceNotFound(instance_id.to_string()))?;
            return self
                .create(&old.name, old.version, new_instance_id(), old.input, None)
                .await;
        }
        let write = Manage::Restart {
            instance_id: instance_id.to_string(),
            execution_id: new_instance_id().into(),
            timestamp_ms: self.shared.clock.now_ms(),
        };
        self.shared
            .commit(Write::Manage(write))
            .await
            .map_err(store_error)?;
        Ok(instance_id.to_string())
    }

    /// Rewinds a `Failed` instance: the activities and sub-orchestrations whose failure made
    /// it fail run again, and it continues from there; work that completed is not run again.
    /// A failed sub-orchestration is rewound the same way, recursively.
    ///
    /// History stays append-only: an `ExecutionRewound` event is appended, and replay treats
    /// the failures it undid (the task failures after which the code scheduled nothing more,
    /// which is what the code failed on; a failure followed by more work, such as an earlier
    /// retry attempt, was handled and stays) and the `ExecutionFailed` before it as if they
    /// had not arrived. The new results follow the `ExecutionRewound`.
    ///
    /// Refused with [`Error::NotApplicable`] if the instance is not `Failed`, or failed in its
    /// own code with no failed task to run again (run it again with
    /// [`restart`](Self::restart)). Refused too, with
    /// [`REWIND_HOLDING_LOCKS`](crate::store::REWIND_HOLDING_LOCKS) as the operation, if it
    /// (or a failed sub-orchestration it would rewind) failed inside a critical section
    /// ([`lock_entities`](crate::OrchestrationContext::lock_entities)): its entity locks were
    /// released when it failed, and the rewound code would go on in its section without them,
    /// interleaving with other orchestrations' operations. Restart it instead.
    ///
    /// ```no_run
    /// # async fn demo(client: durable_runtime::Client) -> Result<(), durable_runtime::Error> {
    /// // The payment service was down; it is back.
    /// client.rewind("order-42", "payment service restored").await?;
    /// # Ok(()) }
    /// ```
    pub async fn rewind(&self, instance_id: &str, reason: &str) -> Result<(), Error> {
        let write = Manage::Rewind {
            instance_id: instance_id.to_string(),
            reason: reason.to_string(),
            timestamp_ms: self.shared.clock.now_ms(),
        };
        self.manage(write).await
    }

    async fn manage(&self, write: Manage) -> Result<(), Error> {
        self.shared
            .commit(Write::Manage(write))
            .await
            .map_err(store_error)?;
        Ok(())
    }
}

/// Milliseconds since the Unix epoch (before it: negative; out of range: saturated).
fn ms_since_epoch(time: SystemTime) -> i64 {
    match time.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_millis()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_millis()).map_or(i64::MIN, |ms| -ms),
    }
}
