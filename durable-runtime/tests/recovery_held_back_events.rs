//! While recovery hands over old messages, a new event to an instance that existed before the
//! start waits for the older ones, but never behind a backlog of activities: a live fan-out
//! that queues thousands of activities, with every activity slot busy, must not hold back an
//! acknowledged event.

mod support;

use durable_runtime::prelude::*;
use durable_runtime::store::{StoreError, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use support::TestStore;
use support::hooked::{BoxFut, Hook, Phase};

#[activity]
async fn stuck(_n: u32) -> u32 {
    std::future::pending::<u32>().await
}

#[orchestrator]
async fn big_fan_out(ctx: OrchestrationContext, n: u32) -> Result<u32, OrchestrationError> {
    let tasks = (0..n).map(|i| ctx.call_activity(stuck, i));
    let mut sum = 0;
    for r in ctx.when_all(tasks).await {
        sum += r?;
    }
    Ok(sum)
}

#[orchestrator]
async fn wait_go(ctx: OrchestrationContext) -> Result<String, OrchestrationError> {
    Ok(ctx.wait_for_event::<String>("go").await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_to_an_older_instance_is_not_held_behind_an_activity_backlog() {
    let store = TestStore::new();
    let block_sink = Arc::new(AtomicBool::new(false));
    let hook: Hook = {
        let block = block_sink.clone();
        Arc::new(move |phase, write| -> BoxFut {
            let fail = phase == Phase::Before
                && block.load(Ordering::SeqCst)
                && matches!(write, Write::Step(s) if s.instance_id == "sink");
            Box::pin(async move { fail.then(|| StoreError::Unavailable("test".into())) })
        })
    };
    {
        let runtime = store
            .hooked_builder(hook)
            .shutdown_timeout(Duration::from_millis(100))
            .start()
            .await
            .expect("starts");
        let client = runtime.client();
        client
            .start_with_id(wait_go, "old", ())
            .await
            .expect("the test setup holds");
        client
            .start_with_id(wait_go, "sink", ())
            .await
            .expect("the test setup holds");
        support::until_status(&client, "old", RuntimeStatus::Running).await;
        support::until_status(&client, "sink", RuntimeStatus::Running).await;
        // 1,500 messages left pending for "sink": recovery needs two pages.
        block_sink.store(true, Ordering::SeqCst);
        let raises: Vec<_> = (0..1500)
            .map(|n| {
                let client = client.clone();
                tokio::spawn(async move { client.raise_event("sink", "noise", n).await })
            })
            .collect();
        for r in raises {
            r.await
                .expect("the test setup holds")
                .expect("the test setup holds");
        }
        runtime.shutdown().await;
    }
    let runtime = store
        .slow_recovery_builder(Duration::from_millis(300))
        .await
        .activity_concurrency(2)
        .shutdown_timeout(Duration::from_millis(100))
        .start()
        .await
        .expect("starts");
    let client = runtime.client();
    // A new instance fans out 5,000 activities (slots busy: here, stuck).
    let n: u32 = 5_000;
    let fan = client
        .start(big_fan_out, n)
        .await
        .expect("the test setup holds");
    support::until_recorded(&client, &fan, "the fan-out scheduled", 1, |e| {
        matches!(e, durable_runtime::HistoryEvent::TaskScheduled { .. })
    })
    .await;
    client
        .raise_event("old", "go", "now")
        .await
        .expect("acknowledged");
    let status = client
        .wait_for_completion("old", Duration::from_secs(10))
        .await;
    runtime.shutdown().await;
    let status = status.expect("the acknowledged event reaches the older instance");
    assert_eq!(
        status.output_as::<String>().expect("the test setup holds"),
        "now"
    );
}
