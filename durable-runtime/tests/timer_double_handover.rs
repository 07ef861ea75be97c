//! A timer firing handed over twice in memory is recorded once and not lost.
//!
//! With a small timer window, a step that arms several timers due before the others makes the
//! window drop its latest and move its horizon back; the next read from the store then finds
//! again a timer that was already handed over to a busy instance (its row stays until the
//! step that consumes the firing commits). Both firings wait in the instance's slot and are
//! stepped together: the commit must not fail on the second and lose the first with it.

mod support;

use durable_runtime::prelude::*;
use durable_runtime::store::Write;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use support::hooked::{BoxFut, Phase};
use support::{TestStore, WAIT};
use tokio::sync::{mpsc, watch};

fn at(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

/// Arms a timer due at `fire_at_ms`, then waits for the event "go" and the timer.
#[orchestrator]
async fn event_then_timer(
    ctx: OrchestrationContext,
    fire_at_ms: u64,
) -> Result<u32, OrchestrationError> {
    let timer = ctx.create_timer(at(fire_at_ms));
    let go: u32 = ctx.wait_for_event("go").await?;
    timer.await;
    Ok(go)
}

/// One timer due at `fire_at_ms`.
#[orchestrator]
async fn timer_at(ctx: OrchestrationContext, fire_at_ms: u64) -> Result<(), OrchestrationError> {
    ctx.create_timer(at(fire_at_ms)).await;
    Ok(())
}

/// Three timers due long ago, armed by one step.
#[orchestrator]
async fn three_past_timers(ctx: OrchestrationContext) -> Result<(), OrchestrationError> {
    let timers: Vec<_> = (0..3).map(|_| ctx.create_timer(at(1))).collect();
    for timer in timers {
        timer.await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_firing_handed_over_twice_is_recorded_once() {
    let store = TestStore::new();
    // Holds the step that records the event "go" until the test opens it.
    let (blocked_tx, mut blocked_rx) = mpsc::unbounded_channel();
    let (open_tx, open_rx) = watch::channel(false);
    let hook: support::hooked::Hook = Arc::new(move |phase, write: &Write| -> BoxFut {
        let holds = phase == Phase::Before
            && matches!(write, Write::Step(step) if step.events.iter().any(|e| {
                matches!(e, durable_runtime::HistoryEvent::EventRaised { name, .. } if name == "go")
            }));
        if !holds {
            return Box::pin(async { None });
        }
        let _ = blocked_tx.send(());
        let mut open = open_rx.clone();
        Box::pin(async move {
            let _ = open.wait_for(|open| *open).await;
            None
        })
    });
    let runtime = store
        .hooked_builder(hook)
        .max_timers_in_memory(2)
        .start()
        .await
        .expect("starts");
    let client = runtime.client();
    let now_ms = u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after the epoch")
            .as_millis(),
    )
    .expect("fits");
    let fire_at = now_ms + 300;
    let busy = client
        .start(event_then_timer, fire_at)
        .await
        .expect("starts");
    support::until_recorded(&client, &busy, "the timer is armed", 1, |e| {
        matches!(e, durable_runtime::HistoryEvent::TimerCreated { .. })
    })
    .await;
    client.raise_event(&busy, "go", 5u32).await.expect("raised");
    tokio::time::timeout(WAIT, blocked_rx.recv())
        .await
        .expect("the step is held")
        .expect("hook alive");
    // A timer due right after the busy instance's: once it fired, the busy instance's firing
    // was handed over (in due order) and waits in its slot.
    let probe = client.start(timer_at, fire_at + 1).await.expect("starts");
    client
        .wait_for_completion(&probe, WAIT)
        .await
        .expect("the probe fires");
    // Pushes the window's horizon back before the busy instance's timer, whose row is still
    // in the store: the read that follows hands it over again.
    let past = client.start(three_past_timers, ()).await.expect("starts");
    client
        .wait_for_completion(&past, WAIT)
        .await
        .expect("the past timers fire");
    open_tx.send_replace(true);
    let status = client
        .wait_for_completion(&busy, Duration::from_secs(10))
        .await
        .expect("the busy instance gets its timer");
    assert_eq!(status.output_as::<u32>().expect("output"), 5);
    let history = support::history(&client, &busy).await;
    let fired = history
        .iter()
        .filter(|r| r.event.event_type() == "TimerFired")
        .count();
    assert_eq!(fired, 1, "recorded once");
    runtime.shutdown().await;
}
