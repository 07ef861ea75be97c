//! The replay engine: runs an orchestrator's code against its history, one step at a time.
//!
//! An [`Execution`] is a live orchestrator future plus the state its context shares. A hot
//! instance keeps its `Execution` in memory between steps, so a step costs only the new events;
//! after a restart or a cache eviction, [`Execution::replay`] rebuilds it by feeding the recorded
//! history back through the same code, checking that the code makes the same decisions.

use crate::context::{
    Action, ChildVersion, Delivery, OrchestrationContext, OrchestrationState, Recorded,
};
use crate::failure::{FailureDetails, panic_failure};
use crate::history::{CarriedEvent, HistoryEvent, HistoryRecord, SubOrchestrationCreatedEvent};
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

    /// Rebuilds an instance from its whole history.
    pub(crate) fn replay(
        registry: &Registry,
        instance_id: &str,
        history: &[HistoryRecord],
        max_payload_bytes: usize,
    ) -> Self {
        // A map, not a vector indexed by task id: a corrupt row with a huge task id must fail
        // its instance, not allocate the machine's memory away.
        let mut recorded: BTreeMap<u64, Recorded> = BTreeMap::new();
        for record in history {
            let (task_id, what) = match &record.event {
                HistoryEvent::TaskScheduled { task_id, name, .. } => {
                    (*task_id, Recorded::Activity(name.clone()))
                }
                HistoryEvent::TimerCreated { task_id, .. } => (*task_id, Recorded::Timer),
                HistoryEvent::SubOrchestrationInstanceCreated(created) => (
                    created.task_id,
                    Recorded::SubOrchestration {
                        name: created.name.clone(),
                        instance_id: created.instance_id.clone(),
                    },
                ),
                _ => continue,
            };
            recorded.insert(task_id, what);
        }
        let mut execution = Execution::with_recorded(instance_id, recorded, max_payload_bytes);
        execution.history_len = history.len() as u64;
        execution.state.lock().is_replaying = true;
        // Failures a client rewound are replayed as if they never arrived: the tasks run again.
        let rewound = if history
            .iter()
            .any(|r| matches!(r.event, HistoryEvent::ExecutionRewound { .. }))
        {
            let events: Vec<&HistoryEvent> = history.iter().map(|r| &r.event).collect();
            crate::history::rewound_events(&events)
        } else {
            Default::default()
        };
        for (index, record) in history.iter().enumerate() {
            if execution.finished || execution.pending_outcome.is_some() {
                break;
            }
            if rewound.contains(&index) {
                continue;
            }
            match &record.event {
                HistoryEvent::OrchestratorStarted => {
                    // The previous step's events are all in: let the code catch up.
                    execution.pending_outcome = execution.run_to_block();
                    execution.state.lock().current_time_ms = record.timestamp_ms;
                }
                HistoryEvent::ExecutionCompleted { .. }
                | HistoryEvent::ExecutionFailed { .. }
                | HistoryEvent::ExecutionTerminated { .. } => {
                    execution.finished = true;
                }
                HistoryEvent::TaskScheduled { .. }
                | HistoryEvent::TimerCreated { .. }
                | HistoryEvent::SubOrchestrationInstanceCreated { .. } => {}
                event => {
                    if let Err(message) = execution.apply(registry, event, true) {
                        execution.pending_outcome = Some(Err(FailureDetails::new(message)));
                    }
                }
            }
        }
        if !execution.finished {
            if execution.pending_outcome.is_none() {
                execution.pending_outcome = execution.run_to_block();
            }
            // Divergence is checked whenever the code ran to its end or to a wait: code that
            // now returns early (even mid-history) must not complete with a new output while
            // history holds tasks it no longer schedules.
            let checked = execution.pending_outcome.is_none() || execution.code_returned;
            let state = execution.state.lock();
            let failure = match (&state.nondeterminism, state.first_unreplayed_task()) {
                (Some(message), _) => Some(message.clone()),
                (None, Some((task_id, recorded))) if checked => Some(format!(
                    "non-deterministic orchestrator: history has {recorded} as task \
                         {task_id}, but the code no longer schedules it"
                )),
                _ => None,
            };
            drop(state);
            if let Some(message) = failure {
                execution.drop_future();
                execution.pending_outcome = Some(Err(FailureDetails::new(message)));
            }
        }
        {
            let mut state = execution.state.lock();
            // A run that continued as new has no history left to replay: code that now asks
            // for it in a recorded step diverges from what was recorded.
            if state.continue_as_new.take().is_some() && !execution.finished {
                let failure = FailureDetails::new(
                    "non-deterministic orchestrator: the code now continues as new in a step \
                     that history records as going on",
                );
                drop(state);
                execution.drop_future();
                execution.pending_outcome = Some(Err(failure));
                state = execution.state.lock();
            }
            // Each recorded step wrote the custom status it changed: the store holds this.
            execution.committed_custom_status = state.custom_status.clone();
            state.is_replaying = false;
        }
        execution
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
                // The run ends here: nothing it scheduled in this step is started.
                state.new_tasks.clear();
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

    /// Feeds one incoming event to the code: whether it belongs in history. `Err` is a reason
    /// to fail the instance.
    fn apply(
        &mut self,
        registry: &Registry,
        event: &HistoryEvent,
        replaying: bool,
    ) -> Result<Applied, String> {
        let (task_id, result) = match event {
            HistoryEvent::ExecutionStarted(started) => {
                if !self.started {
                    self.execution_id = started.execution_id.as_deref().unwrap_or_default().into();
                    self.start(
                        registry,
                        &started.name,
                        started.version.as_deref(),
                        started.input.clone(),
                    );
                }
                return Ok(Applied::Recorded);
            }
            HistoryEvent::TaskCompleted { task_id, result } => (*task_id, Ok(result.clone())),
            HistoryEvent::TaskFailed { task_id, failure } => (*task_id, Err(failure.clone())),
            HistoryEvent::TimerFired { task_id } => (*task_id, Ok(Payload::null())),
            HistoryEvent::SubOrchestrationInstanceCompleted { task_id, result } => {
                (*task_id, Ok(result.clone()))
            }
            HistoryEvent::SubOrchestrationInstanceFailed { task_id, failure } => {
                (*task_id, Err(failure.clone()))
            }
            HistoryEvent::EventRaised { name, input } => {
                if let Some(waker) = self.state.lock().raise_event(name, input.clone()) {
                    waker.wake();
                }
                return Ok(Applied::Recorded);
            }
            _ => return Ok(Applied::Recorded),
        };
        let (delivery, waker) = self.state.lock().deliver(task_id, result);
        match delivery {
            Delivery::Delivered => {
                if let Some(waker) = waker {
                    waker.wake();
                }
                Ok(Applied::Recorded)
            }
            Delivery::Unexpected if replaying => Err(format!(
                "non-deterministic orchestrator: history has a result for task {task_id}, \
                 which the code did not schedule"
            )),
            Delivery::Unexpected => {
                tracing::warn!(instance = %self.instance_id, task_id, "dropping a result for a task that is not awaited");
                Ok(Applied::Dropped)
            }
        }
    }

    /// Starts the code of the version the instance started on: an instance keeps running on
    /// its version, so a deployment that adds a version never replays old histories against
    /// new code.
    fn start(&mut self, registry: &Registry, name: &str, version: Option<&str>, input: Payload) {
        self.started = true;
        self.name = name.to_string();
        let registration = match registry.orchestrator_version(name, version) {
            Ok(registration) => registration,
            Err(registered) => {
                self.pending_outcome = Some(Err(FailureDetails::new(unregistered(
                    name,
                    version,
                    &registered,
                ))));
                return;
            }
        };
        self.state.lock().orchestrator_name = registration.name;
        // Deterministic ids and random numbers differ from run to run of one instance.
        let seed = if self.execution_id.is_empty() {
            &self.instance_id
        } else {
            &self.execution_id
        };
        let ctx =
            OrchestrationContext::new(self.instance_id.clone(), seed.clone(), self.state.clone());
        // Decoding the input runs user code (a `Deserialize` impl), which may panic.
        let started =
            std::panic::catch_unwind(AssertUnwindSafe(|| (registration.start)(ctx, input)));
        match started {
            Ok(Ok(future)) => self.future = Some(future),
            Ok(Err(failure)) => self.pending_outcome = Some(Err(failure)),
            Err(panic) => {
                let what = format!("orchestrator '{name}'");
                self.pending_outcome = Some(Err(panic_failure(&what, panic)));
            }
        }
    }

    /// Polls the orchestrator until it waits on something that has not arrived; returns its
    /// outcome once it has one.
    fn run_to_block(&mut self) -> Option<Result<Payload, FailureDetails>> {
        if let Some(outcome) = self.pending_outcome.take() {
            return Some(outcome);
        }
        let future = self.future.as_mut()?;
        let waker = Waker::from(self.wake_flag.clone());
        let mut cx = Context::from_waker(&waker);
        let outcome = loop {
            self.wake_flag.0.store(false, Ordering::Relaxed);
            let polled =
                std::panic::catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(&mut cx)));
            match polled {
                Ok(Poll::Ready(result)) => {
                    self.code_returned = true;
                    break result.and_then(|output| self.check_output_size(output));
                }
                Ok(Poll::Pending) => {
                    // A combinator may yield and wake itself to stay fair; honour that.
                    if !self.wake_flag.0.swap(false, Ordering::Relaxed)
                        || self.state.lock().nondeterminism.is_some()
                    {
                        return None;
                    }
                }
                Err(panic) => {
                    let what = format!("orchestrator '{}'", self.name);
                    break Err(panic_failure(&what, panic));
                }
            }
        };
        self.drop_future();
        Some(outcome)
    }

    /// Drops the orchestrator's future, containing a panic from a user `Drop`: it must not
    /// unwind through the worker, which would leave the instance claimed forever.
    fn drop_future(&mut self) {
        if let Some(future) = self.future.take()
            && std::panic::catch_unwind(AssertUnwindSafe(move || drop(future))).is_err()
        {
            tracing::warn!(instance = %self.instance_id, "a value dropped by the orchestrator panicked");
        }
    }

    /// An output over the payload limit fails the instance instead of failing its commit.
    fn check_output_size(&self, output: Payload) -> Result<Payload, FailureDetails> {
        let limit = self.state.lock().max_payload_bytes;
        let size = output.as_str().len();
        if size > limit {
            return Err(FailureDetails::new(format!(
                "the output of orchestrator '{}' is {size} bytes, over the payload limit of \
                 {limit} bytes",
                self.name
            )));
        }
        Ok(output)
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

/// Why an instance's orchestrator cannot run here.
fn unregistered(name: &str, version: Option<&str>, registered: &[Option<&str>]) -> String {
    let describe = |v: Option<&str>| v.map_or("unversioned".to_string(), |v| format!("'{v}'"));
    if registered.is_empty() {
        return format!("no orchestrator named '{name}' is registered in this program");
    }
    let registered: Vec<String> = registered.iter().map(|v| describe(*v)).collect();
    format!(
        "orchestrator '{name}' version {} is not registered in this program (registered: {}); \
         an instance keeps running on the version it started with, so keep that version \
         registered until its instances finish",
        describe(version),
        registered.join(", ")
    )
}

/// The top-level waker: records that something asked to be polled again.
struct WakeFlag(AtomicBool);

/// What became of an event fed to the code.
enum Applied {
    /// It belongs in history.
    Recorded,
    /// A result nobody awaits and no replay may meet: consumed, not recorded.
    Dropped,
}

impl Wake for WakeFlag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::Relaxed);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.store(true, Ordering::Relaxed);
    }
}
