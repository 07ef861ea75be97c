//! Custom status: set by the orchestrator, committed with its step (only when it changed),
//! shown by `get_status` and `list`, the same after a replay or a restart, refused with a
//! typed error when it cannot be stored.

mod support;

use durable_runtime::prelude::*;
use durable_runtime::store::{StoreError, Write};
use durable_runtime::{CustomStatusError, InstanceQuery, RuntimeBuilder};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use support::hooked::{BoxFut, Phase};
use support::{TestStore, WAIT};

const CACHES: [usize; 2] = [1024, 0];

fn settings(cache: usize) -> impl Fn(RuntimeBuilder) -> RuntimeBuilder {
    move |builder| builder.cache_capacity(cache)
}

/// Shows which step it is at; waits for "next" between steps.
#[orchestrator]
async fn stepper(ctx: OrchestrationContext, steps: u32) -> Result<u32, OrchestrationError> {
    for step in 1..=steps {
        ctx.set_custom_status(serde_json::json!({ "step": step }))?;
        ctx.wait_for_event::<()>("next").await?;
    }
    Ok(steps)
}

async fn custom_status_of(client: &Client, id: &str) -> Option<String> {
    client
        .get_status(id)
        .await
        .expect("reads")
        .expect("exists")
        .custom_status
        .map(|s| s.as_str().to_string())
}

/// Waits until the instance shows `expected` as its custom status.
async fn until_custom_status(client: &Client, id: &str, expected: &str) {
    let shown = async {
        while custom_status_of(client, id).await.as_deref() != Some(expected) {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(WAIT, shown)
        .await
        .unwrap_or_else(|_| panic!("{id} never showed {expected}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_is_shown_and_survives_replay_and_restart() {
    for cache in CACHES {
        let store = TestStore::new();
        let (runtime, client) = store.start_with(settings(cache)).await;
        let id = client.start(stepper, 3).await.expect("starts");
        until_custom_status(&client, &id, r#"{"step":1}"#).await;
        client.raise_event(&id, "next", ()).await.expect("raised");
        until_custom_status(&client, &id, r#"{"step":2}"#).await;
        runtime.shutdown().await;
        drop(client);

        let (runtime, client) = store.restart(settings(cache)).await;
        assert_eq!(
            custom_status_of(&client, &id).await.as_deref(),
            Some(r#"{"step":2}"#),
            "kept across the restart"
        );
        let listed = client.list(&InstanceQuery::default()).await.expect("lists");
        assert_eq!(
            listed.instances[0]
                .custom_status
                .as_ref()
                .map(|s| s.as_str()),
            Some(r#"{"step":2}"#)
        );
        client.raise_event(&id, "next", ()).await.expect("raised");
        until_custom_status(&client, &id, r#"{"step":3}"#).await;
        client.raise_event(&id, "next", ()).await.expect("raised");
        let done = client.wait_for_completion(&id, WAIT).await.expect("ends");
        assert_eq!(done.output_as::<u32>().expect("output"), 3);
        assert_eq!(
            done.custom_status.as_ref().map(|s| s.as_str()),
            Some(r#"{"step":3}"#),
            "cache {cache}: a finished instance keeps its last status"
        );
        runtime.shutdown().await;
    }
}

/// Sets the same status at every step, then clears it.
#[orchestrator]
async fn same_status(ctx: OrchestrationContext, steps: u32) -> Result<(), OrchestrationError> {
    for _ in 0..steps {
        ctx.set_custom_status("busy")?;
        ctx.wait_for_event::<()>("next").await?;
    }
    ctx.set_custom_status(())?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_step_that_changes_it_writes_it() {
    for cache in CACHES {
        let store = TestStore::new();
        let writes = Arc::new(AtomicUsize::new(0));
        let counted = writes.clone();
        let hook: support::hooked::Hook = Arc::new(move |phase, write| -> BoxFut {
            if let (Phase::Before, Write::Step(step)) = (phase, write)
                && step.custom_status.is_some()
            {
                counted.fetch_add(1, Ordering::SeqCst);
            }
            Box::pin(async { None::<StoreError> })
        });
        let runtime = store
            .hooked_builder(hook)
            .cache_capacity(cache)
            .start()
            .await
            .expect("starts");
        let client = runtime.client();
        let id = client.start(same_status, 5).await.expect("starts");
        for _ in 0..5 {
            client.raise_event(&id, "next", ()).await.expect("raised");
        }
        let done = client.wait_for_completion(&id, WAIT).await.expect("ends");
        assert_eq!(done.runtime_status, RuntimeStatus::Completed, "{done:?}");
        assert_eq!(done.custom_status, None, "null clears it");
        // "busy" once (replays set it again to the value the store has), then the clearing.
        assert_eq!(writes.load(Ordering::SeqCst), 2, "cache {cache}");
        runtime.shutdown().await;
    }
}

/// Tries a status over the limit and one that does not serialize; reports both errors.
#[orchestrator]
async fn bad_statuses(ctx: OrchestrationContext) -> Result<Vec<String>, OrchestrationError> {
    ctx.set_custom_status("fine")?;
    let too_large =
        ctx.set_custom_status("x".repeat(durable_runtime::context::MAX_CUSTOM_STATUS_BYTES));
    let mut map = std::collections::BTreeMap::new();
    map.insert(vec![1u8], 1u8); // a map with non-string keys does not serialize to JSON
    let unserializable = ctx.set_custom_status(map);
    let describe = |result: Result<(), CustomStatusError>| match result {
        Ok(()) => "accepted".to_string(),
        Err(CustomStatusError::TooLarge { size, limit }) => format!("too large {size} > {limit}"),
        Err(CustomStatusError::Serialize(_)) => "does not serialize".to_string(),
    };
    Ok(vec![describe(too_large), describe(unserializable)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_that_cannot_be_stored_is_a_typed_error_and_the_last_one_stays() {
    let store = TestStore::new();
    let (runtime, client) = store.start().await;
    let id = client.start(bad_statuses, ()).await.expect("starts");
    let done = client.wait_for_completion(&id, WAIT).await.expect("ends");
    let errors: Vec<String> = done.output_as().expect("output");
    assert_eq!(
        errors,
        vec![
            format!(
                "too large {} > {}",
                durable_runtime::context::MAX_CUSTOM_STATUS_BYTES + 2,
                durable_runtime::context::MAX_CUSTOM_STATUS_BYTES
            ),
            "does not serialize".to_string()
        ]
    );
    assert_eq!(
        done.custom_status.as_ref().map(|s| s.as_str()),
        Some(r#""fine""#)
    );
    runtime.shutdown().await;
}
