//! Large payloads (over the embedded store's 64 KiB mark, where values are written in place as
//! blobs and large history events leave the history B-tree): every place a payload is stored
//! (an instance's input and output, a start message, an activity's input and result, an event,
//! history, an entity operation's input) gives back exactly what was written, after a restart
//! too, when read from the store rather than from memory; and a purge takes the out-of-line
//! rows with the instance.

mod support;

use durable_runtime::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};
use support::{TestStore, WAIT};

/// One MiB: well over the store's 64 KiB mark, well under the default payload limit.
const MIB: usize = 1024 * 1024;

/// While set, `shout` never returns for a text starting with `hold:`, and says so: the worker
/// process is killed there, with the activity still queued in the store, and the next runtime
/// recovers it from its row.
static HOLD: AtomicBool = AtomicBool::new(true);

#[activity]
async fn shout(text: String) -> String {
    if text.starts_with("hold:") && HOLD.load(Ordering::SeqCst) {
        println!("ran shout");
        std::future::pending::<()>().await;
    }
    text.to_uppercase()
}

#[orchestrator]
async fn shout_then_wait(
    ctx: OrchestrationContext,
    text: String,
) -> Result<String, OrchestrationError> {
    let loud = ctx.call_activity(shout, text).await?;
    let answer: String = ctx.wait_for_event("answer").await?;
    Ok(loud + &answer)
}

fn on_sqlite(store: &TestStore) -> bool {
    store.postgres.is_none()
}

/// A client on the embedded store with no runtime running: its writes wait in the store.
async fn offline_client(store: &TestStore) -> Client {
    Runtime::builder()
        .sqlite(store.path())
        .open_client()
        .await
        .expect("opens")
}

fn held_input() -> String {
    format!("hold:{}", "abcdefghij".repeat(MIB / 10))
}

/// The worker process of the next test: starts the instance and is killed once its activity
/// runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a worker process of large_payloads_come_back_whole_from_every_table_and_go_with_a_purge"]
async fn large_payloads_worker() {
    let Ok(path) = std::env::var("DURABLE_LARGE_PAYLOADS_STORE") else {
        return;
    };
    let runtime = Runtime::builder()
        .sqlite(path)
        .start()
        .await
        .expect("starts");
    runtime
        .client()
        .start_by_name("shout_then_wait", Some("big".into()), held_input())
        .await
        .expect("starts");
    std::future::pending::<()>().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_payloads_come_back_whole_from_every_table_and_go_with_a_purge() {
    let store = TestStore::new();
    if !on_sqlite(&store) {
        // The worker process runs on the embedded store.
        return;
    }
    let input = held_input();
    let answer: String = "z".repeat(MIB + 7);
    let id = "big";

    // A worker process records the start and the scheduled activity, and is killed while the
    // activity runs: its row (with its large input) stays queued.
    let mut worker = support::spawn_worker(
        "large_payloads_worker",
        &[("DURABLE_LARGE_PAYLOADS_STORE", store.path().as_os_str())],
    );
    let incarnation = support::watch_worker(&mut worker, Some(1));
    assert!(incarnation.killed, "the worker reached the activity");

    {
        // The large values are blobs in their rows, and the large events left history.
        let typeof_input = support::query_text(
            &store,
            &format!("SELECT typeof(input) FROM instance_inputs WHERE instance_id = '{id}'"),
        );
        assert_eq!(typeof_input.as_deref(), Some("blob"));
        let typeof_activity_input = support::query_text(
            &store,
            &format!("SELECT typeof(input) FROM activities WHERE instance_id = '{id}'"),
        );
        assert_eq!(typeof_activity_input.as_deref(), Some("blob"));
        assert!(support::count_rows(&store, "history_large", id) >= 2);
    }

    // The next runtime replays from the store, recovers the activity from its row, and runs
    // it; the event is raised with a large payload.
    HOLD.store(false, Ordering::SeqCst);
    let (runtime, client) = store.restart(|builder| builder).await;
    support::until_recorded(&client, id, "the activity completes", 1, |event| {
        matches!(event, durable_runtime::HistoryEvent::TaskCompleted { .. })
    })
    .await;
    client
        .raise_event(id, "answer", answer.clone())
        .await
        .expect("raises");
    let done = client
        .wait_for_completion(id, WAIT)
        .await
        .expect("completes");
    assert_eq!(done.runtime_status, RuntimeStatus::Completed);
    let output: String = done.output_as().expect("decodes");
    assert_eq!(output, input.to_uppercase() + &answer);
    assert_eq!(done.input.decode::<String>().expect("decodes"), input);

    // A cold read of the whole history gives back every large event whole.
    let history = support::history(&client, id).await;
    let payload_lengths: Vec<usize> = history
        .iter()
        .filter_map(|record| match &record.event {
            durable_runtime::HistoryEvent::TaskScheduled { input, .. }
            | durable_runtime::HistoryEvent::EventRaised { input, .. } => {
                Some(input.as_str().len())
            }
            durable_runtime::HistoryEvent::TaskCompleted { result, .. }
            | durable_runtime::HistoryEvent::ExecutionCompleted { result } => {
                Some(result.as_str().len())
            }
            _ => None,
        })
        .collect();
    // Scheduled input, result, event, output: JSON strings, two quotes each.
    assert_eq!(
        payload_lengths,
        vec![
            input.len() + 2,
            input.len() + 2,
            answer.len() + 2,
            output.len() + 2
        ]
    );
    drop(client);
    runtime.shutdown().await;

    // The same, from a runtime that never held the instance in memory.
    let (runtime, client) = store.restart(|builder| builder).await;
    let again = client.get_status(id).await.expect("reads").expect("exists");
    assert_eq!(again.output_as::<String>().expect("decodes"), output);
    client.purge(id).await.expect("purges");
    {
        assert_eq!(support::count_rows(&store, "history_large", id), 0);
        assert_eq!(support::count_rows(&store, "history", id), 0);
        assert_eq!(support::count_rows(&store, "instance_inputs", id), 0);
        assert_eq!(support::count_rows(&store, "instance_outputs", id), 0);
    }
    runtime.shutdown().await;
}

/// A large start message and a large event written by a client with no runtime running are read
/// back from their rows by the runtime that opens the store next.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_messages_written_offline_are_recovered_whole() {
    let store = TestStore::new();
    if !on_sqlite(&store) {
        // `open_client` is the embedded store's offline mode.
        return;
    }
    let input: String = "q".repeat(MIB);
    let answer: String = "r".repeat(2 * MIB);
    let offline = offline_client(&store).await;
    offline
        .start_by_name("shout_then_wait", Some("offline".into()), input.clone())
        .await
        .expect("starts");
    offline
        .raise_event("offline", "answer", answer.clone())
        .await
        .expect("raises");
    let typeof_messages = support::query_text(
        &store,
        "SELECT group_concat(typeof(event)) FROM messages WHERE instance_id = 'offline'",
    );
    assert_eq!(typeof_messages.as_deref(), Some("blob,blob"));
    drop(offline);

    let (runtime, client) = store.restart(|builder| builder).await;
    let done = client
        .wait_for_completion("offline", WAIT)
        .await
        .expect("completes");
    assert_eq!(done.runtime_status, RuntimeStatus::Completed);
    assert_eq!(
        done.output_as::<String>().expect("decodes"),
        input.to_uppercase() + &answer
    );
    drop(client);
    runtime.shutdown().await;

    // A large event whose out-of-line row is gone is reported as corruption of that event,
    // not read as something else.
    support::exec_sql(&store, "DELETE FROM history_large");
    let (runtime, client) = store.restart(|builder| builder).await;
    let err = client
        .get_status_with_history("offline")
        .await
        .expect_err("the history is corrupt");
    let message = err.to_string();
    assert!(
        message.contains("corrupt history row offline#") && message.contains("out of line"),
        "{message}"
    );
    drop(client);
    runtime.shutdown().await;
}

#[orchestrator]
async fn echo(_ctx: OrchestrationContext, text: String) -> String {
    text
}

/// A version 9 file (before `history_large`) is migrated when opened: its instances are kept,
/// and large events then leave the history B-tree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_9_file_is_migrated_and_takes_large_events() {
    let store = TestStore::new();
    if !on_sqlite(&store) {
        return;
    }
    let (runtime, client) = store.start().await;
    let small = client.start(echo, "small".into()).await.expect("starts");
    client
        .wait_for_completion(&small, WAIT)
        .await
        .expect("completes");
    drop(client);
    runtime.shutdown().await;
    let _ = store.reopen().await;
    // What version 9 had: the same tables without `history_large`.
    support::exec_sql(
        &store,
        "DROP TRIGGER history_large_goes_with_its_row; DROP TABLE history_large;
         PRAGMA user_version = 9;",
    );

    let (runtime, client) = store.restart(|builder| builder).await;
    let kept = client
        .get_status(&small)
        .await
        .expect("reads")
        .expect("kept");
    assert_eq!(kept.output_as::<String>().expect("decodes"), "small");
    let text = "m".repeat(MIB);
    let large = client.start(echo, text.clone()).await.expect("starts");
    let done = client
        .wait_for_completion(&large, WAIT)
        .await
        .expect("completes");
    assert_eq!(done.output_as::<String>().expect("decodes"), text);
    assert!(support::count_rows(&store, "history_large", &large) >= 2);
    let version = support::query_text(
        &store,
        "SELECT CAST(user_version AS TEXT) FROM pragma_user_version",
    );
    assert_eq!(version.as_deref(), Some("10"));
    drop(client);
    runtime.shutdown().await;
}

/// Keeps the length of the last text it was given.
#[entity]
async fn measure(ctx: &mut EntityContext<u64>) -> Result<(), EntityError> {
    let text: String = ctx.input()?;
    *ctx.state_mut() = text.len() as u64;
    Ok(())
}

/// A large entity signal written by a client with no runtime running is queued as a blob and
/// read back whole by the runtime that opens the store next.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_entity_signal_is_queued_and_applied_whole() {
    let store = TestStore::new();
    if !on_sqlite(&store) {
        return;
    }
    let id = EntityId::new("measure", "one");
    let text = "e".repeat(MIB + 3);
    let offline = offline_client(&store).await;
    offline
        .signal_entity_by_name(&id, "measure", text.clone())
        .await
        .expect("durable");
    let queued = support::query_text(
        &store,
        "SELECT typeof(input) FROM entity_messages WHERE entity_id = '@measure@one'",
    );
    assert_eq!(queued.as_deref(), Some("blob"));
    drop(offline);

    let (runtime, client) = store.restart(|builder| builder).await;
    let measured =
        support::entities::until_state::<u64>(&client, &id, |state| state.is_some()).await;
    assert_eq!(measured, Some(text.len() as u64));
    drop(client);
    runtime.shutdown().await;
}
