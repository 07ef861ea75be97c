//! Runs activities and records their results.

use super::Shared;
use crate::activity_context::ActivityContext;
use crate::failure::{FailureDetails, panic_failure};
use crate::history::HistoryEvent;
use crate::store::ActivityWorkItem;
use futures::FutureExt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use tracing::Instrument;

/// Runs one activity (catching panics) and hands its result to its instance.
pub(crate) async fn execute(shared: Arc<Shared>, item: ActivityWorkItem) {
    let span = tracing::info_span!("activity", instance = %item.instance_id, name = %item.name, task_id = item.task_id);
    async {
        let result = match shared.registry.activity(&item.name) {
            None => Err(FailureDetails::new(format!(
                "no activity named '{}' is registered in this program",
                item.name
            ))),
            Some(registration) => {
                let ctx =
                    ActivityContext::new(item.instance_id.clone(), item.task_id, item.name.clone());
                let run = AssertUnwindSafe(async {
                    (registration.invoke)(ctx, item.input.clone()).await
                });
                match run.catch_unwind().await {
                    Ok(result) => result,
                    Err(panic) => Err(panic_failure(&format!("activity '{}'", item.name), panic)),
                }
            }
        };
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
        // Recorded by the instance's next step, with the deletion of the work item.
        shared
            .dispatcher
            .deliver_activity_result(item.instance_id.clone(), item.id, event);
    }
    .instrument(span)
    .await
}
