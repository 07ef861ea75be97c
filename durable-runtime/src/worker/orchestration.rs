//! Runs orchestration steps: claim an instance's messages, step its execution, commit.

use super::{RETRY_DELAY, Shared};
use crate::dispatch::{Inbound, Source};
use crate::failure::FailureDetails;
use crate::history::{HistoryEvent, now_ms};
use crate::instance::RuntimeStatus;
use crate::replay::Execution;
use crate::store::{ErrorClass, StepCommit, StoreError, Write, Written};
use std::sync::Arc;
use tracing::Instrument;

/// Runs steps for `instance_id` until no messages are waiting for it.
pub(crate) async fn process_instance(shared: Arc<Shared>, instance_id: String) {
    let span = tracing::info_span!("orchestration", instance = %instance_id);
    async {
        let claim = shared.dispatcher.claim(&instance_id);
        let mut messages = claim.messages;
        let mut execution = claim.execution;
        loop {
            if messages.is_empty() {
                let (more, kept) = shared
                    .dispatcher
                    .release(&instance_id, execution, Vec::new());
                if !more {
                    return;
                }
                execution = kept;
                messages = shared.dispatcher.claim(&instance_id).messages;
                continue;
            }
            match run_step(&shared, &instance_id, execution.take(), &messages).await {
                Ok(kept) => {
                    execution = kept;
                    messages.clear();
                }
                Err(err)
                    if err.class() == ErrorClass::Corrupt || matches!(err, StoreError::Refused(_)) =>
                {
                    // Retrying cannot help: fail the instance, saying which row (or why the
                    // store refuses the step), and keep its messages in the store.
                    let failure = FailureDetails::new(match err {
                        StoreError::Refused(_) => format!("the step cannot be stored: {err}"),
                        _ => format!("the instance cannot be replayed: {err}"),
                    });
                    tracing::error!(failure = %failure.message, "failing the instance");
                    let write = Write::FailInstance {
                        instance_id: instance_id.clone(),
                        failure,
                        timestamp_ms: now_ms(),
                    };
                    if let Err(err) = shared.store.write(write).await {
                        tracing::error!(error = %err, "could not record the failure");
                    }
                    shared.dispatcher.abandon(&instance_id);
                    shared.dispatcher.finished(&instance_id);
                    return;
                }
                Err(StoreError::AlreadyRecorded(work_items)) => {
                    // Those results were recorded by an earlier step: drop the duplicates and
                    // run the step again from history.
                    tracing::warn!(?work_items, "dropping activity results recorded before");
                    messages.retain(
                        |m| !matches!(m.source, Source::Activity(id) if work_items.contains(&id)),
                    );
                    let (_, _) = shared.dispatcher.release(
                        &instance_id,
                        None,
                        std::mem::take(&mut messages),
                    );
                    messages = shared.dispatcher.claim(&instance_id).messages;
                }
                Err(err)
                    if matches!(err, StoreError::Fenced(_))
                        && finished_in_store(&shared, &instance_id).await =>
                {
                    // Finished by a client or by an earlier failure: nobody takes these
                    // messages any more, so consume them.
                    tracing::warn!(error = %err, "the instance has finished; dropping its messages");
                    if let Err(err) = commit_consume_only(&shared, &instance_id, &messages).await {
                        tracing::error!(error = %err, "could not drop the messages");
                    }
                    shared.dispatcher.abandon(&instance_id);
                    shared.dispatcher.finished(&instance_id);
                    return;
                }
                Err(err) => {
                    tracing::error!(error = %err, "step not committed; retrying after a delay");
                    // The in-memory execution may be ahead of history: drop it and replay later.
                    tokio::time::sleep(RETRY_DELAY).await;
                    let (_, _) = shared.dispatcher.release(
                        &instance_id,
                        None,
                        std::mem::take(&mut messages),
                    );
                    messages = shared.dispatcher.claim(&instance_id).messages;
                }
            }
        }
    }
    .instrument(span)
    .await
}

/// Whether the store says the instance has finished (a fenced step will never apply).
async fn finished_in_store(shared: &Shared, instance_id: &str) -> bool {
    matches!(
        shared.store.read_runtime_status(instance_id).await,
        Ok(Some(status)) if status.is_terminal()
    )
}

/// Runs one step over `messages` and commits it. Returns the execution to keep, if any.
async fn run_step(
    shared: &Shared,
    instance_id: &str,
    execution: Option<Box<Execution>>,
    messages: &[Inbound],
) -> Result<Option<Box<Execution>>, StoreError> {
    let mut execution = match execution {
        Some(execution) => execution,
        None => {
            let starts_here = messages
                .iter()
                .any(|m| matches!(m.event, HistoryEvent::ExecutionStarted { .. }));
            // ExecutionStarted is consumed by the first step, in the same transaction that
            // writes the first history: while it is pending, the history is empty.
            let history = if starts_here {
                Vec::new()
            } else {
                shared.store.read_history(instance_id).await?
            };
            if history.is_empty() && !starts_here {
                // Messages for an instance that never started (or was purged): consume them.
                tracing::warn!(
                    count = messages.len(),
                    "dropping messages sent to an unknown instance"
                );
                commit_consume_only(shared, instance_id, messages).await?;
                return Ok(None);
            }
            if history.is_empty() {
                Box::new(Execution::new(instance_id))
            } else {
                Box::new(Execution::replay(&shared.registry, instance_id, &history))
            }
        }
    };
    if execution.is_finished() {
        commit_consume_only(shared, instance_id, messages).await?;
        return Ok(Some(execution));
    }
    let now = now_ms();
    let events = messages.iter().map(|m| m.event.clone()).collect();
    let step = execution.step(&shared.registry, now, events);
    let (status, output, failure) = match &step.outcome {
        None => (RuntimeStatus::Running, None, None),
        Some(Ok(output)) => (RuntimeStatus::Completed, Some(output.clone()), None),
        Some(Err(failure)) => {
            tracing::warn!(orchestrator = execution.name(), failure = %failure.message, "instance failed");
            (RuntimeStatus::Failed, None, Some(failure.clone()))
        }
    };
    let appended = step.events.len();
    let commit = StepCommit {
        instance_id: instance_id.to_string(),
        first_seq: execution.history_len(),
        timestamp_ms: now,
        events: step.events,
        consumed: stored_messages(messages),
        completed_activities: completed_activities(messages),
        activities: step.scheduled,
        timers: step.timers,
        status: Some(status),
        output,
        failure,
    };
    let Written::Step(work) = shared.store.write(Write::Step(commit)).await? else {
        return Err(StoreError::UnexpectedAnswer("step"));
    };
    execution.committed(appended);
    for item in work.activities {
        shared.dispatcher.enqueue_activity(item);
    }
    for timer in work.timers {
        shared.dispatcher.arm_timer(timer);
    }
    if step.outcome.is_some() {
        shared.dispatcher.finished(instance_id);
    }
    Ok(Some(execution))
}

async fn commit_consume_only(
    shared: &Shared,
    instance_id: &str,
    messages: &[Inbound],
) -> Result<(), StoreError> {
    let commit = StepCommit {
        instance_id: instance_id.to_string(),
        first_seq: 0,
        timestamp_ms: now_ms(),
        events: Vec::new(),
        consumed: stored_messages(messages),
        completed_activities: completed_activities(messages),
        activities: Vec::new(),
        timers: Vec::new(),
        status: None,
        output: None,
        failure: None,
    };
    shared.store.write(Write::Step(commit)).await.map(|_| ())
}

/// The ids of the stored messages among `inbound`.
fn stored_messages(inbound: &[Inbound]) -> Vec<i64> {
    inbound
        .iter()
        .filter_map(|m| match m.source {
            Source::Message(id) => Some(id),
            Source::Activity(_) => None,
        })
        .collect()
}

/// The activity work items whose results are among `inbound`.
fn completed_activities(inbound: &[Inbound]) -> Vec<i64> {
    inbound
        .iter()
        .filter_map(|m| match m.source {
            Source::Activity(id) => Some(id),
            Source::Message(_) => None,
        })
        .collect()
}
