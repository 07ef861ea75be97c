//! `Client::rewind`: a failed instance runs again the activities and sub-orchestrations it
//! failed on and continues; completed work is not run again; failures that were handled (an
//! earlier retry attempt) stay; history is append-only and replays after the rewind. Refused
//! where it does not apply.

mod support;

use durable_runtime::HistoryEvent;
use durable_runtime::prelude::*;
use std::collections::HashMap;
use std::sync::Mutex;
use support::{CACHES, TestStore, WAIT, cache_settings as settings};

/// Calls so far, per key.
static CALLS: Mutex<Option<HashMap<String, u32>>> = Mutex::new(None);

fn calls(key: &str) -> u32 {
    CALLS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .and_then(|calls| calls.get(key).copied())
        .unwrap_or(0)
}

/// Fails its first `fails` calls for `key`, then returns the key.
#[activity]
async fn flaky(key: String, fails: u32) -> Result<String, ActivityError> {
    let call = {
        let mut all = CALLS.lock().unwrap_or_else(|e| e.into_inner());
        let count = all
            .get_or_insert_with(HashMap::new)
            .entry(key.clone())
            .or_insert(0);
        *count += 1;
        *count
    };
    if call <= fails {
        return Err(ActivityError::new(format!("{key}: call {call} fails")));
    }
    Ok(key)
}

#[orchestrator]
async fn two_steps_then_event(
    ctx: OrchestrationContext,
    key: String,
) -> Result<String, OrchestrationError> {
    let first = ctx
        .call_activity(flaky, (format!("{key}-first"), 0))
        .await?;
    let second = ctx
        .call_activity(flaky, (format!("{key}-second"), 1))
        .await?;
    let last: String = ctx.wait_for_event("finish").await?;
    Ok(format!("{first} {second} {last}"))
}

#[orchestrator]
async fn fans_out(
    ctx: OrchestrationContext,
    key: String,
) -> Result<Vec<String>, OrchestrationError> {
    let calls = (0..5).map(|i| ctx.call_activity(flaky, (format!("{key}-{i}"), i % 2)));
    let mut out = Vec::new();
    for result in ctx.when_all(calls).await {
        out.push(result?);
    }
    Ok(out)
}

#[orchestrator]
async fn child_fails_once(
    ctx: OrchestrationContext,
    key: String,
) -> Result<String, OrchestrationError> {
    Ok(ctx.call_activity(flaky, (key, 1)).await?)
}

#[orchestrator]
async fn parent_of_flaky(
    ctx: OrchestrationContext,
    key: String,
) -> Result<String, OrchestrationError> {
    let done = ctx
        .call_activity(flaky, (format!("{key}-parent"), 0))
        .await?;
    let child = ctx
        .call_sub_orchestrator(child_fails_once, format!("{key}-child"))
        .await?;
    Ok(format!("{done} {child}"))
}

#[orchestrator]
async fn retried(ctx: OrchestrationContext, key: String) -> Result<String, OrchestrationError> {
    let policy = RetryPolicy::new(2, Duration::from_millis(10));
    Ok(ctx
        .call_activity_with_retry(&policy, flaky, (key, 2))
        .await?)
}

#[orchestrator]
async fn fails_by_itself(_ctx: OrchestrationContext) -> Result<u32, OrchestrationError> {
    Err(OrchestrationError::new("a bug"))
}

#[orchestrator]
async fn waits_for_go(ctx: OrchestrationContext) -> Result<u32, OrchestrationError> {
    Ok(ctx.wait_for_event::<u32>("go").await?)
}

fn count(history: &[durable_runtime::HistoryRecord], kind: &str) -> usize {
    history
        .iter()
        .filter(|r| r.event.event_type() == kind)
        .count()
}

async fn fails(client: &Client, id: &str) {
    let status = client
        .wait_for_completion(id, WAIT)
        .await
        .expect("finishes");
    assert_eq!(status.runtime_status, RuntimeStatus::Failed, "{status:?}");
}

/// The failed activity runs again, the completed one does not, and the rewound history
/// replays after a runtime restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_activity_runs_again_and_the_instance_continues_across_a_restart() {
    for cache in CACHES {
        let store = TestStore::new();
        let key = format!("seq-{cache:?}");
        let (runtime, client) = store.start_with(settings(cache)).await;
        let id = client
            .start(two_steps_then_event, key.clone())
            .await
            .expect("start");
        fails(&client, &id).await;
        client.rewind(&id, "fixed").await.expect("rewinds");
        support::until_recorded(&client, &id, "the second activity completes", 2, |e| {
            matches!(e, HistoryEvent::TaskCompleted { .. })
        })
        .await;
        assert_eq!(
            calls(&format!("{key}-first")),
            1,
            "completed work is not run again"
        );
        assert_eq!(calls(&format!("{key}-second")), 2);
        runtime.shutdown().await;
        drop(client);

        // The rewound history replays (its failure skipped) and the instance goes on.
        let (runtime, client) = store.restart(settings(cache)).await;
        client
            .raise_event(&id, "finish", "done")
            .await
            .expect("raised");
        let status = client
            .wait_for_completion(&id, WAIT)
            .await
            .expect("completes");
        assert_eq!(
            status.output_as::<String>().expect("output"),
            format!("{key}-first {key}-second done")
        );
        let history = support::history(&client, &id).await;
        // Append-only: the failure and the failed end are still there, before the rewind.
        assert_eq!(count(&history, "TaskFailed"), 1);
        assert_eq!(count(&history, "ExecutionFailed"), 1);
        assert_eq!(count(&history, "ExecutionRewound"), 1);
        assert_eq!(count(&history, "ExecutionCompleted"), 1);
        assert_eq!(calls(&format!("{key}-first")), 1);
        runtime.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_failed_activities_of_a_fan_out_run_again() {
    for cache in CACHES {
        let store = TestStore::new();
        let key = format!("fan-{cache:?}");
        let (runtime, client) = store.start_with(settings(cache)).await;
        let id = client.start(fans_out, key.clone()).await.expect("start");
        fails(&client, &id).await;
        client
            .rewind(&id, "retry the failed ones")
            .await
            .expect("rewinds");
        let status = client
            .wait_for_completion(&id, WAIT)
            .await
            .expect("completes");
        assert_eq!(
            status.runtime_status,
            RuntimeStatus::Completed,
            "{status:?}"
        );
        let output: Vec<String> = status.output_as().expect("output");
        assert_eq!(output.len(), 5);
        for i in 0..5 {
            let expected = if i % 2 == 1 { 2 } else { 1 };
            assert_eq!(calls(&format!("{key}-{i}")), expected, "activity {i}");
        }
        runtime.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_sub_orchestration_is_rewound_with_its_parent() {
    for cache in CACHES {
        let store = TestStore::new();
        let key = format!("tree-{cache:?}");
        let (runtime, client) = store.start_with(settings(cache)).await;
        let id = client
            .start(parent_of_flaky, key.clone())
            .await
            .expect("start");
        fails(&client, &id).await;
        client.rewind(&id, "child fixed").await.expect("rewinds");
        let status = client
            .wait_for_completion(&id, WAIT)
            .await
            .expect("completes");
        assert_eq!(
            status.output_as::<String>().expect("output"),
            format!("{key}-parent {key}-child")
        );
        assert_eq!(calls(&format!("{key}-parent")), 1);
        assert_eq!(calls(&format!("{key}-child")), 2);
        runtime.shutdown().await;
    }
}

/// The first attempt's failure was handled by the retry: only the last attempt runs again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handled_failure_stays_and_only_the_last_retry_attempt_runs_again() {
    for cache in CACHES {
        let store = TestStore::new();
        let key = format!("retry-{cache:?}");
        let (runtime, client) = store.start_with(settings(cache)).await;
        let id = client.start(retried, key.clone()).await.expect("start");
        fails(&client, &id).await;
        assert_eq!(calls(&key), 2);
        client.rewind(&id, "third time").await.expect("rewinds");
        let status = client
            .wait_for_completion(&id, WAIT)
            .await
            .expect("completes");
        assert_eq!(status.output_as::<String>().expect("output"), key);
        assert_eq!(calls(&key), 3);
        runtime.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewind_is_refused_where_it_does_not_apply() {
    let store = TestStore::new();
    let (runtime, client) = store.start().await;
    let running = client.start(waits_for_go, ()).await.expect("start");
    support::until_status(&client, &running, RuntimeStatus::Running).await;
    let refused = client.rewind(&running, "?").await;
    support::assert_not_applicable(&refused, None, RuntimeStatus::Running);
    client.raise_event(&running, "go", 1).await.expect("raised");
    client
        .wait_for_completion(&running, WAIT)
        .await
        .expect("done");
    let completed = client.rewind(&running, "?").await;
    support::assert_not_applicable(&completed, None, RuntimeStatus::Completed);
    let own = client.start(fails_by_itself, ()).await.expect("start");
    fails(&client, &own).await;
    let nothing = client.rewind(&own, "?").await;
    support::assert_not_applicable(&nothing, None, RuntimeStatus::Failed);
    let status = client
        .get_status(&own)
        .await
        .expect("reads")
        .expect("exists");
    assert_eq!(status.runtime_status, RuntimeStatus::Failed, "unchanged");
    let unknown = client.rewind("nobody", "?").await;
    support::assert_not_found(&unknown);
    runtime.shutdown().await;
}

/// Handles its child's failure, then waits for "go".
#[orchestrator]
async fn parent_handles_child(
    ctx: OrchestrationContext,
    key: String,
) -> Result<String, OrchestrationError> {
    let child = format!("{key}-child");
    let outcome = match ctx
        .call_sub_orchestrator_with_id(child_fails_once, child.clone(), child)
        .await
    {
        Ok(value) => value,
        Err(_) => "handled".to_string(),
    };
    let go: u32 = ctx.wait_for_event("go").await?;
    Ok(format!("{outcome} {go}"))
}

/// A failed child rewound on its own while its parent, which handled the failure, goes on:
/// the child's second outcome reaches a call that was answered already. It is dropped, not
/// recorded as a result the code never awaits, so the parent still replays and completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_rewound_after_its_parent_handled_the_failure_does_not_break_the_parent() {
    for cache in CACHES {
        let store = TestStore::new();
        let (runtime, client) = store.start_with(settings(cache)).await;
        let key = format!("handled-{cache:?}");
        let id = client
            .start(parent_handles_child, key.clone())
            .await
            .expect("start");
        let child = format!("{key}-child");
        support::until_recorded(&client, &id, "the handled failure", 1, |e| {
            matches!(e, HistoryEvent::SubOrchestrationInstanceFailed { .. })
        })
        .await;
        fails(&client, &child).await;
        client.rewind(&child, "again").await.expect("rewinds");
        let status = client
            .wait_for_completion(&child, WAIT)
            .await
            .expect("finishes");
        assert_eq!(status.runtime_status, RuntimeStatus::Completed);
        // The child's outcome went to the parent with its completion: wait until the parent
        // consumed it.
        let consumed = async {
            loop {
                let conn =
                    durable_runtime::store::sqlite::open_read_only(store.path()).expect("opens");
                let waiting: i64 = conn
                    .query_row(
                        "SELECT COUNT(*) FROM messages WHERE instance_id = ?1",
                        [&id],
                        |row| row.get(0),
                    )
                    .expect("counts");
                if waiting == 0 {
                    return;
                }
                tokio::task::yield_now().await;
            }
        };
        tokio::time::timeout(WAIT, consumed)
            .await
            .expect("the outcome is consumed");
        // Replayed from history (cache off, or a new runtime) when "go" arrives.
        runtime.shutdown().await;
        drop(client);
        let (runtime, client) = store.restart(settings(cache)).await;
        client.raise_event(&id, "go", 7).await.expect("raised");
        let status = client
            .wait_for_completion(&id, WAIT)
            .await
            .expect("finishes");
        assert_eq!(
            status.runtime_status,
            RuntimeStatus::Completed,
            "{:?}",
            status.failure
        );
        assert_eq!(status.output_as::<String>().expect("output"), "handled 7");
        runtime.shutdown().await;
    }
}
