//! Durable timers, `when_any` races, and the deterministic helpers on the context.

mod support;

use durable_runtime::HistoryEvent;
use durable_runtime::prelude::*;
use support::{TestStore, WAIT};

#[activity]
async fn echo(text: String) -> String {
    text
}

#[activity]
async fn never_returns() -> String {
    std::future::pending::<()>().await;
    unreachable!()
}

#[orchestrator]
async fn nap(ctx: OrchestrationContext, millis: u64) -> Result<u64, OrchestrationError> {
    let before = ctx.current_utc_datetime();
    ctx.sleep(Duration::from_millis(millis)).await;
    let after = ctx.current_utc_datetime();
    let slept = after
        .duration_since(before)
        .map_err(OrchestrationError::from)?;
    Ok(slept.as_millis() as u64)
}

#[orchestrator]
async fn race_activity_against_timer(
    ctx: OrchestrationContext,
    hang: bool,
) -> Result<String, OrchestrationError> {
    let work = if hang {
        ctx.call_activity(never_returns, ())
    } else {
        ctx.call_activity(echo, "work".to_string())
    };
    let deadline = ctx.sleep(Duration::from_millis(if hang { 50 } else { 3_600_000 }));
    Ok(match ctx.when_any2(work, deadline).await {
        Either::Left(result) => result?,
        Either::Right(()) => "timeout".to_string(),
    })
}

#[orchestrator]
async fn first_of_many(ctx: OrchestrationContext) -> Result<String, OrchestrationError> {
    let tasks: Vec<_> = ["a", "b", "c"]
        .iter()
        .map(|s| ctx.call_activity(echo, s.to_string()))
        .collect();
    let (index, result) = ctx.when_any(tasks).await;
    let winner = result?;
    // The same choice must be made when this step is replayed: prove it by continuing.
    let again = ctx.call_activity(echo, winner.clone()).await?;
    Ok(format!("{index}:{again}"))
}

#[orchestrator]
async fn replay_stable_values(ctx: OrchestrationContext) -> Result<bool, OrchestrationError> {
    let guid = ctx.new_guid().to_string();
    let random = ctx.random_u64().to_string();
    let now = format!("{:?}", ctx.current_utc_datetime());
    // The activity returns what the first run generated; with the cache off, this code runs
    // again in the next step and must generate the same values.
    let echoed = ctx
        .call_activity(echo, format!("{guid} {random} {now}"))
        .await?;
    let second_guid = ctx.new_guid().to_string();
    Ok(echoed == format!("{guid} {random} {now}") && second_guid != guid)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_timer_fires_and_is_recorded() {
    let store = TestStore::new();
    let (runtime, client) = store.start().await;
    let id = client.start(nap, 40).await.expect("start");
    let status = client
        .wait_for_completion(&id, WAIT)
        .await
        .expect("finishes");
    let slept: u64 = status.output_as().expect("output");
    assert!(slept >= 40, "slept {slept} ms");
    let history = support::history(&client, &id).await;
    assert!(
        history
            .iter()
            .any(|r| matches!(r.event, HistoryEvent::TimerCreated { task_id: 0, .. }))
    );
    assert!(
        history
            .iter()
            .any(|r| matches!(r.event, HistoryEvent::TimerFired { task_id: 0 }))
    );
    runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timer_survives_a_restart() {
    let store = TestStore::new();
    let (runtime, client) = store.start().await;
    let id = client.start(nap, 200).await.expect("start");
    // Stop at once: the timer is armed in the store, not fired.
    drop(client);
    runtime.shutdown().await;
    let (runtime, client) = store.start().await;
    let status = client
        .wait_for_completion(&id, WAIT)
        .await
        .expect("finishes");
    assert!(status.output_as::<u64>().expect("output") >= 200);
    runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_any_returns_the_first_finished() {
    let store = TestStore::new();
    let (runtime, client) = store
        .start_with(|b| b.shutdown_timeout(Duration::from_millis(50)))
        .await;
    let fast = client
        .start(race_activity_against_timer, false)
        .await
        .expect("start");
    let slow = client
        .start(race_activity_against_timer, true)
        .await
        .expect("start");
    let fast = client
        .wait_for_completion(&fast, WAIT)
        .await
        .expect("finishes");
    assert_eq!(fast.output_as::<String>().expect("output"), "work");
    let slow = client
        .wait_for_completion(&slow, WAIT)
        .await
        .expect("finishes");
    assert_eq!(slow.output_as::<String>().expect("output"), "timeout");
    drop(client);
    runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn races_and_generated_values_replay_identically() {
    let store = TestStore::new();
    let (runtime, client) = store.start_with(|b| b.cache_capacity(0)).await;
    let race = client.start(first_of_many, ()).await.expect("start");
    let values = client.start(replay_stable_values, ()).await.expect("start");
    let race = client
        .wait_for_completion(&race, WAIT)
        .await
        .expect("finishes");
    let output: String = race.output_as().expect("completes without non-determinism");
    let (index, winner) = output.split_once(':').expect("index:winner");
    assert_eq!(
        ["a", "b", "c"][index.parse::<usize>().expect("index")],
        winner
    );
    let values = client
        .wait_for_completion(&values, WAIT)
        .await
        .expect("finishes");
    assert!(
        values.output_as::<bool>().expect("output"),
        "values changed on replay"
    );
    runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timer_of_an_instance_finished_in_the_store_is_consumed_not_retried() {
    let store = TestStore::new();
    let (runtime, client) = store.start().await;
    let id = client.start(nap, 3_600_000).await.expect("start");
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let status = client.get_status(&id).await.expect("reads");
        if status.is_some_and(|s| s.runtime_status == RuntimeStatus::Running) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the first step never ran"
        );
        tokio::task::yield_now().await;
    }
    drop(client);
    runtime.shutdown().await;
    // Finished in the store (as a terminate would), its timer left armed and now due.
    let conn = rusqlite::Connection::open(store.path()).expect("open");
    conn.execute(
        "UPDATE instances SET status = 'Terminated' WHERE instance_id = ?1",
        [&id],
    )
    .expect("terminates");
    let due = conn
        .execute(
            "UPDATE timers SET fire_at_ms = 0 WHERE instance_id = ?1",
            [&id],
        )
        .expect("makes the timer due");
    assert_eq!(due, 1);
    drop(conn);
    // The timer fires; the step it triggers is fenced off (the instance is finished), so its
    // message is consumed instead of retried forever.
    let (runtime, client) = store.start().await;
    let path = store.path();
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let conn = rusqlite::Connection::open(&path).expect("open");
        let left: i64 = conn
            .query_row(
                "SELECT (SELECT COUNT(*) FROM messages) + (SELECT COUNT(*) FROM timers)",
                [],
                |row| row.get(0),
            )
            .expect("counts");
        if left == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the fired timer was never consumed"
        );
        tokio::task::yield_now().await;
    }
    let status = client
        .get_status(&id)
        .await
        .expect("reads")
        .expect("exists");
    assert_eq!(status.runtime_status, RuntimeStatus::Terminated);
    runtime.shutdown().await;
}
