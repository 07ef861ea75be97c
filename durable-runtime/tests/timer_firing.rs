//! A due timer is handed to its instance in memory and its firing is recorded by the step that
//! consumes it: one commit per timer instead of two. These tests try to lose or double that
//! firing: a step that never commits, a timer whose run ended first.

mod support;

use durable_runtime::HistoryEvent;
use durable_runtime::prelude::*;
use durable_runtime::store::{StepCommit, StoreError, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use support::TestStore;
use support::hooked::{BoxFut, Hook, Phase};

#[orchestrator]
async fn nap(ctx: OrchestrationContext, ms: u64) -> Result<u64, OrchestrationError> {
    ctx.sleep(Duration::from_millis(ms)).await;
    Ok(ms)
}

/// Races an event against a timer; returns which won.
#[orchestrator]
async fn event_or_timer(ctx: OrchestrationContext, ms: u64) -> Result<String, OrchestrationError> {
    let timer = ctx.sleep(Duration::from_millis(ms));
    let event = ctx.wait_for_event::<String>("go");
    Ok(match ctx.when_any2(event, timer).await {
        Either::Left(event) => event?,
        Either::Right(()) => "timer".to_string(),
    })
}

fn records_a_firing(write: &Write) -> bool {
    matches!(write, Write::Step(StepCommit { fired_timers, .. }) if !fired_timers.is_empty())
}

fn timer_rows(store: &TestStore) -> i64 {
    let db = rusqlite::Connection::open(store.path()).expect("opens");
    db.query_row("SELECT COUNT(*) FROM timers", [], |row| row.get(0))
        .expect("counts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_due_timer_fires_without_a_write_of_its_own_and_leaves_no_row() {
    let store = TestStore::new();
    let fire_writes = Arc::new(AtomicU64::new(0));
    let recorded_firings = Arc::new(AtomicU64::new(0));
    let hook: Hook = {
        let (fire_writes, recorded_firings) = (fire_writes.clone(), recorded_firings.clone());
        Arc::new(move |phase, write| -> BoxFut {
            if phase == Phase::Before {
                if matches!(write, Write::FireTimer { .. }) {
                    fire_writes.fetch_add(1, Ordering::SeqCst);
                }
                if records_a_firing(write) {
                    recorded_firings.fetch_add(1, Ordering::SeqCst);
                }
            }
            Box::pin(async { None })
        })
    };
    let runtime = store.hooked_builder(hook).start().await.expect("starts");
    let client = runtime.client();
    let id = client.start(nap, 20).await.expect("starts");
    let status = client
        .wait_for_completion(&id, Duration::from_secs(10))
        .await
        .expect("completes");
    assert_eq!(status.output_as::<u64>().expect("decodes"), 20);
    drop(client);
    runtime.shutdown().await;
    assert_eq!(fire_writes.load(Ordering::SeqCst), 0, "no FireTimer write");
    assert_eq!(recorded_firings.load(Ordering::SeqCst), 1);
    assert_eq!(timer_rows(&store), 0, "the firing step deleted the timer");
    let (runtime, client) = store.start().await;
    let fired = support::history(&client, &id)
        .await
        .iter()
        .filter(|r| matches!(r.event, HistoryEvent::TimerFired { .. }))
        .count();
    assert_eq!(fired, 1);
    runtime.shutdown().await;
}

/// The firing lives only in memory until its step commits: if that step never commits (the
/// store fails until the process goes away), the timer is still in the store and fires again
/// at the next start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_firing_whose_step_never_commits_fires_again_after_a_restart() {
    let store = TestStore::new();
    let (held, mut seen) = tokio::sync::watch::channel(false);
    let hook: Hook = Arc::new(move |phase, write| -> BoxFut {
        if phase == Phase::Before && records_a_firing(write) {
            let _ = held.send(true);
            return Box::pin(async { Some(StoreError::Unavailable("disk full".into())) });
        }
        Box::pin(async { None })
    });
    let runtime = store
        .hooked_builder(hook)
        .shutdown_timeout(Duration::from_millis(100))
        .start()
        .await
        .expect("starts");
    let id = runtime.client().start(nap, 10).await.expect("starts");
    seen.wait_for(|seen| *seen).await.expect("the timer fires");
    runtime.shutdown().await;
    assert_eq!(
        timer_rows(&store),
        1,
        "the timer is still armed in the store"
    );

    let (runtime, client) = store.restart(|builder| builder).await;
    let status = client
        .wait_for_completion(&id, Duration::from_secs(10))
        .await
        .expect("completes after the restart");
    assert_eq!(status.runtime_status, RuntimeStatus::Completed);
    let fired = support::history(&client, &id)
        .await
        .iter()
        .filter(|r| matches!(r.event, HistoryEvent::TimerFired { .. }))
        .count();
    assert_eq!(fired, 1, "recorded once");
    runtime.shutdown().await;
    assert_eq!(timer_rows(&store), 0);
}

/// A timer that lost its race is deleted when its instance completes, but it may already be in
/// the timer service's memory: its firing then reaches a finished instance, whose timer row is
/// gone. The step is refused (`TimersGone`), the firing dropped, and the instance stays
/// completed with its output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_firing_of_a_timer_discarded_with_its_run_is_dropped() {
    let store = TestStore::new();
    let late_firings = Arc::new(AtomicU64::new(0));
    let (answered, mut late_answered) = tokio::sync::watch::channel(0u64);
    let hook: Hook = {
        let late_firings = late_firings.clone();
        Arc::new(move |phase, write| -> BoxFut {
            if phase == Phase::After && records_a_firing(write) {
                let n = late_firings.fetch_add(1, Ordering::SeqCst) + 1;
                let _ = answered.send(n);
            }
            Box::pin(async { None })
        })
    };
    let runtime = store
        .hooked_builder(hook)
        .cache_capacity(0)
        .start()
        .await
        .expect("starts");
    let client = runtime.client();
    let id = client.start(event_or_timer, 300).await.expect("starts");
    support::until_recorded(&client, &id, "the timer", 1, |e| {
        matches!(e, HistoryEvent::TimerCreated { .. })
    })
    .await;
    client
        .raise_event(&id, "go", "event")
        .await
        .expect("raised");
    let status = client
        .wait_for_completion(&id, Duration::from_secs(10))
        .await
        .expect("completes");
    assert_eq!(status.output_as::<String>().expect("decodes"), "event");
    assert_eq!(timer_rows(&store), 0, "completing deleted the losing timer");
    // The timer service still fires it, in memory, when it comes due.
    late_answered
        .wait_for(|n| *n >= 1)
        .await
        .expect("the late firing reaches the store");
    let status = client
        .get_status(&id)
        .await
        .expect("reads")
        .expect("exists");
    assert_eq!(status.runtime_status, RuntimeStatus::Completed);
    assert_eq!(status.output_as::<String>().expect("decodes"), "event");
    let history = support::history(&client, &id).await;
    assert!(
        !history
            .iter()
            .any(|r| matches!(r.event, HistoryEvent::TimerFired { .. })),
        "nothing recorded after the end"
    );
    runtime.shutdown().await;
}
