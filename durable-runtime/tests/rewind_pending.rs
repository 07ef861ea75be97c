//! `Client::rewind` of an instance that failed while other work of it was still pending: the
//! failure discarded that work (its timers were disarmed, a late activity result consumed
//! unrecorded), so the rewind must drive it again, or the rewound instance waits for it forever.

mod support;

use durable_runtime::prelude::*;
use durable_runtime::store::Write;
use std::sync::Mutex;
use support::hooked::{BoxFut, Phase};
use support::{CACHES, TestStore, WAIT, cache_settings as settings};
use tokio::sync::{Notify, mpsc};

/// Calls so far of `flaky`, per key.
static CALLS: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn calls(key: &str) -> usize {
    CALLS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|k| *k == key)
        .count()
}

/// Fails the first call for `key`, then returns it.
#[activity]
async fn flaky(key: String) -> Result<String, ActivityError> {
    let call = {
        let mut all = CALLS.lock().unwrap_or_else(|e| e.into_inner());
        all.push(key.clone());
        all.iter().filter(|k| **k == key).count()
    };
    if call == 1 {
        return Err(ActivityError::new(format!("{key}: first call fails")));
    }
    Ok(key)
}

/// Opened by the test once the instance failed: one per test (they run side by side), picked
/// by the activity's input.
static GATES: [Notify; 2] = [Notify::const_new(), Notify::const_new()];

#[activity]
async fn gated(value: u32) -> Result<u32, ActivityError> {
    GATES[usize::from(value == CHILD_VALUE)].notified().await;
    Ok(value)
}

const CHILD_VALUE: u32 = 9;

#[orchestrator]
async fn timer_beside_flaky(
    ctx: OrchestrationContext,
    key: String,
) -> Result<String, OrchestrationError> {
    let timer = ctx.sleep(Duration::from_millis(800));
    let value = ctx.call_activity(flaky, key).await?;
    timer.await;
    Ok(value)
}

#[orchestrator]
async fn gated_beside_flaky(
    ctx: OrchestrationContext,
    key: String,
) -> Result<String, OrchestrationError> {
    let slow = ctx.call_activity(gated, 7);
    let value = ctx.call_activity(flaky, key).await?;
    let slow = slow.await?;
    Ok(format!("{value} {slow}"))
}

/// Far longer than the work after a rewind takes (a timer of under a second, two activities).
const AFTER_REWIND: Duration = Duration::from_secs(10);

#[orchestrator]
async fn gated_child(ctx: OrchestrationContext, value: u32) -> Result<u32, OrchestrationError> {
    Ok(ctx.call_activity(gated, value).await?)
}

#[orchestrator]
async fn child_beside_flaky(
    ctx: OrchestrationContext,
    key: String,
) -> Result<String, OrchestrationError> {
    let child = ctx.call_sub_orchestrator_with_id(gated_child, format!("{key}-child"), CHILD_VALUE);
    let value = ctx.call_activity(flaky, key).await?;
    let child = child.await?;
    Ok(format!("{value} {child}"))
}

async fn fails(client: &Client, id: &str) {
    let status = client
        .wait_for_completion(id, WAIT)
        .await
        .expect("finishes");
    assert_eq!(status.runtime_status, RuntimeStatus::Failed, "{status:?}");
}

/// A timer armed when the instance failed (disarmed with the failure) fires after the rewind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timer_pending_at_the_failure_fires_after_the_rewind() {
    for cache in CACHES {
        let store = TestStore::new();
        let key = format!("timer-{cache:?}");
        let (runtime, client) = store.start_with(settings(cache)).await;
        let id = client
            .start(timer_beside_flaky, key.clone())
            .await
            .expect("start");
        fails(&client, &id).await;
        client.rewind(&id, "fixed").await.expect("rewinds");
        let status = client
            .wait_for_completion(&id, AFTER_REWIND)
            .await
            .expect("the timer fires and the instance completes");
        assert_eq!(status.output_as::<String>().expect("output"), key);
        let history = support::history(&client, &id).await;
        let fired = history
            .iter()
            .filter(|r| r.event.event_type() == "TimerFired")
            .count();
        assert_eq!(fired, 1, "the timer fires once");
        runtime.shutdown().await;
    }
}

/// An activity still running when the instance failed, whose result came after the failure
/// (and was consumed unrecorded), runs again after the rewind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_activity_result_discarded_after_the_failure_is_computed_again_after_the_rewind() {
    let store = TestStore::new();
    // Tells the test when a step consumed an activity result without recording it.
    let (discarded_tx, mut discarded_rx) = mpsc::unbounded_channel();
    let hook: support::hooked::Hook = std::sync::Arc::new(move |phase, write: &Write| -> BoxFut {
        if phase == Phase::After
            && let Write::Step(step) = write
            && step.status.is_none()
            && step.events.is_empty()
            && !step.completed_activities.is_empty()
        {
            let _ = discarded_tx.send(());
        }
        Box::pin(async { None })
    });
    let runtime = store.hooked_builder(hook).start().await.expect("starts");
    let client = runtime.client();
    let key = "gated".to_string();
    let id = client
        .start(gated_beside_flaky, key.clone())
        .await
        .expect("start");
    fails(&client, &id).await;
    GATES[0].notify_one();
    tokio::time::timeout(WAIT, discarded_rx.recv())
        .await
        .expect("the late result is consumed")
        .expect("hook alive");
    client.rewind(&id, "fixed").await.expect("rewinds");
    // A run of `gated` after the rewind waits for the gate too.
    GATES[0].notify_one();
    let status = client
        .wait_for_completion(&id, AFTER_REWIND)
        .await
        .expect("the instance completes");
    assert_eq!(
        status.output_as::<String>().expect("output"),
        format!("{key} 7")
    );
    assert_eq!(calls(&key), 2);
    runtime.shutdown().await;
}

/// A sub-orchestration that finished while its parent was failed (its outcome found the
/// parent finished, and was not sent) reaches the parent after the rewind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_that_finished_while_its_parent_was_failed_reaches_it_after_the_rewind() {
    let store = TestStore::new();
    let (runtime, client) = store.start().await;
    let key = "parent".to_string();
    let id = client
        .start(child_beside_flaky, key.clone())
        .await
        .expect("start");
    fails(&client, &id).await;
    GATES[1].notify_one();
    let child = client
        .wait_for_completion(&format!("{key}-child"), WAIT)
        .await
        .expect("the child completes");
    assert_eq!(child.runtime_status, RuntimeStatus::Completed);
    client.rewind(&id, "fixed").await.expect("rewinds");
    let status = client
        .wait_for_completion(&id, AFTER_REWIND)
        .await
        .expect("the instance completes");
    assert_eq!(
        status.output_as::<String>().expect("output"),
        format!("{key} 9")
    );
    runtime.shutdown().await;
}

/// Opened by the test below once its instance failed.
static LATE_GATE: Notify = Notify::const_new();
static LATE_RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

#[activity]
async fn late(value: u32) -> Result<u32, ActivityError> {
    LATE_GATE.notified().await;
    LATE_RUNS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    Ok(value)
}

#[orchestrator]
async fn late_beside_flaky(
    ctx: OrchestrationContext,
    key: String,
) -> Result<String, OrchestrationError> {
    let slow = ctx.call_activity(late, 5);
    let value = ctx.call_activity(flaky, key).await?;
    let slow = slow.await?;
    Ok(format!("{value} {slow}"))
}

/// A late result on its way to be consumed unrecorded (its instance failed) when a rewind
/// commits: the rewind finds its work item still in the store and does not queue the activity
/// again, so the consuming step must not delete it from under the rewound run. It is fenced,
/// and the result is recorded by the rewound run instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_result_consumed_while_a_rewind_commits_reaches_the_rewound_run() {
    let store = TestStore::new();
    let (held_tx, mut held_rx) = mpsc::unbounded_channel();
    let release = std::sync::Arc::new(Notify::new());
    let hook: support::hooked::Hook = {
        let release = release.clone();
        let held = std::sync::atomic::AtomicBool::new(false);
        std::sync::Arc::new(move |phase, write: &Write| -> BoxFut {
            let consume_only = matches!(write, Write::Step(step)
                if step.status.is_none()
                    && step.events.is_empty()
                    && !step.completed_activities.is_empty());
            if phase == Phase::Before
                && consume_only
                && !held.swap(true, std::sync::atomic::Ordering::SeqCst)
            {
                let _ = held_tx.send(());
                let release = release.clone();
                return Box::pin(async move {
                    release.notified().await;
                    None
                });
            }
            Box::pin(async { None })
        })
    };
    let runtime = store.hooked_builder(hook).start().await.expect("starts");
    let client = runtime.client();
    let key = "late".to_string();
    let id = client
        .start(late_beside_flaky, key.clone())
        .await
        .expect("start");
    fails(&client, &id).await;
    LATE_GATE.notify_one();
    tokio::time::timeout(WAIT, held_rx.recv())
        .await
        .expect("the late result is on its way to be consumed")
        .expect("hook alive");
    client.rewind(&id, "fixed").await.expect("rewinds");
    release.notify_one();
    let status = client
        .wait_for_completion(&id, AFTER_REWIND)
        .await
        .expect("the instance completes");
    assert_eq!(
        status.output_as::<String>().expect("output"),
        format!("{key} 5")
    );
    assert_eq!(
        LATE_RUNS.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "its result was recorded, not computed again"
    );
    runtime.shutdown().await;
}
