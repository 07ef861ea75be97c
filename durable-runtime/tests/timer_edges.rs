//! Timer edge cases: "sleep forever", a finished instance's losing timer and late results,
//! and a wall clock that jumps forward (a suspended VM) while a long timer is armed.

mod support;

use durable_runtime::HistoryEvent;
use durable_runtime::clock::{Clock, SystemClock};
use durable_runtime::prelude::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use support::{TestStore, WAIT};

#[orchestrator]
async fn sleeps_forever_unless_told(
    ctx: OrchestrationContext,
) -> Result<String, OrchestrationError> {
    let told = ctx.wait_for_event::<String>("wake");
    let forever = ctx.sleep(Duration::MAX);
    Ok(match ctx.when_any2(told, forever).await {
        Either::Left(text) => text?,
        Either::Right(()) => "the end of time".to_string(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sleeping_for_duration_max_saturates() {
    let store = TestStore::new();
    let (runtime, client) = store.start().await;
    let id = client
        .start(sleeps_forever_unless_told, ())
        .await
        .expect("start");
    client
        .raise_event(&id, "wake", "woken")
        .await
        .expect("raised");
    let status = client.wait_for_completion(&id, WAIT).await.expect("done");
    assert_eq!(status.output_as::<String>().expect("output"), "woken");
    runtime.shutdown().await;
}

static REPLAYS: AtomicU32 = AtomicU32::new(0);

#[activity]
async fn slow(n: u32) -> u32 {
    // Finishes only once the test says so, after the instance finished.
    RELEASE.notified().await;
    n
}

static RELEASE: tokio::sync::Notify = tokio::sync::Notify::const_new();

#[activity]
async fn fast(n: u32) -> u32 {
    n
}

#[orchestrator]
async fn first_wins(ctx: OrchestrationContext) -> Result<u32, OrchestrationError> {
    #[durable::allow_nondeterministic("counts how often the code runs, for the test")]
    REPLAYS.fetch_add(1, Ordering::SeqCst);
    let slow_task = ctx.call_activity(slow, 1);
    let fast_task = ctx.call_activity(fast, 2);
    let deadline = ctx.sleep(Duration::from_secs(72 * 3600));
    let (_, first) = ctx.when_any(vec![slow_task, fast_task]).await;
    drop(deadline);
    Ok(first?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_instance_drops_its_timers_and_consumes_late_results_without_replay() {
    let store = TestStore::new();
    let (runtime, client) = store.start_with(|b| b.cache_capacity(0)).await;
    let id = client.start(first_wins, ()).await.expect("start");
    let status = client.wait_for_completion(&id, WAIT).await.expect("done");
    assert_eq!(status.output_as::<u32>().expect("output"), 2);
    let runs = REPLAYS.load(Ordering::SeqCst);
    let db = durable_runtime::store::sqlite::open_read_only(store.path()).expect("opens");
    let count = |table: &str| -> i64 {
        db.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |row| {
            row.get(0)
        })
        .expect("counts")
    };
    assert_eq!(count("timers"), 0, "the losing 72-hour timer is gone");
    // The slow activity finishes after the instance did: its late result is consumed.
    RELEASE.notify_one();
    tokio::time::timeout(WAIT, async {
        while count("activities") > 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the late result is consumed");
    assert_eq!(
        REPLAYS.load(Ordering::SeqCst),
        runs,
        "no replay for a late result"
    );
    let history = support::history(&client, &id).await;
    assert!(
        matches!(
            history.last().map(|r| &r.event),
            Some(HistoryEvent::ExecutionCompleted { .. })
        ),
        "nothing is appended after the end: {history:?}"
    );
    runtime.shutdown().await;
}

/// The system clock plus an offset the test moves: a forward jump, as after a VM suspend.
struct JumpingClock(AtomicI64);

impl Clock for JumpingClock {
    fn now_ms(&self) -> i64 {
        SystemClock.now_ms() + self.0.load(Ordering::SeqCst)
    }
}

#[orchestrator]
async fn eight_hours(ctx: OrchestrationContext) -> Result<(), OrchestrationError> {
    ctx.sleep(Duration::from_secs(8 * 3600)).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forward_clock_jump_fires_a_long_timer_promptly() {
    let store = TestStore::new();
    let clock = Arc::new(JumpingClock(AtomicI64::new(0)));
    let (runtime, client) = store.start_with(|b| b.clock(clock.clone())).await;
    let id = client.start(eight_hours, ()).await.expect("start");
    support::until_recorded(&client, &id, "the timer is armed", 1, |e| {
        matches!(e, HistoryEvent::TimerCreated { .. })
    })
    .await;
    // The wall clock moves 8 hours on while the monotonic clock does not.
    clock.0.store(8 * 3600 * 1000 + 1000, Ordering::SeqCst);
    let status = client
        .wait_for_completion(&id, Duration::from_secs(10))
        .await
        .expect("the timer fires within seconds of the jump, not hours");
    assert_eq!(status.runtime_status, RuntimeStatus::Completed);
    runtime.shutdown().await;
}

#[orchestrator]
async fn waits_an_hour(ctx: OrchestrationContext) -> Result<String, OrchestrationError> {
    let guid = ctx.new_guid();
    ctx.sleep(Duration::from_secs(3600)).await;
    Ok(guid.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_of_another_run_never_lands_in_this_one() {
    let store = TestStore::new();
    let (runtime, client) = store.start().await;
    let id = client.start(waits_an_hour, ()).await.expect("start");
    support::until_recorded(&client, &id, "the timer is armed", 1, |e| {
        matches!(e, HistoryEvent::TimerCreated { .. })
    })
    .await;
    drop(client);
    runtime.shutdown().await;
    // A firing of the same task id from an earlier run of the instance (as after a
    // continue-as-new or a rewind) is waiting in the store.
    let db = rusqlite::Connection::open(store.path()).expect("opens");
    db.execute(
        "INSERT INTO messages (instance_id, event, execution_id)
         VALUES (?1, '{\"TimerFired\":{\"task_id\":0}}', 'an-earlier-run')",
        [&id],
    )
    .expect("inserts");
    let left = || -> i64 {
        db.query_row("SELECT COUNT(*) FROM messages", [], |row| row.get(0))
            .expect("counts")
    };
    let (runtime, client) = store.start().await;
    tokio::time::timeout(WAIT, async {
        while left() > 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the stale message is consumed");
    let status = client
        .get_status(&id)
        .await
        .expect("reads")
        .expect("exists");
    assert_eq!(
        status.runtime_status,
        RuntimeStatus::Running,
        "still waiting"
    );
    let history = support::history(&client, &id).await;
    assert!(
        !history
            .iter()
            .any(|r| matches!(r.event, HistoryEvent::TimerFired { .. })),
        "the stale firing is not recorded: {history:?}"
    );
    runtime.shutdown().await;
}
