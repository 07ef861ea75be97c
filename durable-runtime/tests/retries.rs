//! Retries: failed activities and sub-orchestrations called again after back-offs on durable
//! timers, on the hot path, when every step replays, and across a restart.

mod support;

use durable_runtime::prelude::*;
use durable_runtime::{HistoryEvent, HistoryRecord};
use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use support::{TestStore, WAIT};

/// Attempts per key: activities may keep state, orchestrators may not.
static ATTEMPTS: LazyLock<Mutex<HashMap<String, u32>>> = LazyLock::new(Default::default);

fn next_attempt(key: &str) -> u32 {
    let mut attempts = ATTEMPTS.lock().unwrap_or_else(|e| e.into_inner());
    let count = attempts.entry(key.to_string()).or_default();
    *count += 1;
    *count
}

/// Fails its first `failures` attempts for `key`.
#[activity]
async fn flaky(key: String, failures: u32) -> Result<String, ActivityError> {
    let attempt = next_attempt(&key);
    if attempt <= failures {
        return Err(ActivityError::new(format!("attempt {attempt} failed")));
    }
    Ok(format!("{key} ok after {attempt}"))
}

/// Busy at first, then fails for good.
#[activity]
async fn declines(key: String) -> Result<String, ActivityError> {
    match next_attempt(&key) {
        1 => Err(ActivityError::new("busy")),
        _ => Err(ActivityError::new("fatal: card declined")),
    }
}

#[orchestrator]
async fn retried(
    ctx: OrchestrationContext,
    key: String,
    failures: u32,
    attempts: u32,
) -> Result<String, OrchestrationError> {
    let policy = RetryPolicy::new(attempts, Duration::from_millis(20)).backoff_coefficient(2.0);
    Ok(ctx
        .call_activity_with_retry(&policy, flaky, (key, failures))
        .await?)
}

#[orchestrator]
async fn retried_by_name(ctx: OrchestrationContext, key: String) -> String {
    let policy = RetryPolicy::new(2, Duration::from_millis(10));
    match ctx
        .call_activity_by_name_with_retry::<String>(&policy, "flaky", (key, 1))
        .await
    {
        Ok(output) => output,
        Err(failed) => failed.message,
    }
}

#[orchestrator]
async fn picky(ctx: OrchestrationContext, key: String) -> String {
    let policy = RetryPolicy::new(5, Duration::from_millis(10))
        .retry_if(|failure| !failure.message.starts_with("fatal"));
    match ctx.call_activity_with_retry(&policy, declines, key).await {
        Ok(output) => output,
        Err(failed) => format!("gave up: {}", failed.message),
    }
}

#[orchestrator]
async fn bounded(ctx: OrchestrationContext, key: String) -> String {
    let policy =
        RetryPolicy::new(100, Duration::from_millis(100)).total_timeout(Duration::from_millis(350));
    match ctx
        .call_activity_with_retry(&policy, flaky, (key, u32::MAX))
        .await
    {
        Ok(output) => output,
        Err(failed) => format!("gave up: {}", failed.message),
    }
}

#[orchestrator]
async fn slow_retry(ctx: OrchestrationContext, key: String) -> Result<String, OrchestrationError> {
    let policy = RetryPolicy::new(2, Duration::from_millis(BACKOFF_MS));
    Ok(ctx
        .call_activity_with_retry(&policy, flaky, (key, 1))
        .await?)
}

#[orchestrator]
async fn flaky_child(ctx: OrchestrationContext, key: String) -> Result<String, OrchestrationError> {
    Ok(ctx.call_activity(flaky, (key, 1)).await?)
}

#[orchestrator]
async fn retries_child(
    ctx: OrchestrationContext,
    key: String,
) -> Result<(String, String), OrchestrationError> {
    let policy = RetryPolicy::new(3, Duration::from_millis(20));
    let typed = ctx.call_sub_orchestrator_with_retry(&policy, flaky_child, key.clone());
    let by_name = ctx.call_sub_orchestrator_by_name_with_retry::<String>(
        &policy,
        "flaky_child",
        format!("{key}-by-name"),
    );
    Ok((typed.await?, by_name.await?))
}

const BACKOFF_MS: u64 = 2_000;

/// The hot path (default cache) and the path where every step replays its history.
const CACHES: [Option<usize>; 2] = [None, Some(0)];

async fn start(store: &TestStore, cache: Option<usize>) -> (Runtime, Client) {
    store
        .start_with(|builder| match cache {
            Some(capacity) => builder.cache_capacity(capacity),
            None => builder,
        })
        .await
}

fn count(history: &[HistoryRecord], event_type: &str) -> usize {
    history
        .iter()
        .filter(|r| r.event.event_type() == event_type)
        .count()
}

/// Each timer's wait: its due time minus the time of the step that created it.
fn waits(history: &[HistoryRecord]) -> Vec<i64> {
    history
        .iter()
        .filter_map(|r| match r.event {
            HistoryEvent::TimerCreated { fire_at_ms, .. } => Some(fire_at_ms - r.timestamp_ms),
            _ => None,
        })
        .collect()
}

fn timestamps(history: &[HistoryRecord], event_type: &str) -> Vec<i64> {
    history
        .iter()
        .filter(|r| r.event.event_type() == event_type)
        .map(|r| r.timestamp_ms)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_activity_failing_twice_succeeds_on_its_third_attempt() {
    for cache in CACHES {
        let store = TestStore::new();
        let (runtime, client) = start(&store, cache).await;
        let key = format!("twice-{cache:?}");
        let id = client
            .start(retried, (key.clone(), 2, 3))
            .await
            .expect("start");
        let status = client.wait_for_completion(&id, WAIT).await.expect("done");
        assert_eq!(
            status.output_as::<String>().expect("output"),
            format!("{key} ok after 3"),
            "{cache:?}"
        );
        let history = support::history(&client, &id).await;
        assert_eq!(count(&history, "TaskScheduled"), 3);
        assert_eq!(count(&history, "TaskFailed"), 2);
        assert_eq!(count(&history, "TaskCompleted"), 1);
        assert_eq!(count(&history, "TimerFired"), 2);
        assert_eq!(waits(&history), [20, 40], "backoff coefficient 2");

        // Out of attempts: the last failure is the result.
        let key = format!("thrice-{cache:?}");
        let id = client.start(retried, (key, 3, 3)).await.expect("start");
        let status = client.wait_for_completion(&id, WAIT).await.expect("done");
        assert_eq!(status.runtime_status, RuntimeStatus::Failed);
        assert_eq!(
            status.failure.expect("failure").message,
            "task 'flaky' failed: attempt 3 failed"
        );

        let key = format!("by-name-{cache:?}");
        let id = client
            .start(retried_by_name, key.clone())
            .await
            .expect("start");
        let status = client.wait_for_completion(&id, WAIT).await.expect("done");
        assert_eq!(
            status.output_as::<String>().expect("output"),
            format!("{key} ok after 2")
        );
        runtime.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_if_stops_at_a_failure_it_does_not_retry() {
    for cache in CACHES {
        let store = TestStore::new();
        let (runtime, client) = start(&store, cache).await;
        let id = client
            .start(picky, format!("picky-{cache:?}"))
            .await
            .expect("start");
        let status = client.wait_for_completion(&id, WAIT).await.expect("done");
        assert_eq!(
            status.output_as::<String>().expect("output"),
            "gave up: fatal: card declined"
        );
        let history = support::history(&client, &id).await;
        assert_eq!(count(&history, "TaskScheduled"), 2, "of 5 attempts allowed");
        assert_eq!(count(&history, "TimerCreated"), 1);
        runtime.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn total_timeout_starts_no_attempt_after_it() {
    for cache in CACHES {
        let store = TestStore::new();
        let (runtime, client) = start(&store, cache).await;
        let id = client
            .start(bounded, format!("bounded-{cache:?}"))
            .await
            .expect("start");
        let status = client.wait_for_completion(&id, WAIT).await.expect("done");
        let output = status.output_as::<String>().expect("output");
        assert!(output.starts_with("gave up: attempt "), "{output}");
        let history = support::history(&client, &id).await;
        let scheduled = timestamps(&history, "TaskScheduled");
        let failed = timestamps(&history, "TaskFailed");
        assert!(
            (2..=4).contains(&scheduled.len()),
            "100 attempts allowed, about 350 ms of them: {scheduled:?}"
        );
        let first = scheduled[0];
        for timer in history.iter().filter_map(|r| match r.event {
            HistoryEvent::TimerCreated { fire_at_ms, .. } => Some(fire_at_ms),
            _ => None,
        }) {
            assert!(timer <= first + 350, "an attempt was due after the timeout");
        }
        // It stopped because the next attempt would have started too late.
        let last_failure = *failed.last().expect("a failure");
        assert!(last_failure + 100 > first + 350, "{history:#?}");
        runtime.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backoff_that_spans_a_restart_is_neither_skipped_nor_restarted() {
    for cache in CACHES {
        let store = TestStore::new();
        let (runtime, client) = start(&store, cache).await;
        let key = format!("restart-{cache:?}");
        let id = client.start(slow_retry, key.clone()).await.expect("start");
        support::until_recorded(&client, &id, "the backoff timer", 1, |event| {
            matches!(event, HistoryEvent::TimerCreated { .. })
        })
        .await;
        let history = support::history(&client, &id).await;
        let fire_at = history
            .iter()
            .find_map(|r| match r.event {
                HistoryEvent::TimerCreated { fire_at_ms, .. } => Some(fire_at_ms),
                _ => None,
            })
            .expect("the timer");
        drop(client);
        runtime.shutdown().await;
        // Down for a second of the two-second backoff.
        tokio::time::sleep(Duration::from_millis(1_000)).await;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after the epoch")
            .as_millis() as i64;
        assert!(now < fire_at, "the restart must happen inside the backoff");
        let (runtime, client) = store
            .restart(|builder| match cache {
                Some(capacity) => builder.cache_capacity(capacity),
                None => builder,
            })
            .await;
        let status = client.wait_for_completion(&id, WAIT).await.expect("done");
        assert_eq!(
            status.output_as::<String>().expect("output"),
            format!("{key} ok after 2")
        );
        let history = support::history(&client, &id).await;
        assert_eq!(
            count(&history, "TimerCreated"),
            1,
            "the wait was not started again"
        );
        let second_attempt = timestamps(&history, "TaskScheduled")[1];
        assert!(
            second_attempt >= fire_at,
            "the wait was cut short: {second_attempt} < {fire_at}"
        );
        // A wait started again at the restart would end a second or more after `fire_at`.
        assert!(
            second_attempt < fire_at + 1_000,
            "the wait was started again: {second_attempt} vs {fire_at}"
        );
        runtime.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_sub_orchestration_is_retried_as_a_new_instance() {
    for cache in CACHES {
        let store = TestStore::new();
        let (runtime, client) = start(&store, cache).await;
        let key = format!("child-{cache:?}");
        let id = client
            .start(retries_child, key.clone())
            .await
            .expect("start");
        let status = client.wait_for_completion(&id, WAIT).await.expect("done");
        assert_eq!(
            status.output_as::<(String, String)>().expect("output"),
            (
                format!("{key} ok after 2"),
                format!("{key}-by-name ok after 2")
            ),
            "{cache:?}"
        );
        let history = support::history(&client, &id).await;
        assert_eq!(count(&history, "SubOrchestrationInstanceCreated"), 4);
        assert_eq!(count(&history, "SubOrchestrationInstanceFailed"), 2);
        assert_eq!(count(&history, "SubOrchestrationInstanceCompleted"), 2);
        assert_eq!(count(&history, "TimerCreated"), 2);
        let children: Vec<String> = history
            .iter()
            .filter_map(|r| match &r.event {
                HistoryEvent::SubOrchestrationInstanceCreated(created) => {
                    Some(created.instance_id.clone())
                }
                _ => None,
            })
            .collect();
        let mut statuses = Vec::new();
        for child in &children {
            let status = client
                .get_status(child)
                .await
                .expect("reads")
                .expect("each attempt is an instance");
            statuses.push(status.runtime_status);
        }
        // Created in order: both first attempts, then both retries.
        assert_eq!(
            statuses,
            [
                RuntimeStatus::Failed,
                RuntimeStatus::Failed,
                RuntimeStatus::Completed,
                RuntimeStatus::Completed
            ]
        );
        runtime.shutdown().await;
    }
}
