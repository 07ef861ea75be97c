//! R6: replay that diverges from history fails the instance with a clear error naming the
//! expected and the actual action, and appends nothing of the diverging code.

mod support;

use durable_runtime::HistoryEvent;
use durable_runtime::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};
use support::{TestStore, WAIT};

/// Stands for a code change between deployments: flipped by the first activity.
static CODE_CHANGED: AtomicBool = AtomicBool::new(false);

#[activity]
async fn first_step() -> u32 {
    CODE_CHANGED.store(true, Ordering::SeqCst);
    1
}

#[activity]
async fn replacement_step() -> u32 {
    2
}

#[activity]
async fn second_step(n: u32) -> u32 {
    n + 10
}

#[orchestrator]
async fn evolving(ctx: OrchestrationContext) -> Result<u32, OrchestrationError> {
    #[durable::allow_nondeterministic("this test simulates a code change between deployments")]
    let changed = CODE_CHANGED.load(Ordering::SeqCst);
    let n = if changed {
        ctx.call_activity(replacement_step, ()).await?
    } else {
        ctx.call_activity(first_step, ()).await?
    };
    Ok(ctx.call_activity(second_step, n).await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_code_fails_the_instance_on_replay() {
    let store = TestStore::new();
    // Cache off: the second step rebuilds the instance from history with the "new" code.
    let (runtime, client) = store.start_with(|b| b.cache_capacity(0)).await;
    let id = client.start(evolving, ()).await.expect("start");
    let status = client
        .wait_for_completion(&id, WAIT)
        .await
        .expect("finishes");
    assert_eq!(status.runtime_status, RuntimeStatus::Failed, "{status:?}");
    let message = status.failure.expect("failure").message;
    assert_eq!(
        message,
        "non-deterministic orchestrator: history has TaskScheduled 'first_step' as task 0, \
         but the code now schedules activity 'replacement_step'"
    );

    let history = support::history(&client, &id).await;
    let scheduled: Vec<&str> = history
        .iter()
        .filter_map(|r| match &r.event {
            HistoryEvent::TaskScheduled { name, .. } => Some(name.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        scheduled,
        ["first_step"],
        "nothing of the diverging code is recorded: {history:#?}"
    );
    assert!(matches!(
        history.last().map(|r| &r.event),
        Some(HistoryEvent::ExecutionFailed { .. })
    ));
    runtime.shutdown().await;
}

/// Stands for a deployment that made the orchestrator return after its first activity.
static RETURNS_EARLY: AtomicBool = AtomicBool::new(false);

#[activity]
async fn step_a() -> u32 {
    1
}

#[activity]
async fn step_b(n: u32) -> u32 {
    // The instance is done with both steps; the "new code" is deployed before its next step.
    RETURNS_EARLY.store(true, Ordering::SeqCst);
    n + 1
}

#[orchestrator]
async fn shortened(ctx: OrchestrationContext) -> Result<u32, OrchestrationError> {
    let a = ctx.call_activity(step_a, ()).await?;
    #[durable::allow_nondeterministic("this test simulates a code change between deployments")]
    let early = RETURNS_EARLY.load(Ordering::SeqCst);
    if early {
        return Ok(a * 100);
    }
    let b = ctx.call_activity(step_b, a).await?;
    Ok(b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_that_now_returns_early_is_flagged() {
    let store = TestStore::new();
    let (runtime, client) = store.start_with(|b| b.cache_capacity(0)).await;
    // The step that records step_b's result replays the history (A scheduled and completed,
    // B scheduled) with the new code, which returns right after A.
    let id = client.start(shortened, ()).await.expect("start");
    let status = client.wait_for_completion(&id, WAIT).await.expect("done");
    assert_eq!(status.runtime_status, RuntimeStatus::Failed, "{status:?}");
    let message = status.failure.expect("failure").message;
    assert_eq!(
        message,
        "non-deterministic orchestrator: history has TaskScheduled 'step_b' as task 1, but the \
         code no longer schedules it"
    );
    runtime.shutdown().await;
}
