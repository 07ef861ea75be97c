//! `Client::start_with` a scheduled start time: the instance is `Pending` and runs no code until
//! then, starts through the timer service when the runtime's clock reaches it (no polling), and
//! its start survives a restart. A time that has passed starts it at once. By name
//! (`Client::start_by_name_with`), the same, and an unknown name writes nothing.

mod support;

use durable_runtime::clock::{Clock, SystemClock};
use durable_runtime::prelude::*;
use durable_runtime::{RuntimeBuilder, StartOptions};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::SystemTime;
use support::{TestStore, WAIT};

/// Runs of `count_run`, by its input: each test gives its own input, and the tests of this
/// binary run at the same time, so one test's count is never another's.
static RUNS_BY_INPUT: [AtomicU64; 32] = [const { AtomicU64::new(0) }; 32];

fn runs_of(n: u32) -> u64 {
    RUNS_BY_INPUT[n as usize % RUNS_BY_INPUT.len()].load(Ordering::SeqCst)
}

#[activity]
async fn count_run(n: u32) -> u32 {
    RUNS_BY_INPUT[n as usize % RUNS_BY_INPUT.len()].fetch_add(1, Ordering::SeqCst);
    n * 2
}

#[orchestrator]
async fn counts_its_run(ctx: OrchestrationContext, n: u32) -> Result<u32, OrchestrationError> {
    Ok(ctx.call_activity(count_run, n).await?)
}

/// The system clock plus an offset the test moves.
struct JumpingClock(AtomicI64);

impl Clock for JumpingClock {
    fn now_ms(&self) -> i64 {
        SystemClock.now_ms() + self.0.load(Ordering::SeqCst)
    }
}

const HOUR_MS: i64 = 3_600_000;

fn in_an_hour() -> StartOptions {
    StartOptions {
        instance_id: None,
        scheduled_start: Some(SystemTime::now() + Duration::from_secs(3600)),
    }
}

async fn pending_untouched(client: &Client, id: &str) {
    let status = client.get_status(id).await.expect("reads").expect("exists");
    assert_eq!(status.runtime_status, RuntimeStatus::Pending);
    assert!(
        support::history(client, id).await.is_empty(),
        "no step ran before the scheduled time"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_instance_waits_for_its_time_hot_and_replayed() {
    for cache in [None, Some(0)] {
        let store = TestStore::new();
        let clock = Arc::new(JumpingClock(AtomicI64::new(0)));
        let with = |b: RuntimeBuilder| {
            let b = b.clock(clock.clone());
            match cache {
                Some(capacity) => b.cache_capacity(capacity),
                None => b,
            }
        };
        let (runtime, client) = store.start_with(with).await;
        let id = client
            .start_with(counts_its_run, 21, in_an_hour())
            .await
            .expect("scheduled");
        pending_untouched(&client, &id).await;
        let early = client
            .wait_for_completion(&id, Duration::from_millis(300))
            .await;
        assert!(
            matches!(early, Err(durable_runtime::Error::Timeout { .. })),
            "{early:?}"
        );
        pending_untouched(&client, &id).await;
        clock.0.store(HOUR_MS + 1_000, Ordering::SeqCst);
        let status = client.wait_for_completion(&id, WAIT).await.expect("starts");
        assert_eq!(status.output_as::<u32>().expect("output"), 42);
        runtime.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_start_survives_a_restart() {
    let store = TestStore::new();
    let (runtime, client) = store.start().await;
    let id = client
        .start_with(counts_its_run, 5, in_an_hour())
        .await
        .expect("scheduled");
    runtime.shutdown().await;
    drop(client);

    // Not yet due after the restart.
    let (runtime, client) = store.restart(|b| b).await;
    pending_untouched(&client, &id).await;
    runtime.shutdown().await;
    drop(client);

    // Due: the start timer, read from the store, starts it once.
    let clock = Arc::new(JumpingClock(AtomicI64::new(HOUR_MS + 1_000)));
    let (runtime, client) = store.restart(|b| b.clock(clock.clone())).await;
    let status = client.wait_for_completion(&id, WAIT).await.expect("starts");
    assert_eq!(status.output_as::<u32>().expect("output"), 10);
    assert_eq!(runs_of(5), 1);
    let starts = support::history(&client, &id)
        .await
        .iter()
        .filter(|r| r.event.event_type() == "ExecutionStarted")
        .count();
    assert_eq!(starts, 1);
    runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_time_in_the_past_starts_at_once_and_ids_are_kept() {
    let store = TestStore::new();
    let (runtime, client) = store.start().await;
    let options = StartOptions {
        instance_id: Some("yesterday".into()),
        scheduled_start: Some(SystemTime::now() - Duration::from_secs(86_400)),
    };
    let id = client
        .start_with(counts_its_run, 1, options.clone())
        .await
        .expect("starts");
    assert_eq!(id, "yesterday");
    let status = client.wait_for_completion(&id, WAIT).await.expect("done");
    assert_eq!(status.output_as::<u32>().expect("output"), 2);
    let again = client.start_with(counts_its_run, 1, options).await;
    assert!(
        matches!(again, Err(durable_runtime::Error::InstanceAlreadyExists(_))),
        "{again:?}"
    );
    runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_start_by_name_waits_for_its_time() {
    let store = TestStore::new();
    let clock = Arc::new(JumpingClock(AtomicI64::new(0)));
    let (runtime, client) = store.start_with(|b| b.clock(clock.clone())).await;
    let options = StartOptions {
        instance_id: Some("by-name".into()),
        ..in_an_hour()
    };
    let id = client
        .start_by_name_with("counts_its_run", 4, options)
        .await
        .expect("scheduled");
    assert_eq!(id, "by-name");
    pending_untouched(&client, &id).await;
    let early = client
        .wait_for_completion(&id, Duration::from_millis(300))
        .await;
    assert!(
        matches!(early, Err(durable_runtime::Error::Timeout { .. })),
        "{early:?}"
    );
    pending_untouched(&client, &id).await;
    clock.0.store(HOUR_MS + 1_000, Ordering::SeqCst);
    let status = client.wait_for_completion(&id, WAIT).await.expect("starts");
    assert_eq!(status.output_as::<u32>().expect("output"), 8);

    let options = StartOptions {
        instance_id: Some("never".into()),
        ..in_an_hour()
    };
    let unknown = client
        .start_by_name_with("no_such_orchestrator", 4, options)
        .await;
    match unknown {
        Err(err @ durable_runtime::Error::UnknownOrchestrator(_)) => {
            assert!(err.to_string().contains("'no_such_orchestrator'"), "{err}")
        }
        other => panic!("an unknown name must be refused: {other:?}"),
    }
    assert!(
        client.get_status("never").await.expect("reads").is_none(),
        "nothing was written for an unknown name"
    );
    runtime.shutdown().await;
}
