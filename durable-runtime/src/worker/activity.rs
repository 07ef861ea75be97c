//! Runs activities and records their results.

use super::Shared;
use super::hooks::{Mock, StartedActivity};
use super::poison::{self, Verdict};
use crate::activity_context::ActivityContext;
use crate::failure::{FailureDetails, panic_failure};
use crate::history::HistoryEvent;
use crate::store::{ActivityWorkItem, Write};
use futures::FutureExt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use tracing::Instrument;

/// Takes an activity out of the runtime's hands when it returns, however it returns. Its
/// result may still wait for its step then: a row handed over again before that step commits
/// its completion runs once more (a window left open: closing it means keeping the id until
/// the step commits).
struct InHand(Arc<Shared>, i64);

impl Drop for InHand {
    fn drop(&mut self) {
        self.0.dispatcher.activity_done(self.1);
    }
}

/// Runs one activity (catching panics) and hands its result to its instance.
pub(crate) async fn execute(shared: Arc<Shared>, item: ActivityWorkItem) {
    // Taken before the activity leaves the queue's count: a test harness never sees it in
    // neither.
    let _busy = shared.busy();
    shared.dispatcher.activity_started();
    let _in_hand = InHand(shared.clone(), item.id);
    if !shared.holds(&item.instance_id) {
        // Its partition went to another runtime (a shared store), which runs it.
        tracing::debug!(instance = %item.instance_id, "activity left to the holder of its instance");
        return;
    }
    let span = tracing::info_span!("activity", instance = %item.instance_id, name = %item.name, task_id = item.task_id);
    async {
        let attempt = match poison::before_activity(&shared, item.id, &item.name).await {
            Verdict::Run => None,
            Verdict::Attempt(attempt) => Some(attempt),
            Verdict::SetAside(failure) => {
                tracing::error!(failure = %failure.message, "activity set aside");
                shared.suspects.note_instance(&item.instance_id);
                let event = HistoryEvent::TaskFailed {
                    task_id: item.task_id,
                    failure,
                };
                shared.dispatcher.deliver_activity_result(
                    item.instance_id.clone(),
                    item.id,
                    item.execution_id.clone(),
                    event,
                );
                return;
            }
        };
        let mock = shared.hooks.as_ref().and_then(|hooks| {
            hooks.record_start(StartedActivity {
                instance_id: item.instance_id.clone(),
                name: item.name.clone(),
                input: item.input.clone(),
            });
            hooks.mock(&item.name)
        });
        let result = match shared.registry.activity(&item.name) {
            // A test replaced it: the real function never runs.
            _ if let Some(mock) = &mock => run_mock(mock, &item),
            None => Err(FailureDetails::new(format!(
                "no activity named '{}' is registered in this program",
                item.name
            ))),
            Some(registration) => {
                let ctx =
                    ActivityContext::new(item.instance_id.clone(), item.task_id, item.name.clone());
                let timeout = shared.limits.activity_timeout(&item.name);
                // The timed-out future is dropped inside the catch too: a user `Drop` that
                // panics must not lose the result.
                let run = AssertUnwindSafe(async {
                    let invoke = (registration.invoke)(ctx, item.input.clone());
                    match timeout {
                        None => Ok(invoke.await),
                        Some(limit) => tokio::time::timeout(limit, invoke).await.map_err(|_| limit),
                    }
                })
                .catch_unwind();
                match run.await {
                    Ok(Ok(result)) => result,
                    Err(panic) => Err(panic_failure(&format!("activity '{}'", item.name), panic)),
                    // Dropping the future cancels the activity and frees its slot.
                    Ok(Err(limit)) => Err(FailureDetails::new(format!(
                        "activity '{}' did not finish within its start-to-close timeout of \
                         {limit:?}",
                        item.name
                    ))),
                }
            }
        };
        if let Some(attempt) = attempt {
            attempt.ran(&shared).await;
            // Its result reaches the instance in memory, and is suspect input there too.
            shared.suspects.note_instance(&item.instance_id);
        }
        let limit = shared.limits.max_payload_bytes;
        let result = result.and_then(|output| match output.as_str().len() {
            size if size > limit => Err(FailureDetails::new(format!(
                "the result of activity '{}' is {size} bytes, over the payload limit of \
                 {limit} bytes",
                item.name
            ))),
            _ => Ok(output),
        });
        let event = match result {
            Ok(result) => HistoryEvent::TaskCompleted {
                task_id: item.task_id,
                result,
            },
            Err(failure) => HistoryEvent::TaskFailed {
                task_id: item.task_id,
                failure,
            },
        };
        if !shared.holds(&item.instance_id) {
            // The instance went to another runtime while this ran: the result goes to it
            // through the store.
            complete_elsewhere(&shared, &item, event).await;
            return;
        }
        // Recorded by the instance's next step, with the deletion of the work item.
        shared.dispatcher.deliver_activity_result(
            item.instance_id.clone(),
            item.id,
            item.execution_id.clone(),
            event,
        );
    }
    .instrument(span)
    .await
}

/// Stores an activity's result as a message to its instance ([`Write::CompleteActivity`]),
/// retrying transient errors; if that fails for good, the work item stays and the activity
/// runs again for the instance's holder.
async fn complete_elsewhere(shared: &Arc<Shared>, item: &ActivityWorkItem, event: HistoryEvent) {
    let write = || Write::CompleteActivity {
        work_item_id: item.id,
        instance_id: item.instance_id.clone(),
        event: event.clone(),
    };
    if let Err(err) = shared.commit_retrying("an activity result", write).await {
        tracing::warn!(error = %err, instance = %item.instance_id, "could not store an activity's result; it runs again");
    }
}

/// Runs a test's replacement of an activity, catching its panics like the real function's.
fn run_mock(mock: &Mock, item: &ActivityWorkItem) -> Result<crate::Payload, FailureDetails> {
    std::panic::catch_unwind(AssertUnwindSafe(|| mock(item.input.clone()))).unwrap_or_else(
        |panic| {
            Err(panic_failure(
                &format!("the mock of activity '{}'", item.name),
                panic,
            ))
        },
    )
}
