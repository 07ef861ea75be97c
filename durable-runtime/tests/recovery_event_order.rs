//! Events raised to one instance across a restart keep their order: an event raised before
//! the restart (handed over by recovery) comes before one raised after it, however slowly
//! recovery reads the store.

mod support;

use durable_runtime::prelude::*;
use durable_runtime::store::{StoreError, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use support::hooked::{BoxFut, Hook, Phase};
use support::{TestStore, WAIT};

#[orchestrator]
async fn two_in_order(ctx: OrchestrationContext) -> Result<(u32, u32), OrchestrationError> {
    let a = ctx.wait_for_event::<u32>("x").await?;
    let b = ctx.wait_for_event::<u32>("x").await?;
    Ok((a, b))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_raised_across_a_restart_keep_their_order() {
    let store = TestStore::new();
    // First process: steps after the first fail transiently, so x=1 stays pending in the store.
    let block = Arc::new(AtomicBool::new(false));
    let hook: Hook = {
        let block = block.clone();
        Arc::new(move |phase, write| -> BoxFut {
            let fail = phase == Phase::Before
                && matches!(write, Write::Step(_))
                && block.load(Ordering::SeqCst);
            Box::pin(
                async move { fail.then(|| StoreError::Unavailable("disk full (test)".into())) },
            )
        })
    };
    let id = {
        let runtime = store
            .hooked_builder(hook)
            .shutdown_timeout(Duration::from_millis(100))
            .start()
            .await
            .expect("starts");
        let client = runtime.client();
        let id = client.start(two_in_order, ()).await.expect("start");
        support::until_status(&client, &id, RuntimeStatus::Running).await;
        block.store(true, Ordering::SeqCst);
        client
            .raise_event(&id, "x", 1u32)
            .await
            .expect("x=1 acknowledged");
        runtime.shutdown().await;
        id
    };
    // Second process.
    let runtime = store
        .slow_recovery_builder(Duration::from_millis(1000))
        .await
        .start()
        .await
        .expect("starts");
    let client = runtime.client();
    client
        .raise_event(&id, "x", 2u32)
        .await
        .expect("x=2 acknowledged");
    let status = client.wait_for_completion(&id, WAIT).await.expect("done");
    runtime.shutdown().await;
    let out: (u32, u32) = status.output_as().expect("output");
    assert_eq!(
        out,
        (1, 2),
        "x=1 was acknowledged before x=2 was raised, but the orchestrator received them swapped"
    );
}
