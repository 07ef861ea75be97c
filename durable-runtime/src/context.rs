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

/// A task the orchestrator scheduled during the current step.
#[derive(Debug)]
pub(crate) struct ScheduledTask {
    pub task_id: u64,
    pub name: String,
    pub input: Payload,
}

enum TaskSlot {
    Waiting {
        name: String,
        waker: Option<Waker>,
    },
    Done {
        name: String,
        result: Result<Payload, FailureDetails>,
    },
    Taken,
}

/// The mutable half of a context, shared with the replay engine.
pub(crate) struct OrchestrationState {
    /// One slot per task id the orchestrator has handed out.
    tasks: Vec<TaskSlot>,
    /// Names of the tasks recorded in history, by task id; `None` where no task was recorded.
    recorded: Vec<Option<String>>,
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
    pub(crate) fn new(recorded: Vec<Option<String>>) -> Self {
        OrchestrationState {
            tasks: Vec::new(),
            recorded,
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
                *slot = TaskSlot::Done { name, result };
                (Delivery::Delivered, waker)
            }
            other => {
                *slot = other;
                (Delivery::Unexpected, None)
            }
        }
    }

    /// The recorded tasks the code has not scheduled (again) yet, for the end-of-replay check.
    pub(crate) fn first_unreplayed_task(&self) -> Option<(u64, &str)> {
        self.recorded
            .iter()
            .enumerate()
            .skip(self.tasks.len())
            .find_map(|(id, name)| name.as_deref().map(|n| (id as u64, n)))
    }

    fn schedule(&mut self, name: &str, input: Result<Payload, serde_json::Error>) -> u64 {
        let task_id = self.tasks.len() as u64;
        let input = match input {
            Ok(input) => input,
            Err(err) => {
                let failure = FailureDetails::new(format!(
                    "the input for '{name}' does not serialize: {err}"
                ));
                self.tasks.push(TaskSlot::Done {
                    name: name.to_string(),
                    result: Err(failure),
                });
                return task_id;
            }
        };
        match self.recorded.get(task_id as usize) {
            Some(Some(recorded)) if recorded == name => {}
            Some(recorded) if self.nondeterminism.is_none() => {
                let expected = match recorded {
                    Some(recorded) => format!("TaskScheduled '{recorded}'"),
                    None => "no task".to_string(),
                };
                self.nondeterminism = Some(format!(
                    "non-deterministic orchestrator: history has {expected} as task {task_id}, \
                     but the code now schedules activity '{name}'"
                ));
            }
            Some(_) => {}
            None => self.new_tasks.push(ScheduledTask {
                task_id,
                name: name.to_string(),
                input,
            }),
        }
        self.tasks.push(TaskSlot::Waiting {
            name: name.to_string(),
            waker: None,
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
        let task_id = self.state.lock().schedule(name, input);
        TaskFuture {
            state: self.state.clone(),
            task_id,
            output: PhantomData,
        }
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
        match slot {
            TaskSlot::Waiting { waker, .. } => {
                match waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => *waker = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
            TaskSlot::Done { .. } => {
                let TaskSlot::Done { name, result } = std::mem::replace(slot, TaskSlot::Taken)
                else {
                    unreachable!("matched Done above")
                };
                drop(state);
                Poll::Ready(decode_result(&name, result))
            }
            // Polled again after completion: behave like a fused future that never resolves again.
            TaskSlot::Taken => Poll::Pending,
        }
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
