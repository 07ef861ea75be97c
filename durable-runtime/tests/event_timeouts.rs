//! `wait_for_event_with_timeout`: the event or a distinguishable timeout, decided by history
//! order; the loser lets go. On the hot path, when every step replays, and across a restart.

mod support;

use durable_runtime::prelude::*;
use durable_runtime::{HistoryEvent, HistoryRecord};
use support::{CACHES, TestStore, WAIT, cache_settings as settings};

#[orchestrator]
async fn approval(
    ctx: OrchestrationContext,
    timeout_ms: u64,
) -> Result<String, OrchestrationError> {
    match ctx
        .wait_for_event_with_timeout::<bool>("approved", Duration::from_millis(timeout_ms))
        .await
    {
        Ok(approved) => Ok(format!("approved: {approved}")),
        Err(EventWaitError::TimedOut { name, timeout }) => {
            Ok(format!("timed out: {name} {timeout:?}"))
        }
        Err(other) => Err(other.into()),
    }
}

/// Times out, then waits for the same event without a deadline: the late event is not lost.
#[orchestrator]
async fn late_event_kept(ctx: OrchestrationContext) -> Result<String, OrchestrationError> {
    let first = ctx
        .wait_for_event_with_timeout::<u32>("x", Duration::from_millis(50))
        .await;
    let timed_out = first.as_ref().is_err_and(EventWaitError::is_timeout);
    let value = ctx.wait_for_event::<u32>("x").await?;
    Ok(format!("timed out first: {timed_out}, then {value}"))
}

/// Gets the event, then sleeps past its losing timer: the timer's firing is discarded.
#[orchestrator]
async fn event_then_nap(ctx: OrchestrationContext) -> Result<u32, OrchestrationError> {
    let value = ctx
        .wait_for_event_with_timeout::<u32>("x", Duration::from_millis(200))
        .await?;
    ctx.sleep(Duration::from_millis(500)).await;
    Ok(value)
}

/// The hot path (default cache) and the path where every step replays its history.
fn count(history: &[HistoryRecord], event_type: &str) -> usize {
    history
        .iter()
        .filter(|r| r.event.event_type() == event_type)
        .count()
}

fn armed_timers(store: &TestStore) -> i64 {
    let conn = durable_runtime::store::sqlite::open_read_only(store.path()).expect("opens");
    conn.query_row("SELECT COUNT(*) FROM timers", [], |row| row.get(0))
        .expect("counts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_before_the_timeout_wins_and_the_timer_lets_go() {
    for cache in CACHES {
        let store = TestStore::new();
        let (runtime, client) = store.start_with(settings(cache)).await;
        // An hour-long timeout: the instance completes at once all the same.
        let id = client.start(approval, 3_600_000).await.expect("start");
        client
            .raise_event(&id, "approved", true)
            .await
            .expect("raised");
        let status = client.wait_for_completion(&id, WAIT).await.expect("done");
        assert_eq!(
            status.output_as::<String>().expect("output"),
            "approved: true",
            "{cache:?}"
        );
        let history = support::history(&client, &id).await;
        assert_eq!(count(&history, "TimerCreated"), 1);
        assert_eq!(count(&history, "TimerFired"), 0);
        drop(client);
        runtime.shutdown().await;
        assert_eq!(
            armed_timers(&store),
            0,
            "the finished instance's timer is gone"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_before_the_event_is_told_apart_and_loses_no_event() {
    for cache in CACHES {
        let store = TestStore::new();
        let (runtime, client) = store.start_with(settings(cache)).await;
        let id = client.start(approval, 30).await.expect("start");
        let status = client.wait_for_completion(&id, WAIT).await.expect("done");
        assert_eq!(
            status.output_as::<String>().expect("output"),
            "timed out: approved 30ms",
            "{cache:?}"
        );

        let id = client.start(late_event_kept, ()).await.expect("start");
        support::until_recorded(&client, &id, "the timeout", 1, |event| {
            matches!(event, HistoryEvent::TimerFired { .. })
        })
        .await;
        client.raise_event(&id, "x", 7).await.expect("raised");
        let status = client.wait_for_completion(&id, WAIT).await.expect("done");
        assert_eq!(
            status.output_as::<String>().expect("output"),
            "timed out first: true, then 7"
        );

        // A payload of the wrong type is a failure, not a timeout.
        let id = client.start(approval, 3_600_000).await.expect("start");
        client
            .raise_event(&id, "approved", "yes")
            .await
            .expect("raised");
        let status = client.wait_for_completion(&id, WAIT).await.expect("done");
        assert_eq!(status.runtime_status, RuntimeStatus::Failed);
        let message = status.failure.expect("failure").message;
        assert!(message.contains("does not decode as `bool`"), "{message}");
        runtime.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_losing_timer_that_fires_later_is_discarded() {
    for cache in CACHES {
        let store = TestStore::new();
        let (runtime, client) = store.start_with(settings(cache)).await;
        let id = client.start(event_then_nap, ()).await.expect("start");
        client.raise_event(&id, "x", 5).await.expect("raised");
        let status = client.wait_for_completion(&id, WAIT).await.expect("done");
        assert_eq!(status.output_as::<u32>().expect("output"), 5, "{cache:?}");
        let history = support::history(&client, &id).await;
        // Both timers fired: the losing one while the instance slept on the second.
        assert_eq!(count(&history, "TimerFired"), 2, "{history:#?}");
        runtime.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_outcomes_survive_a_restart_and_replay() {
    for cache in CACHES {
        let store = TestStore::new();
        let (runtime, client) = store.start_with(settings(cache)).await;
        let waiting = client.start(approval, 3_600_000).await.expect("start");
        let expiring = client.start(approval, 1_000).await.expect("start");
        for id in [&waiting, &expiring] {
            support::until_recorded(&client, id, "the deadline", 1, |event| {
                matches!(event, HistoryEvent::TimerCreated { .. })
            })
            .await;
        }
        drop(client);
        runtime.shutdown().await;
        let (runtime, client) = store.restart(settings(cache)).await;
        client
            .raise_event(&waiting, "approved", false)
            .await
            .expect("raised");
        let status = client
            .wait_for_completion(&waiting, WAIT)
            .await
            .expect("done");
        assert_eq!(
            status.output_as::<String>().expect("output"),
            "approved: false",
            "{cache:?}"
        );
        let status = client
            .wait_for_completion(&expiring, WAIT)
            .await
            .expect("done");
        assert_eq!(
            status.output_as::<String>().expect("output"),
            "timed out: approved 1s"
        );
        runtime.shutdown().await;
    }
}
