//! User code that panics where the engine, not the orchestrator, runs it (a `Deserialize`, a
//! `Drop`) fails its instance and leaves the worker serving everyone else; and a race over no
//! tasks fails instead of hanging.

mod support;

use durable_runtime::prelude::*;
use serde::{Deserialize, Deserializer, Serialize};
use support::{TestStore, WAIT};

/// Serializes as anything, panics when decoded.
#[derive(Serialize)]
struct Explosive;

impl<'de> Deserialize<'de> for Explosive {
    fn deserialize<D: Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        panic!("Explosive does not decode")
    }
}

/// Panics when dropped while armed.
struct PanicsOnDrop {
    armed: bool,
}

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        if self.armed && !std::thread::panicking() {
            panic!("PanicsOnDrop was dropped");
        }
    }
}

#[orchestrator]
async fn takes_explosive(_ctx: OrchestrationContext, _input: Explosive) -> u32 {
    1
}

#[orchestrator]
async fn holds_a_bomb(ctx: OrchestrationContext) -> Result<u32, OrchestrationError> {
    let mut bomb = PanicsOnDrop { armed: true };
    let n = ctx.call_activity(seven, ()).await?;
    // Disarmed before the code returns: only a drop of the suspended future (an execution
    // that is not cached after its step) sets it off, outside the orchestrator's own poll.
    bomb.armed = false;
    Ok(n)
}

#[activity]
async fn seven() -> u32 {
    7
}

#[orchestrator]
async fn races_nothing(ctx: OrchestrationContext) -> Result<usize, OrchestrationError> {
    let tasks: Vec<durable_runtime::TimerFuture> = Vec::new();
    let (index, ()) = ctx.when_any(tasks).await;
    Ok(index)
}

#[orchestrator]
async fn healthy(ctx: OrchestrationContext) -> Result<u32, OrchestrationError> {
    Ok(ctx.call_activity(seven, ()).await? + 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_input_decode_fails_only_its_instance() {
    let store = TestStore::new();
    let (runtime, client) = store.start().await;
    let id = client
        .start(takes_explosive, Explosive)
        .await
        .expect("start");
    let status = client.wait_for_completion(&id, WAIT).await.expect("done");
    assert_eq!(status.runtime_status, RuntimeStatus::Failed);
    let message = status.failure.expect("failure").message;
    assert!(message.contains("Explosive does not decode"), "{message}");
    let other = client.start(healthy, ()).await.expect("start");
    let status = client
        .wait_for_completion(&other, WAIT)
        .await
        .expect("done");
    assert_eq!(status.output_as::<u32>().expect("output"), 8);
    runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_drop_does_not_leave_the_instance_claimed() {
    for cache in [10_000, 0] {
        let store = TestStore::new();
        let (runtime, client) = store.start_with(|b| b.cache_capacity(cache)).await;
        let id = client.start(holds_a_bomb, ()).await.expect("start");
        let status = client.wait_for_completion(&id, WAIT).await.expect("done");
        assert_eq!(
            status.output_as::<u32>().expect("output"),
            7,
            "cache {cache}"
        );
        let other = client.start(healthy, ()).await.expect("start");
        let status = client
            .wait_for_completion(&other, WAIT)
            .await
            .expect("done");
        assert_eq!(status.output_as::<u32>().expect("output"), 8);
        runtime.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_when_any_fails_the_instance() {
    let store = TestStore::new();
    let (runtime, client) = store.start().await;
    let id = client.start(races_nothing, ()).await.expect("start");
    let status = client.wait_for_completion(&id, WAIT).await.expect("done");
    assert_eq!(status.runtime_status, RuntimeStatus::Failed);
    let message = status.failure.expect("failure").message;
    assert!(message.contains("when_any was given no tasks"), "{message}");
    runtime.shutdown().await;
}
