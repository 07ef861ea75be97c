//! `Client::restart`: the same orchestrator and input again, under the same id (only once
//! finished: the old history is replaced) or a fresh one; refused while running.

mod support;

use durable_runtime::prelude::*;
use durable_runtime::{HistoryEvent, RuntimeBuilder};
use std::sync::atomic::{AtomicU64, Ordering};
use support::{TestStore, WAIT};

static CALLS: AtomicU64 = AtomicU64::new(0);

#[activity]
async fn numbered(n: u64) -> u64 {
    CALLS.fetch_add(1, Ordering::SeqCst);
    n
}

#[orchestrator]
async fn doubles(ctx: OrchestrationContext, n: u64) -> Result<String, OrchestrationError> {
    let value = ctx.call_activity(numbered, n).await?;
    Ok(format!("{} on run {}", value * 2, ctx.new_guid()))
}

#[orchestrator]
async fn waits_for_go(ctx: OrchestrationContext, n: u64) -> Result<u64, OrchestrationError> {
    Ok(ctx.wait_for_event::<u64>("go").await? + n)
}

fn settings(cache: Option<usize>) -> impl Fn(RuntimeBuilder) -> RuntimeBuilder {
    move |builder| match cache {
        Some(capacity) => builder.cache_capacity(capacity),
        None => builder,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_instance_restarts_under_its_id_with_a_fresh_history() {
    for cache in [None, Some(0)] {
        CALLS.store(0, Ordering::SeqCst);
        let store = TestStore::new();
        let (runtime, client) = store.start_with(settings(cache)).await;
        let id = client.start(doubles, 21).await.expect("start");
        let first = client.wait_for_completion(&id, WAIT).await.expect("done");
        let first_output: String = first.output_as().expect("output");
        assert!(first_output.starts_with("42 on run"), "{first_output}");

        let same = client.restart(&id, false).await.expect("restarts");
        assert_eq!(same, id);
        let second = client
            .wait_for_completion(&id, WAIT)
            .await
            .expect("done again");
        let second_output: String = second.output_as().expect("output");
        assert!(second_output.starts_with("42 on run"), "{second_output}");
        assert_ne!(
            first_output, second_output,
            "a new run (new deterministic guid)"
        );
        assert_eq!(CALLS.load(Ordering::SeqCst), 2, "the work ran again");
        let history = support::history(&client, &id).await;
        let starts = history
            .iter()
            .filter(|r| matches!(r.event, HistoryEvent::ExecutionStarted(_)))
            .count();
        assert_eq!(starts, 1, "the old history was replaced: {history:?}");
        runtime.shutdown().await;
        drop(client);

        // The new run replays from its own history after a restart of the runtime.
        let (runtime, client) = store.restart(settings(cache)).await;
        let status = client
            .get_status(&id)
            .await
            .expect("reads")
            .expect("exists");
        assert_eq!(status.runtime_status, RuntimeStatus::Completed);
        assert_eq!(status.output_as::<String>().expect("output"), second_output);
        runtime.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminated_instance_restarts_and_a_running_one_is_refused() {
    let store = TestStore::new();
    let (runtime, client) = store.start().await;
    let id = client.start(waits_for_go, 1).await.expect("start");
    support::until_status(&client, &id, RuntimeStatus::Running).await;
    let running = client.restart(&id, false).await;
    support::assert_not_applicable(&running, Some("restart"), RuntimeStatus::Running);
    client.terminate(&id, "stop").await.expect("terminates");
    client.restart(&id, false).await.expect("restarts");
    support::until_status(&client, &id, RuntimeStatus::Running).await;
    client.raise_event(&id, "go", 10).await.expect("raised");
    let status = client.wait_for_completion(&id, WAIT).await.expect("done");
    assert_eq!(status.output_as::<u64>().expect("output"), 11);
    let unknown = client.restart("nobody", false).await;
    support::assert_not_found(&unknown);
    let unknown = client.restart("nobody", true).await;
    support::assert_not_found(&unknown);
    runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_under_a_new_id_leaves_the_old_instance_as_it_is() {
    let store = TestStore::new();
    let (runtime, client) = store.start().await;
    let id = client.start(waits_for_go, 5).await.expect("start");
    support::until_status(&client, &id, RuntimeStatus::Running).await;
    // Allowed whatever the status: the old one keeps running.
    let fresh = client.restart(&id, true).await.expect("restarts");
    assert_ne!(fresh, id);
    support::until_status(&client, &fresh, RuntimeStatus::Running).await;
    client.raise_event(&fresh, "go", 1).await.expect("raised");
    let status = client
        .wait_for_completion(&fresh, WAIT)
        .await
        .expect("done");
    assert_eq!(status.output_as::<u64>().expect("output"), 6, "same input");
    let old = client
        .get_status(&id)
        .await
        .expect("reads")
        .expect("exists");
    assert_eq!(old.runtime_status, RuntimeStatus::Running);
    runtime.shutdown().await;
}
