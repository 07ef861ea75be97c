//! Lowering `max_payload_size` between two deployments does not rewrite recorded decisions: the
//! limit applies to tasks scheduled from now on, and a task history recorded with a larger input
//! replays as recorded.

mod support;

use durable_runtime::prelude::*;
use support::{TestStore, WAIT};

#[activity]
async fn measure(input: String) -> usize {
    input.len()
}

#[orchestrator]
async fn measure_then_wait(ctx: OrchestrationContext) -> Result<usize, OrchestrationError> {
    let n = ctx.call_activity(measure, "x".repeat(10_000)).await?;
    let _go: String = ctx.wait_for_event("go").await?;
    Ok(n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lowering_the_payload_limit_does_not_rewrite_recorded_decisions() {
    let store = TestStore::new();
    let (runtime, client) = store.start().await;
    let id = client.start(measure_then_wait, ()).await.expect("start");
    support::until_recorded(&client, &id, "TaskCompleted", 1, |e| {
        matches!(e, durable_runtime::HistoryEvent::TaskCompleted { .. })
    })
    .await;
    drop(client);
    runtime.shutdown().await;

    // The next deployment lowers the limit; the instance already scheduled its 10 kB input.
    let (runtime, client) = store.restart(|b| b.max_payload_size(4096)).await;
    client.raise_event(&id, "go", "now").await.expect("raised");
    let status = client
        .wait_for_completion(&id, WAIT)
        .await
        .expect("finishes");
    runtime.shutdown().await;
    assert_eq!(
        status.runtime_status,
        RuntimeStatus::Completed,
        "failure: {:?}",
        status.failure.map(|f| f.message)
    );
    assert_eq!(status.output_as::<usize>().expect("output"), 10_000);
}
