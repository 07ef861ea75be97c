//! Rebuilding an execution from its recorded history: the replay path, taken after a restart or a
//! cache eviction, that feeds every recorded event back through the same code.

use super::*;

impl Execution {
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
                HistoryEvent::EntityOperationCalled(call) => (
                    call.task_id,
                    Recorded::Entity {
                        entity_id: call.entity_id.clone(),
                        operation: call.operation.clone(),
                        signal: call.signal,
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
                | HistoryEvent::SubOrchestrationInstanceCreated { .. }
                | HistoryEvent::EntityOperationCalled(_) => {}
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
            let mut state = execution.state.lock();
            let failure = match (&state.nondeterminism, state.first_unreplayed_task()) {
                (Some(message), _) => Some(message.clone()),
                (None, Some((task_id, recorded))) if checked => {
                    let new = if execution.code_returned {
                        "returns without scheduling it"
                    } else {
                        "waits without scheduling it"
                    };
                    let message = format!(
                        "non-deterministic orchestrator: history has {recorded} as task \
                         {task_id}, but the code no longer schedules it"
                    );
                    state.divergence = Some(Box::new(Divergence {
                        task_id,
                        recorded,
                        new: new.to_string(),
                    }));
                    Some(message)
                }
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
}
