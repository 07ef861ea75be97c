//! A graceful shutdown commits the results of the activities it waited for (they are not run
//! again at the next start), and shutdown returns by its timeout even when an activity blocks
//! its thread.

mod support;

use durable_runtime::prelude::*;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;
use support::{TestStore, WAIT};

// The activities shutdown waits for hand their results to steps that still run.

static RUNS: AtomicU32 = AtomicU32::new(0);

#[activity]
async fn counted_slow(n: u32) -> u32 {
    RUNS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(400)).await;
    n + 1
}

#[orchestrator]
async fn one_counted(ctx: OrchestrationContext) -> Result<u32, OrchestrationError> {
    Ok(ctx.call_activity(counted_slow, 1).await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_commits_the_activities_it_waited_for() {
    let store = TestStore::new();
    let (runtime, client) = store
        .start_with(|b| b.shutdown_timeout(Duration::from_secs(5)))
        .await;
    let id = client.start(one_counted, ()).await.expect("start");
    while RUNS.load(Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
    }
    // The activity is running; shutdown waits for it (it finishes in 400 ms, well within 5 s).
    runtime.shutdown().await;
    drop(client);
    let (runtime, client) = store.restart(|b| b).await;
    let status = client.wait_for_completion(&id, WAIT).await.expect("done");
    assert_eq!(status.output_as::<u32>().expect("output"), 2);
    runtime.shutdown().await;
    assert_eq!(
        RUNS.load(Ordering::SeqCst),
        1,
        "shutdown waited for the activity to finish, yet its result was dropped and it ran again"
    );
}

// A task blocked in user code cannot be aborted; shutdown does not wait for it.

static BLOCKING_STARTED: AtomicU32 = AtomicU32::new(0);

#[activity]
async fn blocking_work() -> u32 {
    BLOCKING_STARTED.fetch_add(1, Ordering::SeqCst);
    // Blocking work inside an async activity (a sync client library, a CPU-bound loop).
    std::thread::sleep(Duration::from_secs(3));
    1
}

#[orchestrator]
async fn calls_blocking(ctx: OrchestrationContext) -> Result<u32, OrchestrationError> {
    Ok(ctx.call_activity(blocking_work, ()).await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_honours_its_timeout_with_a_blocking_activity() {
    let store = TestStore::new();
    let (runtime, client) = store
        .start_with(|b| b.shutdown_timeout(Duration::from_millis(200)))
        .await;
    client.start(calls_blocking, ()).await.expect("start");
    while BLOCKING_STARTED.load(Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
    }
    let began = Instant::now();
    runtime.shutdown().await;
    let took = began.elapsed();
    assert!(
        took < Duration::from_secs(2),
        "shutdown_timeout is 200 ms, shutdown took {took:?}"
    );
}
