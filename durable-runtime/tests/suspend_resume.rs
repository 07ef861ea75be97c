//! `Client::suspend` / `resume`: a suspended instance runs no step; events, activity results,
//! timer firings and children's outcomes that arrive meanwhile are kept durably (across a
//! restart too) and processed on resume; typed refusals where they do not apply. Hot and
//! replayed.

mod support;

use durable_runtime::clock::{Clock, SystemClock};
use durable_runtime::prelude::*;
use durable_runtime::{HistoryEvent, HistoryRecord, RuntimeBuilder};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use support::{CACHES, TestStore, WAIT, cache_settings as settings, count_rows};
use tokio::sync::Semaphore;

#[orchestrator]
async fn waits_for_go(ctx: OrchestrationContext) -> Result<u32, OrchestrationError> {
    Ok(ctx.wait_for_event::<u32>("go").await?)
}

static GATE: Semaphore = Semaphore::const_new(0);
static GATED_RUNS: AtomicU64 = AtomicU64::new(0);

#[activity]
async fn gated(n: u64) -> u64 {
    GATED_RUNS.fetch_add(1, Ordering::SeqCst);
    if let Ok(permit) = GATE.acquire().await {
        permit.forget();
    }
    n * 2
}

#[orchestrator]
async fn calls_gated(ctx: OrchestrationContext, n: u64) -> Result<u64, OrchestrationError> {
    Ok(ctx.call_activity(gated, n).await?)
}

#[orchestrator]
async fn naps_an_hour(ctx: OrchestrationContext) -> u32 {
    ctx.sleep(Duration::from_secs(3600)).await;
    1
}

#[orchestrator]
async fn parent_of_one(ctx: OrchestrationContext) -> Result<String, OrchestrationError> {
    let id = format!("{}-child", ctx.instance_id());
    let n = ctx
        .call_sub_orchestrator_with_id(waits_for_go, id, ())
        .await?;
    Ok(format!("child returned {n}"))
}

/// Waits until the instance has `rows` rows in `table`.
async fn until_rows(store: &TestStore, table: &str, instance_id: &str, rows: i64) {
    let reached = async {
        while count_rows(store, table, instance_id) != rows {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(WAIT, reached)
        .await
        .unwrap_or_else(|_| panic!("{table} of {instance_id} never had {rows} rows"));
}

fn types(history: &[HistoryRecord]) -> Vec<&'static str> {
    history.iter().map(|r| r.event.event_type()).collect()
}

async fn status_of(client: &Client, id: &str) -> RuntimeStatus {
    client
        .get_status(id)
        .await
        .expect("reads")
        .expect("exists")
        .runtime_status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_raised_while_suspended_survives_a_restart_and_is_processed_on_resume() {
    for cache in CACHES {
        let store = TestStore::new();
        let (runtime, client) = store.start_with(settings(cache)).await;
        let id = client.start(waits_for_go, ()).await.expect("start");
        support::until_status(&client, &id, RuntimeStatus::Running).await;
        client.suspend(&id, "maintenance").await.expect("suspends");
        assert_eq!(status_of(&client, &id).await, RuntimeStatus::Suspended);
        client
            .raise_event(&id, "go", 7)
            .await
            .expect("accepted while suspended");
        runtime.shutdown().await;
        drop(client);

        let (runtime, client) = store.restart(settings(cache)).await;
        assert_eq!(status_of(&client, &id).await, RuntimeStatus::Suspended);
        let history = support::history(&client, &id).await;
        assert!(
            !types(&history).contains(&"EventRaised"),
            "no step ran while suspended: {history:?}"
        );
        assert!(
            count_rows(&store, "messages", &id) >= 1,
            "the event is kept"
        );
        client.resume(&id, "done").await.expect("resumes");
        let status = client
            .wait_for_completion(&id, WAIT)
            .await
            .expect("completes");
        assert_eq!(status.output_as::<u32>().expect("output"), 7);
        let history = support::history(&client, &id).await;
        let kinds = types(&history);
        let at = |kind| kinds.iter().position(|k| *k == kind);
        assert!(at("ExecutionSuspended") < at("EventRaised"), "{kinds:?}");
        // Stepped with the parked messages (unless the step that completes it raced ahead).
        if let Some(resumed) = at("ExecutionResumed") {
            assert!(at("EventRaised") < Some(resumed), "{kinds:?}");
        }
        runtime.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hot_instance_suspended_and_resumed_without_a_restart_gets_its_event() {
    for cache in CACHES {
        let store = TestStore::new();
        let (runtime, client) = store.start_with(settings(cache)).await;
        let id = client.start(waits_for_go, ()).await.expect("start");
        support::until_status(&client, &id, RuntimeStatus::Running).await;
        client.suspend(&id, "hold").await.expect("suspends");
        client.raise_event(&id, "go", 3).await.expect("kept");
        // The event's step is fenced and parked: the message stays in the store.
        until_rows(&store, "messages", &id, 2).await;
        assert_eq!(status_of(&client, &id).await, RuntimeStatus::Suspended);
        client.resume(&id, "go on").await.expect("resumes");
        let status = client
            .wait_for_completion(&id, WAIT)
            .await
            .expect("completes");
        assert_eq!(status.output_as::<u32>().expect("output"), 3);
        assert_eq!(count_rows(&store, "messages", &id), 0);
        runtime.shutdown().await;
    }
}

/// The activity finishes while its instance is suspended: its result is stored (its work item
/// deleted), so a restart while suspended does not run it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_activity_result_arriving_while_suspended_is_stored_and_not_run_again() {
    for cache in CACHES {
        GATED_RUNS.store(0, Ordering::SeqCst);
        let store = TestStore::new();
        let (runtime, client) = store.start_with(settings(cache)).await;
        let id = client.start(calls_gated, 21).await.expect("start");
        support::until_recorded(&client, &id, "the activity is scheduled", 1, |e| {
            matches!(e, HistoryEvent::TaskScheduled { .. })
        })
        .await;
        client.suspend(&id, "hold").await.expect("suspends");
        GATE.add_permits(1);
        // The result becomes a stored message; the work item goes.
        until_rows(&store, "activities", &id, 0).await;
        assert_eq!(status_of(&client, &id).await, RuntimeStatus::Suspended);
        runtime.shutdown().await;
        drop(client);

        let (runtime, client) = store.restart(settings(cache)).await;
        assert_eq!(status_of(&client, &id).await, RuntimeStatus::Suspended);
        client.resume(&id, "go on").await.expect("resumes");
        let status = client
            .wait_for_completion(&id, WAIT)
            .await
            .expect("completes");
        assert_eq!(status.output_as::<u64>().expect("output"), 42);
        assert_eq!(
            GATED_RUNS.load(Ordering::SeqCst),
            1,
            "the activity ran once"
        );
        runtime.shutdown().await;
    }
}

/// The system clock plus an offset the test moves.
struct JumpingClock(AtomicI64);

impl Clock for JumpingClock {
    fn now_ms(&self) -> i64 {
        SystemClock.now_ms() + self.0.load(Ordering::SeqCst)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timer_that_fires_while_suspended_is_kept_for_the_resume() {
    for cache in CACHES {
        let store = TestStore::new();
        let clock = Arc::new(JumpingClock(AtomicI64::new(0)));
        let with_clock = |b: RuntimeBuilder| settings(cache)(b).clock(clock.clone());
        let (runtime, client) = store.start_with(with_clock).await;
        let id = client.start(naps_an_hour, ()).await.expect("start");
        support::until_recorded(&client, &id, "the timer is armed", 1, |e| {
            matches!(e, HistoryEvent::TimerCreated { .. })
        })
        .await;
        client.suspend(&id, "hold").await.expect("suspends");
        clock.0.store(3_600_000 + 1_000, Ordering::SeqCst);
        until_rows(&store, "timers", &id, 0).await;
        assert_eq!(status_of(&client, &id).await, RuntimeStatus::Suspended);
        client.resume(&id, "go on").await.expect("resumes");
        let status = client
            .wait_for_completion(&id, WAIT)
            .await
            .expect("completes");
        assert_eq!(status.runtime_status, RuntimeStatus::Completed);
        runtime.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_childs_outcome_reaching_a_suspended_parent_waits_for_the_resume() {
    for cache in CACHES {
        let store = TestStore::new();
        let (runtime, client) = store.start_with(settings(cache)).await;
        let id = client.start(parent_of_one, ()).await.expect("start");
        let child = format!("{id}-child");
        support::until_status(&client, &child, RuntimeStatus::Running).await;
        client.suspend(&id, "hold").await.expect("suspends");
        client.raise_event(&child, "go", 9).await.expect("raised");
        client
            .wait_for_completion(&child, WAIT)
            .await
            .expect("child done");
        assert_eq!(status_of(&client, &id).await, RuntimeStatus::Suspended);
        client.resume(&id, "go on").await.expect("resumes");
        let status = client
            .wait_for_completion(&id, WAIT)
            .await
            .expect("parent done");
        assert_eq!(
            status.output_as::<String>().expect("output"),
            "child returned 9"
        );
        runtime.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspend_and_resume_are_refused_where_they_do_not_apply() {
    let store = TestStore::new();
    let (runtime, client) = store.start().await;
    let id = client.start(waits_for_go, ()).await.expect("start");
    support::until_status(&client, &id, RuntimeStatus::Running).await;
    let not_suspended = client.resume(&id, "?").await;
    support::assert_not_applicable(&not_suspended, Some("resume"), RuntimeStatus::Running);
    client.suspend(&id, "once").await.expect("suspends");
    let twice = client.suspend(&id, "twice").await;
    support::assert_not_applicable(&twice, Some("suspend"), RuntimeStatus::Suspended);
    client.resume(&id, "go").await.expect("resumes");
    client.raise_event(&id, "go", 1).await.expect("raised");
    client.wait_for_completion(&id, WAIT).await.expect("done");
    let finished = client.suspend(&id, "late").await;
    support::assert_not_applicable(&finished, None, RuntimeStatus::Completed);
    let unknown = client.resume("nobody", "?").await;
    support::assert_not_found(&unknown);
    runtime.shutdown().await;
}
