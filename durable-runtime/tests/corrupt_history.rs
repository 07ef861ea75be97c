//! A history row that decodes but carries a huge task id (one flipped digit) fails only its own
//! instance. Replay once sized a vector by the task id: the failed allocation aborted the
//! process on every start (signal 6 here if that comes back).

mod support;

use durable_runtime::prelude::*;
use support::{TestStore, WAIT};

#[orchestrator]
async fn waits_with_deadline(ctx: OrchestrationContext) -> Result<String, OrchestrationError> {
    let go = ctx.wait_for_event::<String>("go");
    let deadline = ctx.sleep(Duration::from_secs(3600));
    Ok(match ctx.when_any2(go, deadline).await {
        Either::Left(v) => v?,
        Either::Right(()) => "late".into(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_task_id_in_history_fails_only_its_instance() {
    let store = TestStore::new();
    let (runtime, client) = store.start().await;
    let id = client.start(waits_with_deadline, ()).await.expect("start");
    support::until_recorded(&client, &id, "TimerCreated", 1, |e| {
        matches!(e, durable_runtime::HistoryEvent::TimerCreated { .. })
    })
    .await;
    drop(client);
    runtime.shutdown().await;

    let conn = rusqlite::Connection::open(store.path()).expect("opens");
    // 2^45: valid JSON, a valid u64; the event decodes.
    let changed = conn
        .execute(
            "UPDATE history SET event = replace(event, '\"task_id\":1', '\"task_id\":35184372088832')
             WHERE instance_id = ?1 AND event LIKE '%TimerCreated%'",
            [&id],
        )
        .expect("edit the row");
    assert_eq!(changed, 1, "one TimerCreated row edited");
    drop(conn);

    let (runtime, client) = store.restart(|b| b).await;
    // Any message makes the worker replay the history.
    client.raise_event(&id, "go", "now").await.expect("raised");
    let status = client
        .wait_for_completion(&id, WAIT)
        .await
        .expect("finishes");
    assert_eq!(status.runtime_status, RuntimeStatus::Failed, "{status:?}");
    runtime.shutdown().await;
}
