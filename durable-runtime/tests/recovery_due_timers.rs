//! Startup recovery hands over timers beside the activity backlog, not behind it: an instance
//! that only waits for a due timer resumes even while thousands of recovered activities wait
//! for hung activity slots.

mod support;

use durable_runtime::prelude::*;
use support::TestStore;

#[activity]
async fn never_returns(_n: u32) -> u32 {
    std::future::pending::<u32>().await
}

#[orchestrator]
async fn short_nap(ctx: OrchestrationContext) -> Result<String, OrchestrationError> {
    ctx.sleep(Duration::from_millis(300)).await;
    Ok("woke".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_due_timer_is_not_held_back_by_an_activity_backlog() {
    let store = TestStore::new();
    let (runtime, client) = store.start().await;
    let id = client.start(short_nap, ()).await.expect("start");
    support::until_recorded(&client, &id, "TimerCreated", 1, |e| {
        matches!(e, durable_runtime::HistoryEvent::TimerCreated { .. })
    })
    .await;
    drop(client);
    runtime.shutdown().await;

    // A backlog of 6,000 activities left by the previous process (another instance's fan-out).
    let conn = rusqlite::Connection::open(store.path()).expect("opens");
    conn.execute_batch("BEGIN").expect("the test setup holds");
    let rows: i64 = 6_000;
    for n in 0..rows {
        conn.execute(
            "INSERT INTO activities (instance_id, task_id, name, input) VALUES ('fan-out', ?1, 'never_returns', ?2)",
            rusqlite::params![n, n.to_string()],
        )
        .expect("insert");
    }
    conn.execute_batch("COMMIT").expect("the test setup holds");
    drop(conn);

    let (runtime, client) = store
        .restart(|b| {
            b.activity_concurrency(4)
                .shutdown_timeout(Duration::from_millis(200))
        })
        .await;
    let status = client
        .wait_for_completion(&id, Duration::from_secs(10))
        .await;
    runtime.shutdown().await;
    let status = status.expect("the 300 ms timer was due long ago; its instance must resume");
    assert_eq!(
        status.output_as::<String>().expect("the test setup holds"),
        "woke"
    );
}
