//! The test harness (`durable_runtime::testing::TestRuntime`): virtual time that jumps only
//! when every instance is idle, on both engine paths (the hot cache and replay), across a
//! restart; the assertion helpers (mocks: `testing_mocks.rs`).

mod support;

use durable_runtime::prelude::*;
use durable_runtime::testing::{DEFAULT_START_MS, TestError, TestRuntime};
use durable_runtime::{HistoryEvent, HistoryRecord};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use support::CACHES;

const HOUR: Duration = Duration::from_secs(3600);
const HOUR_MS: i64 = 3_600_000;

/// A test runtime on one of the engine paths of [`CACHES`].
async fn test_runtime(cache: Option<usize>) -> TestRuntime {
    TestRuntime::builder()
        .configure(support::cache_settings(cache))
        .start()
        .await
        .expect("the test runtime starts")
}

#[activity]
async fn note(label: String) -> String {
    label
}

/// Sleeps `hours`, then notes `label`.
#[orchestrator]
async fn sleeper(
    ctx: OrchestrationContext,
    label: String,
    hours: u64,
) -> Result<String, OrchestrationError> {
    ctx.sleep(HOUR * hours as u32).await;
    Ok(ctx.call_activity(note, label).await?)
}

/// Sleeps an hour, notes, sleeps two days, notes.
#[orchestrator]
async fn two_naps(ctx: OrchestrationContext) -> Result<(), OrchestrationError> {
    ctx.sleep(HOUR).await;
    ctx.call_activity(note, "after an hour".to_string()).await?;
    ctx.sleep(HOUR * 48).await;
    ctx.call_activity(note, "after two days more".to_string())
        .await?;
    Ok(())
}

/// When the event that ended the history was recorded.
fn finished_at(history: &[HistoryRecord]) -> i64 {
    history
        .iter()
        .find(|r| matches!(r.event, HistoryEvent::ExecutionCompleted { .. }))
        .map(|r| r.timestamp_ms)
        .expect("the history records a completion")
}

fn count(history: &[HistoryRecord], what: fn(&HistoryEvent) -> bool) -> usize {
    history.iter().filter(|r| what(&r.event)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timers_of_hours_and_days_complete_in_milliseconds_in_due_order() {
    for cache in CACHES {
        let wall = std::time::Instant::now();
        let test = test_runtime(cache).await;
        let client = test.client();
        // Started longest first: due order, not start order, decides.
        let mut ids = Vec::new();
        for (label, hours) in [("three days", 72), ("two hours", 2), ("one day", 24)] {
            let id = client
                .start(sleeper, (label.to_string(), hours))
                .await
                .expect("starts");
            ids.push((id, hours));
        }
        let naps = client.start(two_naps, ()).await.expect("starts");
        for (id, hours) in &ids {
            let status = test.wait_for_completion(id).await.expect("completes");
            assert_eq!(status.runtime_status, RuntimeStatus::Completed);
            let history = status.history.expect("history");
            // Completed at the virtual time the timer was due, to the millisecond.
            assert_eq!(
                finished_at(&history),
                DEFAULT_START_MS + *hours as i64 * HOUR_MS,
                "cache {cache:?}"
            );
        }
        let status = test.wait_for_completion(&naps).await.expect("completes");
        assert_eq!(
            finished_at(&status.history.expect("history")),
            DEFAULT_START_MS + 49 * HOUR_MS
        );
        assert_eq!(
            test.calls_of(note).expect("an activity"),
            [
                "after an hour",
                "two hours",
                "one day",
                "after two days more",
                "three days"
            ],
            "cache {cache:?}"
        );
        // The clock jumped from timer to timer, never past the last one.
        assert_eq!(test.elapsed(), HOUR * 72);
        assert!(
            wall.elapsed() < Duration::from_secs(20),
            "72 virtual hours took {:?} of real time",
            wall.elapsed()
        );
        test.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn advance_fires_the_timers_within_it_one_due_time_after_another() {
    for cache in CACHES {
        let test = test_runtime(cache).await;
        let id = test.client().start(two_naps, ()).await.expect("starts");
        // Within 30 hours: the one-hour timer fires, its activity runs, and the two-day timer
        // it leads to is armed at hour 1 (so due at hour 49, not yet).
        test.advance(HOUR * 30).await.expect("advances");
        assert_eq!(test.calls_of(note).expect("activity"), ["after an hour"]);
        let status = test.status(&id).await.expect("status");
        assert_eq!(status.runtime_status, RuntimeStatus::Running);
        let timers: Vec<i64> = status
            .history
            .expect("history")
            .iter()
            .filter_map(|r| match r.event {
                HistoryEvent::TimerCreated { fire_at_ms, .. } => Some(fire_at_ms),
                _ => None,
            })
            .collect();
        assert_eq!(
            timers,
            [DEFAULT_START_MS + HOUR_MS, DEFAULT_START_MS + 49 * HOUR_MS]
        );
        assert_eq!(test.now_ms(), DEFAULT_START_MS + 30 * HOUR_MS);
        test.advance(HOUR * 19).await.expect("advances");
        let status = test.status(&id).await.expect("status");
        assert_eq!(
            status.runtime_status,
            RuntimeStatus::Completed,
            "cache {cache:?}"
        );
        test.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_in_the_middle_keeps_the_virtual_schedule_and_records_nothing_twice() {
    let test = test_runtime(None).await;
    let id = test
        .client()
        .start(sleeper, ("after the restart".to_string(), 72))
        .await
        .expect("starts");
    test.advance(HOUR * 24).await.expect("advances");
    // Rebuilt from its history by the new runtime, its timer read back from the store.
    let test = test.restart().await.expect("restarts");
    let status = test.wait_for_completion(&id).await.expect("completes");
    assert_eq!(
        status.output_as::<String>().expect("output"),
        "after the restart"
    );
    let history = status.history.expect("history");
    assert_eq!(finished_at(&history), DEFAULT_START_MS + 72 * HOUR_MS);
    assert_eq!(
        count(&history, |e| matches!(e, HistoryEvent::TimerCreated { .. })),
        1
    );
    assert_eq!(
        count(&history, |e| matches!(e, HistoryEvent::TimerFired { .. })),
        1
    );
    assert_eq!(
        count(&history, |e| matches!(
            e,
            HistoryEvent::TaskCompleted { .. }
        )),
        1
    );
    assert_eq!(
        test.calls_of(note).expect("activity"),
        ["after the restart"]
    );
    test.shutdown().await;
}

/// Approved by an event, or timed out after a day.
#[orchestrator]
async fn approval(ctx: OrchestrationContext) -> Result<String, OrchestrationError> {
    let decision = ctx.wait_for_event::<String>("approved");
    let deadline = ctx.sleep(HOUR * 24);
    Ok(match ctx.when_any2(decision, deadline).await {
        Either::Left(by) => format!("approved by {}", by?),
        Either::Right(()) => "timed out".to_string(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_any_of_a_timer_and_an_event_picks_the_event_just_before_the_deadline() {
    for cache in CACHES {
        let test = test_runtime(cache).await;
        let client = test.client();
        let id = client.start(approval, ()).await.expect("starts");
        // One millisecond before the deadline.
        test.advance(HOUR * 24 - Duration::from_millis(1))
            .await
            .expect("advances");
        assert_eq!(
            test.status(&id).await.expect("status").runtime_status,
            RuntimeStatus::Running
        );
        client
            .raise_event(&id, "approved", "ada")
            .await
            .expect("raised");
        let status = test.wait_for_completion(&id).await.expect("completes");
        assert_eq!(
            status.output_as::<String>().expect("output"),
            "approved by ada"
        );
        let history = status.history.expect("history");
        assert_eq!(finished_at(&history), DEFAULT_START_MS + 24 * HOUR_MS - 1);
        assert_eq!(
            count(&history, |e| matches!(e, HistoryEvent::TimerFired { .. })),
            0
        );
        test.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_any_of_a_timer_and_an_event_picks_the_timer_at_the_deadline() {
    for cache in CACHES {
        let test = test_runtime(cache).await;
        let client = test.client();
        let id = client.start(approval, ()).await.expect("starts");
        test.advance(HOUR * 24).await.expect("advances");
        let status = test.status(&id).await.expect("status");
        assert_eq!(
            status.runtime_status,
            RuntimeStatus::Completed,
            "cache {cache:?}"
        );
        assert_eq!(status.output_as::<String>().expect("output"), "timed out");
        assert_eq!(
            finished_at(&status.history.expect("history")),
            DEFAULT_START_MS + 24 * HOUR_MS
        );
        // Too late: the instance is done, and stays done.
        let late = client.raise_event(&id, "approved", "ada").await;
        assert!(
            matches!(late, Err(durable_runtime::Error::InstanceFinished { .. })),
            "{late:?}"
        );
        test.run_until_idle().await.expect("idle");
        let status = test.status(&id).await.expect("status");
        assert_eq!(status.output_as::<String>().expect("output"), "timed out");
        test.shutdown().await;
    }
}

#[activity]
async fn flaky(n: u32) -> Result<u32, String> {
    Err(format!("the real flaky activity ran with {n}"))
}

/// Calls `flaky` with up to four attempts, an hour apart, doubling.
#[orchestrator]
async fn patient(ctx: OrchestrationContext, n: u32) -> Result<u32, OrchestrationError> {
    let policy = RetryPolicy::new(4, HOUR).backoff_coefficient(2.0);
    Ok(ctx.call_activity_with_retry(&policy, flaky, n).await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_with_hour_long_backoffs_finish_instantly() {
    for cache in CACHES {
        let wall = std::time::Instant::now();
        let test = test_runtime(cache).await;
        let attempts = Arc::new(AtomicU32::new(0));
        let counted = attempts.clone();
        test.mock_activity(flaky, move |n: u32| -> Result<u32, String> {
            // Fails twice, then succeeds.
            match counted.fetch_add(1, Ordering::SeqCst) {
                0 | 1 => Err("not yet".to_string()),
                _ => Ok(n * 10),
            }
        })
        .expect("mocked");
        let id = test.client().start(patient, 7).await.expect("starts");
        let status = test.wait_for_completion(&id).await.expect("completes");
        assert_eq!(
            status.output_as::<u32>().expect("output"),
            70,
            "cache {cache:?}"
        );
        assert_eq!(attempts.load(Ordering::SeqCst), 3);
        assert_eq!(test.calls_of(flaky).expect("activity"), [7, 7, 7]);
        // Backoffs of one hour, then two.
        assert_eq!(
            finished_at(&status.history.expect("history")),
            DEFAULT_START_MS + 3 * HOUR_MS
        );
        assert!(wall.elapsed() < Duration::from_secs(20));
        test.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mocked_failure_fails_every_attempt_with_its_message() {
    let test = test_runtime(Some(0)).await;
    test.mock_activity_failure(flaky, "the payment provider is down")
        .expect("mocked");
    let id = test.client().start(patient, 1).await.expect("starts");
    let status = test.wait_for_completion(&id).await.expect("finishes");
    assert_eq!(status.runtime_status, RuntimeStatus::Failed);
    let failure = status.failure.expect("a failure");
    assert!(
        failure.message.contains("the payment provider is down"),
        "{failure:?}"
    );
    assert_eq!(test.calls_of(flaky).expect("activity").len(), 4);
    // 1 + 2 + 4 hours of backoff between the four attempts.
    assert_eq!(test.elapsed(), HOUR * 7);
    test.shutdown().await;
}

/// Waits for an event forever.
#[orchestrator]
async fn waits_for_a_word(ctx: OrchestrationContext) -> Result<String, OrchestrationError> {
    Ok(ctx.wait_for_event::<String>("word").await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_that_can_only_wait_is_reported_stalled_then_finishes_once_raised() {
    let test = test_runtime(None).await;
    let client = test.client();
    let id = client.start(waits_for_a_word, ()).await.expect("starts");
    match test.wait_for_completion(&id).await {
        Err(TestError::Stalled {
            instance_id,
            status,
        }) => {
            assert_eq!(instance_id, id);
            assert_eq!(status, RuntimeStatus::Running);
        }
        other => panic!("expected a stalled instance: {other:?}"),
    }
    // No timer was armed: the clock did not move.
    assert_eq!(test.elapsed(), Duration::ZERO);
    client
        .raise_event(&id, "word", "hello")
        .await
        .expect("raised");
    let status = test.wait_for_completion(&id).await.expect("completes");
    assert_eq!(status.output_as::<String>().expect("output"), "hello");
    test.shutdown().await;
}

/// Lets the `gate` activity finish.
static GATE: tokio::sync::Notify = tokio::sync::Notify::const_new();
/// Told when the `gate` activity started.
static GATE_STARTED: tokio::sync::Notify = tokio::sync::Notify::const_new();

#[activity]
async fn gate() {
    GATE_STARTED.notify_one();
    GATE.notified().await;
}

/// Runs `gate`, then returns the step's time.
#[orchestrator]
async fn through_the_gate(ctx: OrchestrationContext) -> Result<i64, OrchestrationError> {
    ctx.call_activity(gate, ()).await?;
    let now = ctx.current_utc_datetime();
    Ok(now
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_does_not_jump_while_an_activity_is_running() {
    let test = test_runtime(None).await;
    let client = test.client();
    let sleeping = client
        .start(sleeper, ("an hour later".to_string(), 1))
        .await
        .expect("starts");
    let gated = client.start(through_the_gate, ()).await.expect("starts");
    // The harness tries to run `sleeping` to its end (its only wait is a one-hour timer) while
    // `gate` holds a worker: it must wait for the activity before it moves the clock.
    let release = async {
        GATE_STARTED.notified().await;
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        GATE.notify_one();
    };
    let (status, ()) = tokio::join!(test.wait_for_completion(&sleeping), release);
    status.expect("completes");
    let gated = test.wait_for_completion(&gated).await.expect("completes");
    // The step after the activity ran before the clock moved.
    assert_eq!(gated.output_as::<i64>().expect("output"), DEFAULT_START_MS);
    assert_eq!(test.elapsed(), HOUR);
    test.shutdown().await;
}

/// Sleeps a day per generation, continuing as new until `days` reaches 0; its children each
/// sleep `hours`.
#[orchestrator]
async fn daily(ctx: OrchestrationContext, days: u32) -> Result<u32, OrchestrationError> {
    if days == 0 {
        return Ok(0);
    }
    let child = ctx.call_sub_orchestrator(sleeper, (format!("day {days}"), 5));
    let nap = ctx.sleep(HOUR * 24);
    // Both were scheduled in this step: the child runs while the day passes.
    child.await?;
    nap.await;
    ctx.continue_as_new(daily, days - 1).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sub_orchestrations_and_continue_as_new_run_through_virtual_days() {
    for cache in CACHES {
        let test = test_runtime(cache).await;
        let id = test.client().start(daily, 3).await.expect("starts");
        let status = test.wait_for_completion(&id).await.expect("completes");
        assert_eq!(
            status.runtime_status,
            RuntimeStatus::Completed,
            "cache {cache:?}"
        );
        // Three generations of a day each; each child's five hours within its day.
        assert_eq!(test.elapsed(), HOUR * 72);
        assert_eq!(
            test.calls_of(note).expect("activity"),
            ["day 3", "day 2", "day 1"]
        );
        test.shutdown().await;
    }
}

static SLOW_GATE: tokio::sync::Notify = tokio::sync::Notify::const_new();
/// Told when the `slow_counter` entity began an operation.
static SLOW_STARTED: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// A counter whose `add` waits for [`SLOW_GATE`] before it counts.
#[entity]
async fn slow_counter(ctx: &mut EntityContext<u64>) -> Result<(), EntityError> {
    if ctx.operation_name() == "add" {
        SLOW_STARTED.notify_one();
        SLOW_GATE.notified().await;
        *ctx.state_mut() += 1;
    }
    Ok(())
}

/// Calls `slow_counter`'s `add`, then returns the step's time.
#[orchestrator]
async fn through_the_entity(ctx: OrchestrationContext) -> Result<i64, OrchestrationError> {
    let id = EntityId::new("slow_counter", "gated");
    ctx.call_entity(&id, Operation::named("add", ())).await?;
    let now = ctx.current_utc_datetime();
    Ok(now
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_does_not_jump_while_an_entity_operation_is_queued_or_running() {
    for cache in CACHES {
        let test = test_runtime(cache).await;
        let client = test.client();
        let sleeping = client
            .start(sleeper, ("an hour later".to_string(), 1))
            .await
            .expect("starts");
        let gated = client.start(through_the_entity, ()).await.expect("starts");
        // The harness tries to run `sleeping` to its end while the entity's operation is
        // running: the clock must wait for it, and for the step its answer wakes.
        let release = async {
            SLOW_STARTED.notified().await;
            for _ in 0..100 {
                tokio::task::yield_now().await;
            }
            SLOW_GATE.notify_one();
        };
        let (status, ()) = tokio::join!(test.wait_for_completion(&sleeping), release);
        status.expect("completes");
        let gated = test.wait_for_completion(&gated).await.expect("completes");
        assert_eq!(
            gated.output_as::<i64>().expect("output"),
            DEFAULT_START_MS,
            "cache {cache:?}: the clock moved while the entity's operation ran"
        );
        assert_eq!(test.elapsed(), HOUR, "cache {cache:?}");
        test.shutdown().await;
    }
}

/// A plain counter for signals from the client.
#[entity]
async fn tally(ctx: &mut EntityContext<u64>) -> Result<(), EntityError> {
    if ctx.operation_name() == "add" {
        *ctx.state_mut() += ctx.input::<u64>()?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_until_idle_returns_after_every_acknowledged_signal_is_applied() {
    for cache in CACHES {
        let test = test_runtime(cache).await;
        let client = test.client();
        let id = EntityId::new("tally", "idle");
        for n in 1..=50u64 {
            client
                .signal_entity(&id, Operation::named("add", n))
                .await
                .expect("the signal is acknowledged");
        }
        test.run_until_idle().await.expect("idle");
        let total: Option<u64> = client.read_entity_state(&id).await.expect("reads");
        assert_eq!(total, Some(50 * 51 / 2), "cache {cache:?}");
        test.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_raised_before_a_scheduled_start_does_not_stop_the_clock() {
    for cache in CACHES {
        let test = test_runtime(cache).await;
        let client = test.client();
        let start_at = std::time::UNIX_EPOCH
            + Duration::from_millis(u64::try_from(test.now_ms() + HOUR_MS).expect("after 1970"));
        let id = client
            .start_with(
                approval,
                (),
                durable_runtime::StartOptions {
                    instance_id: None,
                    scheduled_start: Some(start_at),
                },
            )
            .await
            .expect("scheduled");
        // The event arrives while the instance waits for its start: it is parked until then,
        // which must not count as work in flight, or the clock would never reach the start.
        client
            .raise_event(&id, "approved", "ann")
            .await
            .expect("raised");
        let finished = tokio::time::timeout(Duration::from_secs(10), test.wait_for_completion(&id))
            .await
            .expect("the clock reaches the scheduled start")
            .expect("completes");
        assert_eq!(
            finished.output_as::<String>().expect("output"),
            "approved by ann",
            "cache {cache:?}"
        );
        assert!(
            test.elapsed() >= HOUR,
            "cache {cache:?}: {:?}",
            test.elapsed()
        );
        test.shutdown().await;
    }
}
