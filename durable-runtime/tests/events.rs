//! External events: buffered until awaited, delivered exactly once, refused for finished or
//! unknown instances (R2).

mod support;

use durable_runtime::prelude::*;
use durable_runtime::{Error, HistoryEvent};
use support::{TestStore, WAIT};

#[orchestrator]
async fn count_ticks(
    ctx: OrchestrationContext,
    expected: u32,
) -> Result<(u32, u64), OrchestrationError> {
    let mut sum = 0u64;
    for _ in 0..expected {
        sum += ctx.wait_for_event::<u64>("tick").await?;
    }
    Ok((expected, sum))
}

#[orchestrator]
async fn approval(
    ctx: OrchestrationContext,
    timeout_ms: u64,
) -> Result<String, OrchestrationError> {
    let decision = ctx.wait_for_event::<bool>("approved");
    let deadline = ctx.sleep(Duration::from_millis(timeout_ms));
    Ok(match ctx.when_any2(decision, deadline).await {
        Either::Left(approved) => format!("approved: {}", approved?),
        Either::Right(()) => "escalated".to_string(),
    })
}

#[orchestrator]
async fn typed_event(ctx: OrchestrationContext) -> Result<String, OrchestrationError> {
    match ctx.wait_for_event::<u32>("number").await {
        Ok(n) => Ok(format!("got {n}")),
        Err(failed) => Ok(failed.message),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_events_arrive_exactly_once() {
    let store = TestStore::new();
    let (runtime, client) = store.start().await;
    let id = client.start(count_ticks, 1000).await.expect("start");
    let raises: Vec<_> = (1..=1000u64)
        .map(|n| {
            let client = client.clone();
            let id = id.clone();
            tokio::spawn(async move { client.raise_event(&id, "tick", n).await })
        })
        .collect();
    for raise in raises {
        raise.await.expect("task").expect("raised");
    }
    let status = client
        .wait_for_completion(&id, WAIT)
        .await
        .expect("finishes");
    let (count, sum): (u32, u64) = status.output_as().expect("output");
    assert_eq!((count, sum), (1000, 500_500));
    let history = support::history(&client, &id).await;
    let raised = history
        .iter()
        .filter(|r| matches!(r.event, HistoryEvent::EventRaised { .. }))
        .count();
    assert_eq!(raised, 1000, "each event recorded once");
    runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_sent_before_the_wait_are_buffered_and_survive_a_restart() {
    let store = TestStore::new();
    let (runtime, client) = store.start().await;
    let id = client.start(count_ticks, 3).await.expect("start");
    for n in [10u64, 20, 30] {
        client.raise_event(&id, "tick", n).await.expect("raised");
    }
    drop(client);
    runtime.shutdown().await;
    let (runtime, client) = store.start().await;
    let status = client
        .wait_for_completion(&id, WAIT)
        .await
        .expect("finishes");
    assert_eq!(status.output_as::<(u32, u64)>().expect("output"), (3, 60));
    runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_or_a_deadline_decides() {
    let store = TestStore::new();
    let (runtime, client) = store
        .start_with(|b| b.shutdown_timeout(Duration::from_millis(50)))
        .await;
    let approved = client.start(approval, 3_600_000).await.expect("start");
    client
        .raise_event(&approved, "approved", true)
        .await
        .expect("raised");
    let escalated = client.start(approval, 30).await.expect("start");
    let approved = client
        .wait_for_completion(&approved, WAIT)
        .await
        .expect("finishes");
    assert_eq!(
        approved.output_as::<String>().expect("output"),
        "approved: true"
    );
    let escalated = client
        .wait_for_completion(&escalated, WAIT)
        .await
        .expect("finishes");
    assert_eq!(
        escalated.output_as::<String>().expect("output"),
        "escalated"
    );
    drop(client);
    runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_events_are_clear_errors() {
    let store = TestStore::new();
    let (runtime, client) = store.start().await;
    let err = client
        .raise_event("nobody", "tick", 1)
        .await
        .expect_err("unknown instance");
    assert!(matches!(err, Error::InstanceNotFound(_)), "{err}");

    let id = client.start(typed_event, ()).await.expect("start");
    client
        .raise_event(&id, "number", "seven")
        .await
        .expect("raised");
    let status = client
        .wait_for_completion(&id, WAIT)
        .await
        .expect("finishes");
    let message: String = status.output_as().expect("output");
    assert!(message.contains("does not decode as `u32`"), "{message}");

    let err = client
        .raise_event(&id, "number", 7)
        .await
        .expect_err("finished instance");
    assert!(
        matches!(
            err,
            Error::InstanceFinished {
                status: RuntimeStatus::Completed,
                ..
            }
        ),
        "{err}"
    );
    runtime.shutdown().await;
}

/// Races a wait for "x" against a short timer, loses, then waits for "x" again.
#[orchestrator]
async fn wait_again_after_losing(
    ctx: OrchestrationContext,
) -> Result<(bool, String), OrchestrationError> {
    let first = ctx.wait_for_event::<String>("x");
    let short = ctx.sleep(Duration::from_millis(1));
    let timed_out = matches!(ctx.when_any2(first, short).await, Either::Right(()));
    let second = ctx.wait_for_event::<String>("x").await?;
    Ok((timed_out, second))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_wait_does_not_swallow_a_later_event() {
    for cache in [10_000, 0] {
        let store = TestStore::new();
        let (runtime, client) = store.start_with(|b| b.cache_capacity(cache)).await;
        let id = client
            .start(wait_again_after_losing, ())
            .await
            .expect("start");
        // Raise only once the first wait lost to the timer.
        support::until_recorded(&client, &id, "the timer fires", 1, |e| {
            matches!(e, HistoryEvent::TimerFired { .. })
        })
        .await;
        client.raise_event(&id, "x", "late").await.expect("raised");
        let status = client
            .wait_for_completion(&id, WAIT)
            .await
            .expect("the second wait receives the event");
        assert_eq!(
            status.output_as::<(bool, String)>().expect("output"),
            (true, "late".to_string()),
            "cache {cache}"
        );
        runtime.shutdown().await;
    }
}

#[activity]
async fn quick(n: u32) -> u32 {
    n
}

/// An event raised before anyone waits, then an activity result: when_any must pick the event,
/// which arrived first, however late the wait was made.
#[orchestrator]
async fn buffered_event_first(ctx: OrchestrationContext) -> Result<String, OrchestrationError> {
    // Wait until the event is recorded, through a wait of another name the test raises after it.
    ctx.wait_for_event::<()>("ready").await?;
    let work = ctx.call_activity(quick, 7);
    ctx.wait_for_event::<()>("after-the-result").await?;
    let event = ctx.wait_for_event::<String>("early");
    Ok(match ctx.when_any2(event, work).await {
        Either::Left(event) => format!("event {}", event?),
        Either::Right(result) => format!("activity {}", result?),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_buffered_event_takes_its_place_in_when_any_by_arrival() {
    let store = TestStore::new();
    let (runtime, client) = store.start().await;
    let id = client.start(buffered_event_first, ()).await.expect("start");
    client
        .raise_event(&id, "early", "first")
        .await
        .expect("raised");
    client.raise_event(&id, "ready", ()).await.expect("raised");
    // Wait for the activity's result to be recorded, then release the orchestrator.
    support::until_recorded(&client, &id, "the activity completes", 1, |e| {
        matches!(e, HistoryEvent::TaskCompleted { .. })
    })
    .await;
    client
        .raise_event(&id, "after-the-result", ())
        .await
        .expect("raised");
    let status = client.wait_for_completion(&id, WAIT).await.expect("done");
    assert_eq!(
        status.output_as::<String>().expect("output"),
        "event first",
        "the event arrived before the activity's result"
    );
    runtime.shutdown().await;
}

#[orchestrator]
async fn counts_events(ctx: OrchestrationContext) -> Result<u32, OrchestrationError> {
    let mut n = 0;
    loop {
        if ctx.wait_for_event::<bool>("tick").await? {
            n += 1;
        } else {
            return Ok(n);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_event_with_the_same_key_is_recorded_once() {
    let store = TestStore::new();
    let (runtime, client) = store.start().await;
    let id = client.start(counts_events, ()).await.expect("start");
    for _ in 0..3 {
        client
            .raise_event_once(&id, "tick", true, "request-1")
            .await
            .expect("raised or already raised");
    }
    client
        .raise_event_once(&id, "tick", true, "request-2")
        .await
        .expect("raised");
    client
        .raise_event(&id, "tick", false)
        .await
        .expect("raised");
    let status = client.wait_for_completion(&id, WAIT).await.expect("done");
    assert_eq!(status.output_as::<u32>().expect("output"), 2);
    runtime.shutdown().await;
}
