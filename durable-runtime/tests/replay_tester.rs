//! The replay tester (`durable_runtime::testing::replay_history`): a history recorded by one
//! version of an orchestrator, replayed against changed code. Compatible changes pass;
//! every incompatible one fails, naming the event, what history recorded and what the code
//! does now.

use durable_runtime::prelude::*;
use durable_runtime::testing::{
    Divergence, ReplayReport, TestError, TestRuntime, load_history, replay_history, save_history,
};
use durable_runtime::{HistoryEvent, HistoryRecord};

#[activity]
async fn say_hello(city: String) -> String {
    format!("Hello {city}!")
}

#[activity]
async fn say_goodbye(city: String) -> String {
    format!("Goodbye {city}!")
}

/// The recorded version.
#[orchestrator]
async fn greet(ctx: OrchestrationContext) -> Result<Vec<String>, OrchestrationError> {
    let tokyo = ctx.call_activity(say_hello, "Tokyo".to_string()).await?;
    let seattle = ctx.call_activity(say_hello, "Seattle".to_string()).await?;
    let london = ctx.call_activity(say_goodbye, "London".to_string()).await?;
    Ok(vec![tokyo, seattle, london])
}

/// A log line added and variables renamed: compatible.
#[orchestrator]
async fn greet_logged(ctx: OrchestrationContext) -> Result<Vec<String>, OrchestrationError> {
    durable_runtime::info!(ctx, "greeting three cities");
    let first = ctx.call_activity(say_hello, "Tokyo".to_string()).await?;
    let second = ctx.call_activity(say_hello, "Seattle".to_string()).await?;
    durable_runtime::info!(ctx, "two done");
    let third = ctx.call_activity(say_goodbye, "London".to_string()).await?;
    Ok(vec![first, second, third])
}

/// An activity inserted first.
#[orchestrator]
async fn greet_inserted(ctx: OrchestrationContext) -> Result<Vec<String>, OrchestrationError> {
    let paris = ctx.call_activity(say_goodbye, "Paris".to_string()).await?;
    let tokyo = ctx.call_activity(say_hello, "Tokyo".to_string()).await?;
    let seattle = ctx.call_activity(say_hello, "Seattle".to_string()).await?;
    let london = ctx.call_activity(say_goodbye, "London".to_string()).await?;
    Ok(vec![paris, tokyo, seattle, london])
}

/// The middle activity removed.
#[orchestrator]
async fn greet_removed(ctx: OrchestrationContext) -> Result<Vec<String>, OrchestrationError> {
    let tokyo = ctx.call_activity(say_hello, "Tokyo".to_string()).await?;
    let london = ctx.call_activity(say_goodbye, "London".to_string()).await?;
    Ok(vec![tokyo, london])
}

/// The last activity removed.
#[orchestrator]
async fn greet_truncated(ctx: OrchestrationContext) -> Result<Vec<String>, OrchestrationError> {
    let tokyo = ctx.call_activity(say_hello, "Tokyo".to_string()).await?;
    let seattle = ctx.call_activity(say_hello, "Seattle".to_string()).await?;
    Ok(vec![tokyo, seattle])
}

/// The first activity renamed (another activity called in its place).
#[orchestrator]
async fn greet_renamed(ctx: OrchestrationContext) -> Result<Vec<String>, OrchestrationError> {
    let tokyo = ctx.call_activity(say_goodbye, "Tokyo".to_string()).await?;
    let seattle = ctx.call_activity(say_hello, "Seattle".to_string()).await?;
    let london = ctx.call_activity(say_goodbye, "London".to_string()).await?;
    Ok(vec![tokyo, seattle, london])
}

/// The last two activities swapped.
#[orchestrator]
async fn greet_reordered(ctx: OrchestrationContext) -> Result<Vec<String>, OrchestrationError> {
    let tokyo = ctx.call_activity(say_hello, "Tokyo".to_string()).await?;
    let london = ctx.call_activity(say_goodbye, "London".to_string()).await?;
    let seattle = ctx.call_activity(say_hello, "Seattle".to_string()).await?;
    Ok(vec![tokyo, seattle, london])
}

/// A timer added between two activities.
#[orchestrator]
async fn greet_paused(ctx: OrchestrationContext) -> Result<Vec<String>, OrchestrationError> {
    let tokyo = ctx.call_activity(say_hello, "Tokyo".to_string()).await?;
    ctx.sleep(Duration::from_secs(60)).await;
    let seattle = ctx.call_activity(say_hello, "Seattle".to_string()).await?;
    let london = ctx.call_activity(say_goodbye, "London".to_string()).await?;
    Ok(vec![tokyo, seattle, london])
}

/// A timer added after the last activity.
#[orchestrator]
async fn greet_lingering(ctx: OrchestrationContext) -> Result<Vec<String>, OrchestrationError> {
    let tokyo = ctx.call_activity(say_hello, "Tokyo".to_string()).await?;
    let seattle = ctx.call_activity(say_hello, "Seattle".to_string()).await?;
    let london = ctx.call_activity(say_goodbye, "London".to_string()).await?;
    ctx.sleep(Duration::from_secs(60)).await;
    Ok(vec![tokyo, seattle, london])
}

/// Records a completed history of `greet`.
async fn recorded_history() -> Vec<HistoryRecord> {
    let test = TestRuntime::new().await.expect("starts");
    let id = test.client().start(greet, ()).await.expect("starts");
    let status = test.wait_for_completion(&id).await.expect("completes");
    assert_eq!(status.runtime_status, RuntimeStatus::Completed);
    test.shutdown().await;
    status.history.expect("history")
}

/// The index of the `TaskScheduled` of `task`.
fn scheduled_at(history: &[HistoryRecord], task: u64) -> usize {
    history
        .iter()
        .position(
            |r| matches!(r.event, HistoryEvent::TaskScheduled { task_id, .. } if task_id == task),
        )
        .expect("scheduled")
}

fn diverged(report: ReplayReport) -> Divergence {
    match report {
        ReplayReport::Diverged(divergence) => divergence,
        ReplayReport::Compatible => panic!("expected a divergence"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compatible_changes_replay_the_recorded_history() {
    let history = recorded_history().await;
    assert_eq!(
        replay_history(greet, &history).expect("replays"),
        ReplayReport::Compatible
    );
    assert_eq!(
        replay_history(greet_logged, &history).expect("replays"),
        ReplayReport::Compatible
    );
    // A history cut in the middle (an instance in flight) replays too.
    let in_flight = &history[..scheduled_at(&history, 1) + 1];
    assert!(
        replay_history(greet, in_flight)
            .expect("replays")
            .is_compatible()
    );
    assert!(
        replay_history(greet_logged, in_flight)
            .expect("replays")
            .is_compatible()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incompatible_changes_name_the_event_the_recorded_action_and_the_new_one() {
    let history = recorded_history().await;

    let inserted = diverged(replay_history(greet_inserted, &history).expect("replays"));
    assert_eq!(inserted.event_index, scheduled_at(&history, 0));
    assert_eq!(inserted.recorded, "TaskScheduled 'say_hello'");
    assert_eq!(inserted.new, "schedules activity 'say_goodbye'");

    let removed = diverged(replay_history(greet_removed, &history).expect("replays"));
    assert_eq!(removed.event_index, scheduled_at(&history, 1));
    assert_eq!(removed.recorded, "TaskScheduled 'say_hello'");
    assert_eq!(removed.new, "schedules activity 'say_goodbye'");

    let truncated = diverged(replay_history(greet_truncated, &history).expect("replays"));
    assert_eq!(truncated.event_index, scheduled_at(&history, 2));
    assert_eq!(truncated.recorded, "TaskScheduled 'say_goodbye'");
    assert_eq!(truncated.new, "returns without scheduling it");

    let renamed = diverged(replay_history(greet_renamed, &history).expect("replays"));
    assert_eq!(renamed.event_index, scheduled_at(&history, 0));
    assert_eq!(renamed.new, "schedules activity 'say_goodbye'");

    let reordered = diverged(replay_history(greet_reordered, &history).expect("replays"));
    assert_eq!(reordered.event_index, scheduled_at(&history, 1));
    assert_eq!(reordered.recorded, "TaskScheduled 'say_hello'");
    assert_eq!(reordered.new, "schedules activity 'say_goodbye'");

    let paused = diverged(replay_history(greet_paused, &history).expect("replays"));
    assert_eq!(paused.event_index, scheduled_at(&history, 1));
    assert_eq!(paused.recorded, "TaskScheduled 'say_hello'");
    assert_eq!(paused.new, "creates a timer");

    let lingering = diverged(replay_history(greet_lingering, &history).expect("replays"));
    assert_eq!(lingering.event_index, history.len() - 1);
    assert_eq!(lingering.recorded, "ExecutionCompleted");
    assert_eq!(lingering.new, "creates a timer instead");
    // The description names all three, for a failing test's output.
    let described = lingering.to_string();
    assert!(
        described.contains(&format!("event {}", history.len() - 1))
            && described.contains("ExecutionCompleted")
            && described.contains("creates a timer"),
        "{described}"
    );
    assert!(
        replay_history(greet_lingering, &history)
            .expect("replays")
            .into_result()
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_history_round_trips_through_a_fixture_file() {
    let history = recorded_history().await;
    let dir = tempfile::tempdir().expect("a directory");
    let path = dir.path().join("greet.json");
    save_history(&path, &history).expect("saved");
    let loaded = load_history(&path).expect("loaded");
    assert_eq!(loaded, history);
    assert!(
        replay_history(greet, &loaded)
            .expect("replays")
            .is_compatible()
    );
}

#[test]
fn bad_fixtures_and_histories_are_typed_errors() {
    let dir = tempfile::tempdir().expect("a directory");
    let missing = load_history(dir.path().join("missing.json"));
    assert!(
        matches!(missing, Err(TestError::Fixture { .. })),
        "{missing:?}"
    );
    let path = dir.path().join("broken.json");
    std::fs::write(&path, "{\"not\": \"a history\"}").expect("written");
    assert!(matches!(
        load_history(&path),
        Err(TestError::Fixture { .. })
    ));
    // A history that does not start a run.
    let headless = vec![HistoryRecord {
        seq: 0,
        timestamp_ms: 0,
        event: HistoryEvent::OrchestratorStarted,
    }];
    assert!(matches!(
        replay_history(greet, &headless),
        Err(TestError::Replay(_))
    ));
    assert!(matches!(
        replay_history(greet, &[]),
        Err(TestError::Replay(_))
    ));
    async fn plain(_ctx: OrchestrationContext) -> Result<(), OrchestrationError> {
        Ok(())
    }
    assert!(matches!(
        replay_history(plain, &headless),
        Err(TestError::Runtime(
            durable_runtime::Error::NotAnOrchestrator(_)
        ))
    ));
}

/// Waits a day for an answer.
#[orchestrator]
async fn ask(ctx: OrchestrationContext) -> Result<String, OrchestrationError> {
    let answer = ctx.wait_for_event::<String>("answer");
    let deadline = ctx.sleep(Duration::from_secs(24 * 3600));
    Ok(match ctx.when_any2(answer, deadline).await {
        Either::Left(answer) => answer?,
        Either::Right(()) => ctx.call_activity(say_goodbye, "nobody".to_string()).await?,
    })
}

/// The deadline now comes first: the timer takes the task id the event wait had.
#[orchestrator]
async fn ask_deadline_first(ctx: OrchestrationContext) -> Result<String, OrchestrationError> {
    let deadline = ctx.sleep(Duration::from_secs(24 * 3600));
    let answer = ctx.wait_for_event::<String>("answer");
    Ok(match ctx.when_any2(answer, deadline).await {
        Either::Left(answer) => answer?,
        Either::Right(()) => ctx.call_activity(say_goodbye, "nobody".to_string()).await?,
    })
}

/// Fails where `ask` went on.
#[orchestrator]
async fn ask_then_fail(ctx: OrchestrationContext) -> Result<String, OrchestrationError> {
    let answer = ctx.wait_for_event::<String>("answer");
    let deadline = ctx.sleep(Duration::from_secs(24 * 3600));
    match ctx.when_any2(answer, deadline).await {
        Either::Left(answer) => Ok(answer?),
        Either::Right(()) => Err(OrchestrationError::new("nobody answered")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn histories_of_events_and_timers_replay_on_both_sides_of_the_race() {
    let test = TestRuntime::new().await.expect("starts");
    let client = test.client();
    let answered = client.start(ask, ()).await.expect("starts");
    let timed_out = client.start(ask, ()).await.expect("starts");
    client
        .raise_event(&answered, "answer", "yes")
        .await
        .expect("raised");
    let answered = test
        .wait_for_completion(&answered)
        .await
        .expect("completes");
    let timed_out = test
        .wait_for_completion(&timed_out)
        .await
        .expect("completes");
    assert_eq!(answered.output_as::<String>().expect("output"), "yes");
    test.shutdown().await;
    let answered = answered.history.expect("history");
    let timed_out = timed_out.history.expect("history");
    for history in [&answered, &timed_out] {
        assert!(
            replay_history(ask, history)
                .expect("replays")
                .is_compatible()
        );
        // Task 0 was the wait for the event (not recorded), task 1 the timer.
        let swapped = diverged(replay_history(ask_deadline_first, history).expect("replays"));
        assert_eq!(
            swapped.recorded,
            "no scheduled task (a wait for an event, say)"
        );
        assert_eq!(swapped.new, "creates a timer");
        let timer = history
            .iter()
            .position(|r| matches!(r.event, HistoryEvent::TimerCreated { .. }))
            .expect("a timer");
        assert_eq!(swapped.event_index, timer);
    }
    // Only the timed-out run reaches the code that changed.
    assert!(
        replay_history(ask_then_fail, &answered)
            .expect("replays")
            .is_compatible()
    );
    let failing = diverged(replay_history(ask_then_fail, &timed_out).expect("replays"));
    let goodbye = timed_out
        .iter()
        .position(|r| matches!(&r.event, HistoryEvent::TaskScheduled { name, .. } if name == "say_goodbye"))
        .expect("scheduled");
    assert_eq!(failing.event_index, goodbye);
    assert_eq!(failing.recorded, "TaskScheduled 'say_goodbye'");
    assert_eq!(failing.new, "returns without scheduling it");
}

/// Version 1 of an order process.
#[orchestrator(name = "order", version = "1")]
async fn order_v1(ctx: OrchestrationContext) -> Result<String, OrchestrationError> {
    Ok(ctx.call_activity(say_hello, "v1".to_string()).await?)
}

/// Version 2, beside it: instances of version 1 never run this code.
#[orchestrator(name = "order", version = "2")]
async fn order_v2(ctx: OrchestrationContext) -> Result<String, OrchestrationError> {
    Ok(ctx.call_activity(say_hello, "v1".to_string()).await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_history_of_another_version_is_not_reported_compatible() {
    let test = TestRuntime::new().await.expect("starts");
    let id = test.client().start(order_v1, ()).await.expect("starts");
    let history = test
        .wait_for_completion(&id)
        .await
        .expect("completes")
        .history
        .expect("history");
    test.shutdown().await;
    assert!(
        replay_history(order_v1, &history)
            .expect("replays")
            .is_compatible()
    );
    // The same decisions, but production would never replay a version-1 instance on it.
    match replay_history(order_v2, &history) {
        Err(TestError::Replay(message)) => {
            assert!(
                message.contains("version '1'") && message.contains("version '2'"),
                "{message}"
            );
        }
        other => panic!("expected a version mismatch, got {other:?}"),
    }
}

/// Completes: what history records.
#[orchestrator]
async fn one_round(ctx: OrchestrationContext) -> Result<String, OrchestrationError> {
    Ok(ctx.call_activity(say_hello, "round".to_string()).await?)
}

/// The same round, then continues as new where history completed.
#[orchestrator]
async fn one_round_forever(ctx: OrchestrationContext) -> Result<String, OrchestrationError> {
    ctx.call_activity(say_hello, "round".to_string()).await?;
    ctx.continue_as_new(one_round_forever, ()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continuing_as_new_where_history_completed_diverges_at_the_end() {
    let test = TestRuntime::new().await.expect("starts");
    let id = test.client().start(one_round, ()).await.expect("starts");
    let history = test
        .wait_for_completion(&id)
        .await
        .expect("completes")
        .history
        .expect("history");
    test.shutdown().await;
    let divergence = diverged(replay_history(one_round_forever, &history).expect("replays"));
    assert_eq!(divergence.event_index, history.len() - 1, "{divergence}");
    assert_eq!(divergence.recorded, "ExecutionCompleted", "{divergence}");
    assert!(divergence.new.contains("continues as new"), "{divergence}");
}

#[derive(Default, serde::Serialize, serde::Deserialize)]
struct Tally {
    count: u64,
}

#[entity]
impl Tally {
    pub fn add(&mut self, n: u64) -> u64 {
        self.count += n;
        self.count
    }

    pub fn bump(&mut self, n: u64) -> u64 {
        self.count += 2 * n;
        self.count
    }
}

/// Calls the entity's `add`: what history records.
#[orchestrator]
async fn tallying(ctx: OrchestrationContext) -> Result<u64, OrchestrationError> {
    let id = Tally::entity_id("replayed");
    let first = ctx.call_activity(say_hello, "first".to_string()).await?;
    let _ = first;
    Ok(ctx.call_entity(&id, Tally::add_op(1)).await?)
}

/// Calls another operation in its place.
#[orchestrator]
async fn tallying_renamed(ctx: OrchestrationContext) -> Result<u64, OrchestrationError> {
    let id = Tally::entity_id("replayed");
    let first = ctx.call_activity(say_hello, "first".to_string()).await?;
    let _ = first;
    Ok(ctx.call_entity(&id, Tally::bump_op(1)).await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renamed_entity_operation_points_at_its_call() {
    let test = TestRuntime::new().await.expect("starts");
    let id = test.client().start(tallying, ()).await.expect("starts");
    let history = test
        .wait_for_completion(&id)
        .await
        .expect("completes")
        .history
        .expect("history");
    test.shutdown().await;
    let called = history
        .iter()
        .position(|r| matches!(r.event, HistoryEvent::EntityOperationCalled(_)))
        .expect("the call is recorded");
    let divergence = diverged(replay_history(tallying_renamed, &history).expect("replays"));
    assert_eq!(divergence.event_index, called, "{divergence}");
}
