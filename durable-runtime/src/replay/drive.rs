//! Driving the orchestrator's code: starting it, feeding it one event, polling it until it
//! blocks, and what becomes of each event fed to it.

use super::*;

impl Execution {
    /// Feeds one incoming event to the code: whether it belongs in history. `Err` is a reason
    /// to fail the instance.
    pub(super) fn apply(
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
            HistoryEvent::SubOrchestrationInstanceFailed { task_id, failure }
            | HistoryEvent::EntityOperationFailed { task_id, failure } => {
                (*task_id, Err(failure.clone()))
            }
            HistoryEvent::EntityOperationCompleted { task_id, result } => {
                (*task_id, Ok(result.clone()))
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
            Delivery::Unexpected if replaying => {
                self.state.lock().divergence = Some(Box::new(Divergence {
                    task_id,
                    recorded: format!("{} for task {task_id}", event.event_type()),
                    new: "did not schedule that task".to_string(),
                }));
                Err(format!(
                    "non-deterministic orchestrator: history has a result for task {task_id}, \
                     which the code did not schedule"
                ))
            }
            Delivery::Unexpected => {
                tracing::warn!(instance = %self.instance_id, task_id, "dropping a result for a task that is not awaited");
                Ok(Applied::Dropped)
            }
        }
    }

    /// Starts the code of the version the instance started on: an instance keeps running on
    /// its version, so a deployment that adds a version never replays old histories against
    /// new code.
    pub(super) fn start(
        &mut self,
        registry: &Registry,
        name: &str,
        version: Option<&str>,
        input: Payload,
    ) {
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
    pub(super) fn run_to_block(&mut self) -> Option<Result<Payload, FailureDetails>> {
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
    pub(super) fn drop_future(&mut self) {
        if let Some(future) = self.future.take()
            && std::panic::catch_unwind(AssertUnwindSafe(move || drop(future))).is_err()
        {
            tracing::warn!(instance = %self.instance_id, "a value dropped by the orchestrator panicked");
        }
    }

    /// An output over the payload limit fails the instance instead of failing its commit.
    pub(super) fn check_output_size(&self, output: Payload) -> Result<Payload, FailureDetails> {
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

/// Why an instance's orchestrator cannot run here.
pub(super) fn unregistered(
    name: &str,
    version: Option<&str>,
    registered: &[Option<&str>],
) -> String {
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
pub(super) struct WakeFlag(pub(super) AtomicBool);

/// What became of an event fed to the code.
pub(super) enum Applied {
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
