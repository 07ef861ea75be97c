//! Conformance: the engine on top of each store. An activity chain and an event wait run to the
//! right output hot (cached) and replayed (no cache), and a runtime restarted in the middle of
//! a run finishes it from the store with nothing recorded twice.

use crate::*;
use durable_runtime::Runtime;
use durable_runtime::prelude::*;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

#[activity]
async fn add_one(n: u64) -> u64 {
    n + 1
}

#[orchestrator]
async fn chain(ctx: OrchestrationContext, n: u64) -> Result<u64, OrchestrationError> {
    let mut value = n;
    for _ in 0..5 {
        value = ctx.call_activity(add_one, value).await?;
    }
    let bonus: u64 = ctx.wait_for_event("bonus").await?;
    Ok(value + bonus)
}

async fn chains_run_hot_and_replayed_and_across_a_restart(store: Subject) {
    for cache in [None, Some(0)] {
        let store = store.fresh().await;
        let builder = |store: &Subject| {
            let builder = Runtime::builder().store(store.backend());
            match cache {
                Some(capacity) => builder.cache_capacity(capacity),
                None => builder,
            }
        };
        let runtime = builder(&store).start().await.expect("starts");
        let client = runtime.client();
        let mut ids = Vec::new();
        for n in 0..20u64 {
            ids.push(client.start(chain, n * 10).await.expect("starts"));
        }
        // Each waits for its event after five activities: stop in the middle of the run.
        for id in &ids {
            loop {
                let history = store.read_history(id).await.expect("reads");
                let scheduled = history
                    .iter()
                    .filter(|r| matches!(r.event, HistoryEvent::TaskCompleted { .. }))
                    .count();
                if scheduled == 5 {
                    break;
                }
                // Polls the store for the status it waits on.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        runtime.shutdown().await;
        drop(client);
        let runtime = builder(&store).start().await.expect("starts again");
        let client = runtime.client();
        for id in &ids {
            client
                .raise_event(id, "bonus", 1000u64)
                .await
                .expect("raised");
        }
        for (n, id) in ids.iter().enumerate() {
            let status = client
                .wait_for_completion(id, WAIT)
                .await
                .expect("completes");
            assert_eq!(
                status.runtime_status,
                RuntimeStatus::Completed,
                "{status:?}"
            );
            assert_eq!(
                status.output_as::<u64>().expect("output"),
                n as u64 * 10 + 1005
            );
            let history = store.read_history(id).await.expect("reads");
            let completions = history
                .iter()
                .filter(|r| matches!(r.event, HistoryEvent::TaskCompleted { .. }))
                .count();
            assert_eq!(completions, 5, "each activity result recorded once");
        }
        runtime.shutdown().await;
    }
}

crate::conformance! {
    chains_run_hot_and_replayed_and_across_a_restart,
}
