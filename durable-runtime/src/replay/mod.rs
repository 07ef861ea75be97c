//! The replay engine: runs an orchestrator's code against its history, one step at a time.
//!
//! An [`Execution`] is a live orchestrator future plus the state its context shares. A hot
//! instance keeps its `Execution` in memory between steps, so a step costs only the new events;
//! after a restart or a cache eviction, [`Execution::replay`] rebuilds it by feeding the recorded
//! history back through the same code, checking that the code makes the same decisions.

mod check;
mod drive;
mod rebuild;

pub(crate) use self::check::{CheckedHistory, check_history};

use self::drive::{Applied, WakeFlag};

use crate::context::{
    Action, ChildVersion, Delivery, Divergence, OrchestrationContext, OrchestrationState, Recorded,
};
use crate::failure::{FailureDetails, panic_failure};
use crate::history::{
    CarriedEvent, EntityCallEvent, HistoryEvent, HistoryRecord, SubOrchestrationCreatedEvent,
};
use crate::payload::Payload;
use crate::registry::{BoxFuture, Registry};
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};

/// What one step produced, ready to be committed.
#[derive(Debug)]
pub(crate) struct StepOutput {
    /// Events to append to history, in order.
    pub events: Vec<HistoryEvent>,
    /// Activities to enqueue: `(task_id, name, input)` as recorded in `events`.
    pub scheduled: Vec<(u64, String, Payload)>,
    /// Timers to arm: `(task_id, fire_at_ms)`.
    pub timers: Vec<(u64, i64)>,
    /// Sub-orchestrations to create, as recorded in `events`.
    pub children: Vec<ScheduledChild>,
    /// Set when the instance finished in this step.
    pub outcome: Option<Result<Payload, FailureDetails>>,
    /// Set when the run ended in this step by continuing as new (`outcome` is then `None`).
    pub continued: Option<NextRun>,
    /// The custom status, when the step changed it.
    pub custom_status: Option<Payload>,
}

/// The run that `continue_as_new` starts.
#[derive(Debug)]
pub(crate) struct NextRun {
    pub input: Payload,
    /// Raised events the ending run did not consume, in arrival order.
    pub carried_events: Vec<CarriedEvent>,
}

/// A sub-orchestration a step creates.
#[derive(Debug)]
pub(crate) struct ScheduledChild {
    pub task_id: u64,
    pub name: String,
    pub version: Option<String>,
    pub instance_id: String,
    pub input: Payload,
}

/// A live orchestration instance.
pub(crate) struct Execution {
    /// Shared with the context, which the orchestrator's future holds.
    instance_id: Arc<str>,
    name: String,
    state: Arc<Mutex<OrchestrationState>>,
    future: Option<BoxFuture<Result<Payload, FailureDetails>>>,
    /// Set once the instance completed or failed; later messages are dropped.
    finished: bool,
    /// An outcome reached while rebuilding (e.g. non-determinism), reported by the next step.
    pending_outcome: Option<Result<Payload, FailureDetails>>,
    /// Number of events in the durable history.
    history_len: u64,
    /// Set when the orchestrator's code itself ran to its end (rather than failing to start or
    /// diverging).
    code_returned: bool,
    /// Set once `ExecutionStarted` was applied.
    started: bool,
    /// This run's id, from `ExecutionStarted` (empty for runs started before runs had ids).
    execution_id: Arc<str>,
    wake_flag: Arc<WakeFlag>,
    /// The custom status as the store has it from this run (`None`: this run set none).
    committed_custom_status: Option<Payload>,
    /// The custom status the step being committed writes.
    pending_custom_status: Option<Payload>,
}

impl Execution {
    /// A brand-new instance with an empty history.
    pub(crate) fn new(instance_id: &str, max_payload_bytes: usize) -> Self {
        Execution::with_recorded(instance_id, BTreeMap::new(), max_payload_bytes)
    }

    fn with_recorded(
        instance_id: &str,
        recorded: BTreeMap<u64, Recorded>,
        max_payload_bytes: usize,
    ) -> Self {
        Execution {
            instance_id: instance_id.into(),
            name: String::new(),
            state: Arc::new(Mutex::new(OrchestrationState::new(
                recorded,
                max_payload_bytes,
            ))),
            future: None,
            finished: false,
            pending_outcome: None,
            history_len: 0,
            code_returned: false,
            started: false,
            execution_id: Arc::from(""),
            wake_flag: Arc::new(WakeFlag(AtomicBool::new(false))),
            committed_custom_status: None,
            pending_custom_status: None,
        }
    }

    /// True once the instance completed or failed.
    pub(crate) fn is_finished(&self) -> bool {
        self.finished
    }

    /// The number of events in durable history, where the next step's events go.
    pub(crate) fn history_len(&self) -> u64 {
        self.history_len
    }

    /// This run's id, once started.
    pub(crate) fn execution_id(&self) -> &Arc<str> {
        &self.execution_id
    }

    /// True once `ExecutionStarted` was applied.
    pub(crate) fn is_started(&self) -> bool {
        self.started
    }

    /// The orchestrator's registered name, once started.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Runs one step: records `events` (newly arrived messages), runs the code until it waits,
    /// and returns what to commit. Call [`Execution::committed`] once it is durable.
    pub(crate) fn step(
        &mut self,
        registry: &Registry,
        now_ms: i64,
        events: Vec<HistoryEvent>,
    ) -> StepOutput {
        if self.finished {
            return StepOutput {
                events: Vec::new(),
                scheduled: Vec::new(),
                timers: Vec::new(),
                children: Vec::new(),
                outcome: None,
                continued: None,
                custom_status: None,
            };
        }
        self.state.lock().current_time_ms = now_ms;
        let mut out = Vec::with_capacity(events.len() + 2);
        out.push(HistoryEvent::OrchestratorStarted);
        for event in events {
            if self.started && matches!(event, HistoryEvent::ExecutionStarted { .. }) {
                // A second start of a running instance (a message delivered twice) would
                // restart its code: consumed, never applied or recorded.
                tracing::warn!(instance = %self.instance_id, "ignoring a repeated ExecutionStarted");
                continue;
            }
            // Events carried from the previous run follow the start, as raised events.
            let (event, carried) = split_carried(event);
            for event in std::iter::once(event).chain(carried) {
                if self.pending_outcome.is_none() {
                    match self.apply(registry, &event, false) {
                        Ok(Applied::Recorded) => {}
                        // A second result for a task answered already (a child rewound after
                        // its parent handled its failure): recorded, it would make the next
                        // replay fail as non-deterministic.
                        Ok(Applied::Dropped) => continue,
                        Err(message) => {
                            self.pending_outcome = Some(Err(FailureDetails::new(message)));
                        }
                    }
                }
                out.push(event);
            }
        }
        let mut outcome = self.run_to_block();
        let mut scheduled = Vec::new();
        let mut timers = Vec::new();
        let mut children = Vec::new();
        let mut continue_as_new = None;
        let custom_status;
        {
            let mut state = self.state.lock();
            if let Some(message) = state.nondeterminism.take() {
                // Record none of the diverging actions: history stays a true record.
                state.new_tasks.clear();
                outcome = Some(Err(FailureDetails::new(message)));
            }
            let request = state.continue_as_new.take();
            if let Some(request) = request
                && !matches!(outcome, Some(Err(_)))
            {
                // The run ends here: nothing it scheduled in this step is started, but the
                // signals it sent are sent (one-way: they need no one to answer them).
                state
                    .new_tasks
                    .retain(|task| matches!(&task.action, Action::Entity(call) if call.signal));
                match request.input {
                    Ok(input) => {
                        continue_as_new = Some((input, request.preserve_unprocessed_events));
                        outcome = None;
                    }
                    Err(message) => outcome = Some(Err(FailureDetails::new(message))),
                }
            }
            custom_status = state
                .custom_status
                .clone()
                .filter(|status| self.committed_custom_status.as_ref() != Some(status));
            for task in state.new_tasks.drain(..) {
                match task.action {
                    Action::Activity { name, input } => {
                        out.push(HistoryEvent::TaskScheduled {
                            task_id: task.task_id,
                            name: name.clone(),
                            input: input.clone(),
                        });
                        scheduled.push((task.task_id, name, input));
                    }
                    Action::Timer { fire_at_ms } => {
                        out.push(HistoryEvent::TimerCreated {
                            task_id: task.task_id,
                            fire_at_ms,
                        });
                        timers.push((task.task_id, fire_at_ms));
                    }
                    Action::SubOrchestration(call) => {
                        let call = *call;
                        // A call by name runs the newest version registered when it is made.
                        let version = match call.version {
                            ChildVersion::Exact(version) => version,
                            ChildVersion::Newest => registry
                                .orchestrator(&call.name)
                                .and_then(|registration| registration.version)
                                .map(str::to_string),
                        };
                        out.push(HistoryEvent::SubOrchestrationInstanceCreated(Box::new(
                            SubOrchestrationCreatedEvent {
                                task_id: task.task_id,
                                name: call.name.clone(),
                                version: version.clone(),
                                instance_id: call.instance_id.clone(),
                                input: call.input.clone(),
                            },
                        )));
                        children.push(ScheduledChild {
                            task_id: task.task_id,
                            name: call.name,
                            version,
                            instance_id: call.instance_id,
                            input: call.input,
                        });
                    }
                    // The store queues the operation for the entity when it appends this
                    // event, in the step's transaction.
                    Action::Entity(call) => {
                        let call = *call;
                        out.push(HistoryEvent::EntityOperationCalled(Box::new(
                            EntityCallEvent {
                                task_id: task.task_id,
                                entity_id: call.entity_id,
                                operation: call.operation,
                                input: call.input,
                                signal: call.signal,
                            },
                        )));
                    }
                }
            }
        }
        match &outcome {
            Some(Ok(result)) => out.push(HistoryEvent::ExecutionCompleted {
                result: result.clone(),
            }),
            Some(Err(failure)) => out.push(HistoryEvent::ExecutionFailed {
                failure: failure.clone(),
            }),
            None => {}
        }
        if outcome.is_some() {
            self.finished = true;
            self.drop_future();
        }
        let continued = continue_as_new.map(|(input, preserve)| {
            self.finished = true;
            // Dropping the code's futures hands events received but not taken back to the
            // buffer, so they are carried too.
            self.drop_future();
            let carried_events = if preserve {
                self.state.lock().take_buffered_events()
            } else {
                Vec::new()
            };
            NextRun {
                input,
                carried_events: carried_events
                    .into_iter()
                    .map(|(name, input)| CarriedEvent { name, input })
                    .collect(),
            }
        });
        self.pending_custom_status = custom_status.clone();
        StepOutput {
            events: out,
            scheduled,
            timers,
            children,
            outcome,
            continued,
            custom_status,
        }
    }

    /// Records that a step's events (and custom status) are durable.
    pub(crate) fn committed(&mut self, appended: usize) {
        self.history_len += appended as u64;
        if let Some(status) = self.pending_custom_status.take() {
            self.committed_custom_status = Some(status);
        }
    }
}

impl Drop for Execution {
    fn drop(&mut self) {
        self.drop_future();
    }
}

/// An `ExecutionStarted` without the events carried into its run, and those events as the
/// `EventRaised` events history records after it.
fn split_carried(event: HistoryEvent) -> (HistoryEvent, Vec<HistoryEvent>) {
    match event {
        HistoryEvent::ExecutionStarted(mut started) if !started.carried_events.is_empty() => {
            let carried = std::mem::take(&mut started.carried_events)
                .into_iter()
                .map(|event| HistoryEvent::EventRaised {
                    name: event.name,
                    input: event.input,
                })
                .collect();
            (HistoryEvent::ExecutionStarted(started), carried)
        }
        other => (other, Vec::new()),
    }
}
