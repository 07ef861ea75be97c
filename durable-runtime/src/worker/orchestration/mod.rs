//! Runs orchestration steps: claim an instance's messages, step its execution, commit.
//!
//! What happens when a step's commit fails is decided by the error's class alone:
//! - transient: the same messages are stepped again, from history, after a back-off: a few
//!   quick retries, then (the step counted as failing in the runtime's [`Health`]) at the slow
//!   pace until the store takes it; the instance keeps its messages and its claim meanwhile;
//! - conflict (fenced): the store moved on without this worker's view (a client changed the
//!   status, a result was recorded before): the step is recomputed from the store at once;
//! - corrupt or fatal: retrying cannot help, so the instance is failed with the reason, and its
//!   messages are consumed.
//!
//! A panic anywhere in a step (a user `Drop` or `Deserialize`) is treated like a fatal error:
//! the instance fails and the worker goes on, so no instance is left claimed forever.

use super::{Shared, Slot, poison, record_failure, retry_delay};
use crate::dispatch::{Inbound, Source};
use crate::failure::{FailureDetails, panic_failure};
#[cfg(doc)]
use crate::health::Health;
use crate::health::WriteRetry;
use crate::history::HistoryEvent;
use crate::instance::RuntimeStatus;
use crate::replay::Execution;
use crate::store::{
    ContinueAsNew, ErrorClass, NewChild, NewInstance, StepCommit, StoreError, Write,
};
use futures::FutureExt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use tracing::Instrument;

mod inbound;

use inbound::{
    commit_consume_only, completed_activities, drop_duplicates, fired_timers, keep_results,
    stored_messages,
};

/// Conflicts in a row after which retries back off like transient errors, so that a conflict
/// that keeps coming back (a bug) cannot spin a core.
const CONFLICTS_BEFORE_BACKOFF: u32 = 3;

/// What a step did with its messages.
enum Stepped {
    /// Committed (or consumed); the execution to keep, if any.
    Committed(Option<Box<Execution>>),
    /// The instance exists but its `ExecutionStarted` has not reached this worker yet (it was
    /// committed in the same batch as these messages): keep them until it arrives.
    AwaitingStart,
    /// The instance is suspended: its messages are kept (in the store, and parked in memory)
    /// until a client resumes or terminates it.
    Suspended,
}

/// Runs steps for `instance_id` until no messages are waiting for it.
pub(crate) async fn process_instance(shared: Arc<Shared>, instance_id: String, mut slot: Slot) {
    let span = tracing::info_span!("orchestration", instance = %instance_id);
    let _busy = shared.busy();
    async {
        let claim = shared.dispatcher.claim(&instance_id);
        let mut messages = claim.messages;
        let mut execution = claim.execution;
        let mut failures = 0u32;
        let mut write_retry = WriteRetry::new(&shared.health);
        let mut check_status = false;
        let mut failed_instance = false;
        loop {
            if messages.is_empty() {
                let (more, kept) = shared
                    .dispatcher
                    .release(&instance_id, execution.take(), Vec::new());
                if !more {
                    return;
                }
                execution = kept;
                messages = shared.dispatcher.claim(&instance_id).messages;
                continue;
            }
            drop_duplicates(&mut messages);
            // Before the history is replayed: replay runs the instance's code too.
            let verdict = match poison::suspect_step(&shared, &instance_id) {
                false => poison::Verdict::Run,
                true => {
                    slot.released_during(poison::attempt_step(&shared, &instance_id))
                        .await
                }
            };
            let attempt = match verdict {
                poison::Verdict::Run => None,
                poison::Verdict::Attempt(attempt) => Some(attempt),
                poison::Verdict::SetAside(failure) => {
                    if !record_failure(&shared, &instance_id, failure).await {
                        shared.dispatcher.abandon(&instance_id);
                        return;
                    }
                    // Finished now: the next step consumes its messages without running code.
                    failed_instance = true;
                    check_status = true;
                    continue;
                }
            };
            // Read before the step looks at the status (see `Dispatcher::park_suspended`).
            let changes = shared.dispatcher.changes(&instance_id);
            // Boxed: the step's future is large, and the task of an idle instance need not
            // carry its space.
            let step = Box::pin(run_step(
                &shared,
                &instance_id,
                execution.take(),
                &messages,
                check_status,
                &mut slot,
            ));
            let stepped = AssertUnwindSafe(step).catch_unwind().await;
            if let Some(attempt) = attempt {
                // Whatever the step did, the process survived its code.
                attempt.ran(&shared).await;
            }
            let error = match stepped {
                Ok(Ok(Stepped::Committed(kept))) => {
                    execution = kept.filter(|_| shared.dispatcher.keeps_executions());
                    messages.clear();
                    failures = 0;
                    if write_retry.attempts() > 0 {
                        // Counted as failing no more.
                        write_retry = WriteRetry::new(&shared.health);
                    }
                    check_status = false;
                    continue;
                }
                Ok(Ok(Stepped::Suspended)) => {
                    match keep_results(&shared, &instance_id, &mut messages).await {
                        Ok(()) => {
                            let parked = std::mem::take(&mut messages);
                            if !shared
                                .dispatcher
                                .park_suspended(&instance_id, parked, changes)
                            {
                                tracing::info!("suspended: messages kept for the resume");
                                return;
                            }
                            // Changed since the status was read: look again.
                            messages = shared.dispatcher.claim(&instance_id).messages;
                            check_status = true;
                            continue;
                        }
                        Err(err) => err,
                    }
                }
                Ok(Ok(Stepped::AwaitingStart)) => {
                    if !shared
                        .dispatcher
                        .park(&instance_id, std::mem::take(&mut messages))
                    {
                        return;
                    }
                    messages = shared.dispatcher.claim(&instance_id).messages;
                    continue;
                }
                Ok(Err(err)) => err,
                Err(panic) => {
                    let failure = panic_failure("an orchestration step", panic);
                    StoreError::Refused(failure.message)
                }
            };
            // The execution (if any) was moved into the failed step and dropped with it: it
            // may be ahead of history, so the next attempt replays from the store.
            failures += 1;
            match error.class() {
                ErrorClass::Transient => {
                    if !write_retry.failed("an orchestration step", &error).await {
                        // Stopping while the store fails: the messages stay in the store, and
                        // results held in memory are computed again, at the next start.
                        shared.dispatcher.abandon(&instance_id);
                        return;
                    }
                }
                ErrorClass::Conflict
                    if matches!(error, StoreError::LeaseLost(_))
                        && !shared.holds(&instance_id) =>
                {
                    // Another runtime holds the instance now (a shared store): its results
                    // held in memory go to it through the store, the rest is in the store.
                    tracing::info!("lease lost; the instance is left to its new holder");
                    if let Err(err) = keep_results(&shared, &instance_id, &mut messages).await {
                        tracing::warn!(error = %err, "could not store the results held in memory; their activities run again");
                    }
                    if shared.holds(&instance_id) {
                        // Held again already (the leases had only lapsed here): the adoption
                        // that came with it may have run before the results were stored, so
                        // this worker goes on with them itself.
                        check_status = true;
                        continue;
                    }
                    shared.dispatcher.abandon(&instance_id);
                    return;
                }
                ErrorClass::Conflict | ErrorClass::NotFound => {
                    tracing::info!(error = %error, "step fenced off; recomputing it from the store");
                    // Recorded or consumed by an earlier step: the duplicates must not be
                    // recorded again.
                    match &error {
                        StoreError::AlreadyRecorded(work_items) => messages.retain(|m| {
                            !matches!(m.source, Source::Activity(id) if work_items.contains(&id))
                        }),
                        StoreError::MessagesGone(gone) => messages.retain(|m| {
                            !matches!(m.source, Source::Message(id) if gone.contains(&id))
                        }),
                        StoreError::TimersGone(gone) => messages.retain(|m| {
                            !matches!(m.source, Source::Timer(id) if gone.contains(&id))
                        }),
                        _ => {}
                    }
                    check_status = true;
                    if failures > CONFLICTS_BEFORE_BACKOFF {
                        tokio::time::sleep(retry_delay(failures - CONFLICTS_BEFORE_BACKOFF)).await;
                    }
                }
                ErrorClass::Corrupt | ErrorClass::Fatal => {
                    if failed_instance || !fail_instance(&shared, &instance_id, &error).await {
                        // Not even the failure can be written: leave the messages in the store
                        // for the next start rather than spin.
                        shared.dispatcher.abandon(&instance_id);
                        return;
                    }
                    // The instance is finished now: the next attempt consumes its messages.
                    failed_instance = true;
                    check_status = true;
                }
            }
        }
    }
    .instrument(span)
    .await
}

/// Records that the instance failed because of `error`. Returns false if even that cannot be
/// written.
async fn fail_instance(shared: &Arc<Shared>, instance_id: &str, error: &StoreError) -> bool {
    let failure = FailureDetails::new(match error {
        StoreError::Corrupt { table, key, reason } => {
            format!("the instance cannot be replayed: corrupt {table} row {key}: {reason}")
        }
        other => format!("the instance's step cannot be committed: {other}"),
    });
    record_failure(shared, instance_id, failure).await
}

/// Runs one step over `messages` and commits it.
async fn run_step(
    shared: &Arc<Shared>,
    instance_id: &str,
    execution: Option<Box<Execution>>,
    messages: &[Inbound],
    check_status: bool,
    slot: &mut Slot,
) -> Result<Stepped, StoreError> {
    let (mut execution, stored_run) = match execution {
        Some(execution) if !check_status => (execution, None),
        _ => match rebuild(shared, instance_id, messages, check_status).await? {
            Rebuilt::Execution(execution, stored_run) => (execution, stored_run),
            Rebuilt::Finished => {
                // A late message (a losing timer, a late result) for a finished instance: consume
                // it without replaying the history.
                commit_consume_only(shared, instance_id, messages).await?;
                return Ok(Stepped::Committed(None));
            }
            Rebuilt::Unknown => {
                tracing::warn!(
                    count = messages.len(),
                    "dropping messages sent to an unknown instance"
                );
                commit_consume_only(shared, instance_id, messages).await?;
                return Ok(Stepped::Committed(None));
            }
            Rebuilt::AwaitingStart => return Ok(Stepped::AwaitingStart),
            Rebuilt::Suspended => return Ok(Stepped::Suspended),
        },
    };
    if execution.is_finished() {
        commit_consume_only(shared, instance_id, messages).await?;
        return Ok(Stepped::Committed(None));
    }
    let now = shared.clock.now_ms();
    // The run this step belongs to: the execution's, or the one its start message begins.
    let run = if execution.is_started() {
        execution.execution_id().clone()
    } else {
        let mut starts = messages.iter().filter_map(|m| match &m.event {
            HistoryEvent::ExecutionStarted(started) => {
                Some(started.execution_id.as_deref().unwrap_or_default())
            }
            _ => None,
        });
        match stored_run {
            // A shared store can hand over again the start of a run that has ended since (read
            // by an adoption before the step that consumed it committed): only the start of
            // the run the store is on begins one, the others are consumed as stale.
            Some(stored) => match starts.any(|run| run == stored) {
                true => Arc::from(stored),
                false => return Ok(Stepped::AwaitingStart),
            },
            None => Arc::from(starts.next().unwrap_or_default()),
        }
    };
    // Results of another run (before a restart of the instance) never land in this one: they
    // are consumed, not applied.
    let current = |m: &&Inbound| m.execution_id.is_empty() || m.execution_id == run;
    if let Some(stale) = messages.iter().find(|m| !current(m)) {
        tracing::warn!(run = %stale.execution_id, current = %run, "dropping a result of another run");
    }
    // The start goes first, even when an event committed in the same batch was delivered
    // before it.
    let mut events: Vec<HistoryEvent> = Vec::with_capacity(messages.len());
    events.extend(
        messages
            .iter()
            .filter(current)
            .filter(|m| is_start(&m.event))
            .map(|m| m.event.clone()),
    );
    events.extend(
        messages
            .iter()
            .filter(current)
            .filter(|m| !is_start(&m.event))
            .map(|m| m.event.clone()),
    );
    let step = execution.step(&shared.registry, now, events);
    let (status, output, failure) = match &step.outcome {
        None if step.continued.is_some() => (RuntimeStatus::ContinuedAsNew, None, None),
        None => (RuntimeStatus::Running, None, None),
        Some(Ok(output)) => (RuntimeStatus::Completed, Some(output.clone()), None),
        Some(Err(failure)) => {
            tracing::warn!(orchestrator = execution.name(), failure = %failure.message, "instance failed");
            (RuntimeStatus::Failed, None, Some(failure.clone()))
        }
    };
    let appended = step.events.len();
    // Each child's first run gets a fresh id here: a step that is not committed created
    // nothing, and the one computed again creates its children under new run ids.
    let children = step
        .children
        .into_iter()
        .map(|child| NewChild {
            task_id: child.task_id,
            instance: NewInstance {
                instance_id: child.instance_id,
                execution_id: uuid::Uuid::new_v4().simple().to_string().into(),
                name: child.name,
                version: child.version,
                input: child.input,
                created_ms: now,
            },
        })
        .collect();
    // The next run gets a fresh id here, like a child: results of this run can never land in
    // it, and a step computed again after a failed commit starts its next run under a new id.
    let continue_as_new = step.continued.map(|next| {
        tracing::debug!(orchestrator = execution.name(), "continuing as new");
        Box::new(ContinueAsNew {
            execution_id: uuid::Uuid::new_v4().simple().to_string().into(),
            input: next.input,
            carried_events: next.carried_events,
        })
    });
    let continued = continue_as_new.is_some();
    let commit = StepCommit {
        instance_id: instance_id.to_string(),
        execution_id: run,
        first_seq: execution.history_len(),
        timestamp_ms: now,
        events: step.events,
        consumed: stored_messages(messages),
        completed_activities: completed_activities(messages),
        fired_timers: fired_timers(messages),
        activities: step.scheduled,
        timers: step.timers,
        children,
        status: Some(status),
        output,
        failure,
        custom_status: step.custom_status,
        continue_as_new,
    };
    slot.released_during(shared.commit(Write::Step(commit)))
        .await?;
    execution.committed(appended);
    if step.outcome.is_some() {
        shared.dispatcher.finished(instance_id);
    }
    if continued {
        // The next run starts from its own ExecutionStarted, already on its way: the ended
        // run's execution must not take (and consume) its messages.
        return Ok(Stepped::Committed(None));
    }
    Ok(Stepped::Committed(Some(execution)))
}

fn is_start(event: &HistoryEvent) -> bool {
    matches!(event, HistoryEvent::ExecutionStarted { .. })
}

/// What the store says about an instance that is not in memory.
enum Rebuilt {
    /// The execution to step, and the run the store is on, when it was read (an execution
    /// not started yet begins that run, and no other).
    Execution(Box<Execution>, Option<String>),
    Finished,
    Suspended,
    Unknown,
    AwaitingStart,
}

/// Rebuilds the instance from the store (or starts it, if `messages` hold its start).
async fn rebuild(
    shared: &Arc<Shared>,
    instance_id: &str,
    messages: &[Inbound],
    check_status: bool,
) -> Result<Rebuilt, StoreError> {
    let limit = shared.limits.max_payload_bytes;
    let mut stored_run = None;
    let mut status_read = None;
    if check_status {
        match shared.store.read_current_run(instance_id).await? {
            None => return Ok(Rebuilt::Unknown),
            Some(run) => match run.status {
                RuntimeStatus::Suspended => return Ok(Rebuilt::Suspended),
                status @ (RuntimeStatus::Pending
                | RuntimeStatus::Running
                | RuntimeStatus::ContinuedAsNew) => {
                    status_read = Some(status);
                    // Empty for an instance created before runs had ids: any start goes.
                    stored_run = Some(run.execution_id).filter(|id| !id.is_empty());
                }
                _ => return Ok(Rebuilt::Finished),
            },
        }
    }
    let starts_here = messages.iter().any(|m| is_start(&m.event));
    // ExecutionStarted is consumed by the first step, in the same transaction that writes the
    // first history: while it is pending, the history is empty.
    if starts_here && !check_status {
        return Ok(Rebuilt::Execution(
            Box::new(Execution::new(instance_id, limit)),
            None,
        ));
    }
    let history = shared.store.read_history(instance_id).await?;
    if history.is_empty() {
        if starts_here {
            return Ok(Rebuilt::Execution(
                Box::new(Execution::new(instance_id, limit)),
                stored_run,
            ));
        }
        let status = match status_read {
            Some(status) => Some(status),
            None => shared.store.read_runtime_status(instance_id).await?,
        };
        return Ok(match status {
            None => Rebuilt::Unknown,
            Some(status) if status.is_terminal() => Rebuilt::Finished,
            // Created, but its start has not reached this worker yet.
            Some(_) => Rebuilt::AwaitingStart,
        });
    }
    let finished = history.last().is_some_and(|record| {
        matches!(
            record.event,
            HistoryEvent::ExecutionCompleted { .. }
                | HistoryEvent::ExecutionFailed { .. }
                | HistoryEvent::ExecutionTerminated { .. }
        )
    });
    if finished {
        return Ok(Rebuilt::Finished);
    }
    shared.dispatcher.replayed();
    Ok(Rebuilt::Execution(
        Box::new(Execution::replay(
            &shared.registry,
            instance_id,
            &history,
            limit,
        )),
        None,
    ))
}
