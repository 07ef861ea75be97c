//! Replay checks what event waits line up with, and a dropped wait hands its event on.

mod support;

use durable_runtime::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};
use support::{TestStore, WAIT};

// An activity replaced by `wait_for_event` is flagged as non-determinism: waits take task
// ids, and where history recorded an activity, the code changed.

static SWAPPED: AtomicBool = AtomicBool::new(false);

#[activity]
async fn flip_to_event() -> u32 {
    // The "new code" is deployed while this activity runs.
    SWAPPED.store(true, Ordering::SeqCst);
    7
}

#[orchestrator]
async fn activity_became_event(ctx: OrchestrationContext) -> Result<String, OrchestrationError> {
    #[durable::allow_nondeterministic("this test simulates a code change between deployments")]
    let changed = SWAPPED.load(Ordering::SeqCst);
    if changed {
        let v = ctx.wait_for_event::<u32>("go").await?;
        Ok(format!("event {v}"))
    } else {
        let v = ctx.call_activity(flip_to_event, ()).await?;
        Ok(format!("activity {v}"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activity_replaced_by_event_wait_is_flagged() {
    let store = TestStore::new();
    // Cache off: the step that records the activity's result replays with the new code.
    let (runtime, client) = store.start_with(|b| b.cache_capacity(0)).await;
    let id = client
        .start(activity_became_event, ())
        .await
        .expect("start");
    let status = client
        .wait_for_completion(&id, WAIT)
        .await
        .expect("finishes");
    let output: Option<String> = status.output_as().ok();
    runtime.shutdown().await;
    assert_eq!(
        status.runtime_status,
        RuntimeStatus::Failed,
        "history has TaskScheduled 'flip_to_event' as task 0, the code now waits for event \
         'go' there; expected NonDeterminism, got output {output:?}"
    );
}

// An event received by a wait that is dropped goes to a wait for the same name already
// waiting.

/// Released by the test once "x" has been recorded.
static RELEASE_STEP: tokio::sync::Notify = tokio::sync::Notify::const_new();

#[activity]
async fn gated_step() -> u32 {
    RELEASE_STEP.notified().await;
    1
}

#[orchestrator]
async fn two_waits_one_dropped(ctx: OrchestrationContext) -> Result<u32, OrchestrationError> {
    let first = ctx.wait_for_event::<u32>("x");
    let second = ctx.wait_for_event::<u32>("x");
    let deadline = ctx.sleep(Duration::from_millis(1));
    // While this runs: the deadline fires (arrival 1), then "x" arrives (arrival 2, to `first`).
    ctx.call_activity(gated_step, ()).await?;
    match ctx.when_any2(deadline, first).await {
        // The deadline won: `first` (holding x) is dropped; `second` must receive x.
        Either::Left(()) => Ok(second.await?),
        Either::Right(v) => Ok(v? + 1000),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_of_a_dropped_wait_reaches_a_wait_already_waiting() {
    let store = TestStore::new();
    let (runtime, client) = store.start().await;
    let id = client
        .start(two_waits_one_dropped, ())
        .await
        .expect("start");
    support::until_recorded(&client, &id, "the deadline fires", 1, |e| {
        matches!(e, durable_runtime::HistoryEvent::TimerFired { .. })
    })
    .await;
    client.raise_event(&id, "x", 42u32).await.expect("raised");
    support::until_recorded(&client, &id, "x is recorded", 1, |e| {
        matches!(e, durable_runtime::HistoryEvent::EventRaised { .. })
    })
    .await;
    RELEASE_STEP.notify_one();
    let status = client
        .wait_for_completion(&id, WAIT)
        .await
        .expect("the waiting `second` receives the event of the dropped `first`");
    runtime.shutdown().await;
    assert_eq!(status.output_as::<u32>().expect("output"), 42);
}
