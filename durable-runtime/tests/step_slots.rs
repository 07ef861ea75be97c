//! An orchestration slot counts a step while it runs, not while its commit waits for the disk:
//! one slow commit must not keep the steps of other instances from starting.

mod support;

use durable_runtime::prelude::*;
use durable_runtime::store::Write;
use std::sync::Arc;
use support::WAIT;
use support::hooked::{BoxFut, Phase};
use tokio::sync::Notify;

#[orchestrator]
async fn add_one(_ctx: OrchestrationContext, n: u32) -> u32 {
    n + 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_waiting_for_its_commit_leaves_its_slot_to_other_instances() {
    let store = support::TestStore::new();
    let (arrived, open) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let hook = {
        let (arrived, open) = (arrived.clone(), open.clone());
        Arc::new(move |phase, write: &Write| -> BoxFut {
            let hold = phase == Phase::Before
                && matches!(write, Write::Step(step) if step.instance_id == "slow-disk");
            let (arrived, open) = (arrived.clone(), open.clone());
            Box::pin(async move {
                if hold {
                    arrived.notify_one();
                    open.notified().await;
                }
                None
            })
        })
    };
    // One slot: the slow instance's step holds it while it computes.
    let runtime = store
        .hooked_builder(hook)
        .orchestration_concurrency(1)
        .start()
        .await
        .expect("starts");
    let client = runtime.client();
    client
        .start_with_id(add_one, "slow-disk", 1)
        .await
        .expect("starts");
    // Its step is computed and its commit is stuck (a long fsync).
    arrived.notified().await;
    client
        .start_with_id(add_one, "other", 10)
        .await
        .expect("starts");
    let other = client
        .wait_for_completion("other", WAIT)
        .await
        .expect("another instance's step runs while the first one's commit waits");
    assert_eq!(other.output_as::<u32>().expect("output"), 11);
    assert_eq!(
        client
            .get_status("slow-disk")
            .await
            .expect("reads")
            .expect("exists")
            .runtime_status,
        RuntimeStatus::Pending,
        "the held commit has not landed yet"
    );
    open.notify_one();
    let slow = client
        .wait_for_completion("slow-disk", WAIT)
        .await
        .expect("the held step commits once the disk answers");
    assert_eq!(slow.output_as::<u32>().expect("output"), 2);
    runtime.shutdown().await;
}
