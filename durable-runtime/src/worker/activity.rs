//! Runs activities and records their results.

use super::{RETRY_DELAY, Shared};
use crate::activity_context::ActivityContext;
use crate::failure::{FailureDetails, panic_failure};
use crate::history::HistoryEvent;
use crate::store::{ActivityWorkItem, Write, Written};
use futures::FutureExt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use tracing::Instrument;

/// How many times a result whose write failed is retried before it is left to a restart.
const WRITE_ATTEMPTS: u32 = 20;

/// Runs one activity (catching panics) and sends its result to its instance.
pub(crate) async fn execute(shared: Arc<Shared>, item: ActivityWorkItem) {
    let span = tracing::info_span!("activity", instance = %item.instance_id, name = %item.name, task_id = item.task_id);
    async {
        let result = match shared.registry.activity(&item.name) {
            None => Err(FailureDetails::new(format!(
                "no activity named '{}' is registered in this program",
                item.name
            ))),
            Some(registration) => {
                let ctx = ActivityContext::new(item.instance_id.clone(), item.task_id, item.name.clone());
                let run = AssertUnwindSafe(async { (registration.invoke)(ctx, item.input.clone()).await });
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
        for attempt in 1..=WRITE_ATTEMPTS {
            let write = Write::CompleteActivity {
                work_item_id: item.id,
                instance_id: item.instance_id.clone(),
                event: event.clone(),
            };
            match shared.store.write(write).await {
                Ok(Written::Delivered(Some(message))) => return shared.dispatcher.deliver(message),
                Ok(_) => return,
                Err(err) => {
                    tracing::error!(error = %err, attempt, "activity result not recorded; retrying");
                    tokio::time::sleep(RETRY_DELAY).await;
                }
            }
        }
        tracing::error!("giving up on recording the result; the activity runs again after a restart");
    }
    .instrument(span)
    .await
}
