//! Bad input and failing user code give clear errors; nothing panics, nothing is lost (R5).

mod support;

use durable_runtime::prelude::*;
use durable_runtime::{Error, FailureDetails};
use support::{TestStore, WAIT};

#[activity]
async fn explode(n: u32) -> u32 {
    if n > 0 {
        panic!("activity blew up on {n}");
    }
    n
}

#[activity]
async fn refuse(reason: String) -> Result<(), ActivityError> {
    Err(ActivityError::new(format!("refused: {reason}")).with_details("policy 12"))
}

#[activity]
async fn echo(n: u32) -> u32 {
    n
}

/// Calls a panicking activity and compensates.
#[orchestrator]
async fn compensating(ctx: OrchestrationContext) -> Result<String, OrchestrationError> {
    match ctx.call_activity(explode, 3).await {
        Ok(_) => Ok("no panic?".into()),
        Err(failed) => {
            let refused = ctx
                .call_activity(refuse, "late".into())
                .await
                .expect_err("refuse always fails");
            Ok(format!(
                "{} | {} | {:?}",
                failed.message, refused.message, refused.details
            ))
        }
    }
}

#[orchestrator]
async fn panicking_orchestrator(
    ctx: OrchestrationContext,
    n: u32,
) -> Result<u32, OrchestrationError> {
    let v = ctx.call_activity(echo, n).await?;
    if v == 1 {
        panic!("orchestrator gave up at {v}");
    }
    Ok(v)
}

#[orchestrator]
async fn propagating(ctx: OrchestrationContext) -> Result<(), OrchestrationError> {
    ctx.call_activity(refuse, "no".into()).await?;
    Ok(())
}

#[orchestrator]
async fn unknown_activity(ctx: OrchestrationContext) -> Result<String, OrchestrationError> {
    Ok(ctx
        .call_activity_by_name::<String>("no_such_activity", 1)
        .await?)
}

#[orchestrator]
async fn wrong_result_type(ctx: OrchestrationContext) -> Result<String, OrchestrationError> {
    // `echo` returns a number; asking for a Vec must fail the task, not the worker.
    match ctx.call_activity_by_name::<Vec<String>>("echo", 5).await {
        Ok(v) => Ok(format!("decoded {v:?}")),
        Err(failed) => Ok(failed.message),
    }
}

#[orchestrator]
async fn wrong_input_type(ctx: OrchestrationContext) -> Result<u32, OrchestrationError> {
    Ok(ctx
        .call_activity_by_name::<u32>("echo", "not a number")
        .await?)
}

async fn finished(client: &Client, id: &str) -> InstanceStatus {
    client
        .wait_for_completion(id, WAIT)
        .await
        .expect("finishes")
}

fn failure(status: &InstanceStatus) -> &FailureDetails {
    assert_eq!(status.runtime_status, RuntimeStatus::Failed, "{status:?}");
    status
        .failure
        .as_ref()
        .expect("a failed instance has a failure")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_activity_fails_only_its_task() {
    let store = TestStore::new();
    let (runtime, client) = store.start().await;
    let id = client.start(compensating, ()).await.expect("start");
    let status = finished(&client, &id).await;
    let output: String = status.output_as().expect("completed");
    assert_eq!(
        output,
        "activity 'explode' panicked: activity blew up on 3 | refused: late | Some(\"policy 12\")"
    );
    runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_orchestrator_fails_its_instance_and_the_worker_serves_others() {
    let store = TestStore::new();
    let (runtime, client) = store.start().await;
    let doomed = client
        .start(panicking_orchestrator, 1)
        .await
        .expect("start");
    let healthy = client
        .start(panicking_orchestrator, 2)
        .await
        .expect("start");
    let status = finished(&client, &doomed).await;
    assert_eq!(
        failure(&status).message,
        "orchestrator 'panicking_orchestrator' panicked: orchestrator gave up at 1"
    );
    let status = finished(&client, &healthy).await;
    assert_eq!(status.output_as::<u32>().expect("output"), 2);
    // And the runtime still takes new work afterwards.
    let again = client
        .start(panicking_orchestrator, 3)
        .await
        .expect("start");
    assert_eq!(
        finished(&client, &again).await.runtime_status,
        RuntimeStatus::Completed
    );
    runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_activity_error_propagates_with_its_name() {
    let store = TestStore::new();
    let (runtime, client) = store.start().await;
    let id = client.start(propagating, ()).await.expect("start");
    let status = finished(&client, &id).await;
    assert_eq!(
        failure(&status).message,
        "task 'refuse' failed: refused: no"
    );
    runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_names_are_clear_errors() {
    let store = TestStore::new();
    let (runtime, client) = store.start().await;
    let err = client
        .start_by_name("no_such_orchestrator", None, ())
        .await
        .expect_err("unknown orchestrator");
    assert!(
        matches!(err, Error::UnknownOrchestrator(ref name) if name == "no_such_orchestrator"),
        "{err}"
    );

    let id = client.start(unknown_activity, ()).await.expect("start");
    let status = finished(&client, &id).await;
    assert_eq!(
        failure(&status).message,
        "task 'no_such_activity' failed: no activity named 'no_such_activity' is registered in this program"
    );
    runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payloads_that_do_not_decode_fail_with_the_type_named() {
    let store = TestStore::new();
    let (runtime, client) = store.start().await;

    let id = client.start(wrong_result_type, ()).await.expect("start");
    let output: String = finished(&client, &id).await.output_as().expect("output");
    assert!(
        output.starts_with(
            "the result 5 does not decode as `alloc::vec::Vec<alloc::string::String>`"
        ),
        "{output}"
    );

    let id = client.start(wrong_input_type, ()).await.expect("start");
    let status = finished(&client, &id).await;
    let message = &failure(&status).message;
    assert!(message.starts_with("task 'echo' failed: the input \"not a number\" of activity 'echo' does not decode as `u32`"), "{message}");

    // An orchestrator started by name with the wrong input type fails at once, clearly.
    let id = client
        .start_by_name("panicking_orchestrator", None, vec!["x"])
        .await
        .expect("start");
    let status = finished(&client, &id).await;
    let message = &failure(&status).message;
    assert!(
        message.starts_with(
            "the input [\"x\"] of orchestrator 'panicking_orchestrator' does not decode as `u32`"
        ),
        "{message}"
    );
    runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starting_a_duplicate_id_is_refused_and_changes_nothing() {
    let store = TestStore::new();
    let (runtime, client) = store.start().await;
    client
        .start_with_id(panicking_orchestrator, "same", 5)
        .await
        .expect("first start");
    let err = client
        .start_with_id(panicking_orchestrator, "same", 6)
        .await
        .expect_err("second start");
    assert!(
        matches!(err, Error::InstanceAlreadyExists(ref id) if id == "same"),
        "{err}"
    );
    let status = finished(&client, "same").await;
    assert_eq!(status.output_as::<u32>().expect("output"), 5);

    let err = client
        .start_with_id(panicking_orchestrator, "a/b", 1)
        .await
        .expect_err("invalid id");
    assert!(matches!(err, Error::InvalidInstanceId { .. }), "{err}");
    runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_in_use_by_another_runtime_is_refused() {
    let store = TestStore::new();
    let (runtime, _client) = store.start().await;
    let err = match store.builder().start().await {
        Ok(_) => panic!("a second runtime must not open the same store"),
        Err(err) => err,
    };
    assert!(
        err.to_string().contains("in use by another process"),
        "{err}"
    );
    drop(_client);
    runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_rows_surface_as_errors() {
    let store = TestStore::new();
    let (runtime, client) = store.start().await;
    let id = client
        .start(panicking_orchestrator, 4)
        .await
        .expect("start");
    finished(&client, &id).await;
    drop(client);
    runtime.shutdown().await;

    let conn = rusqlite::Connection::open(store.path()).expect("open");
    conn.execute(
        "UPDATE history SET event = '{\"TaskScheduled\": 42}' WHERE instance_id = ?1 AND seq = 2",
        [&id],
    )
    .expect("corrupt a history row");
    conn.execute(
        "INSERT INTO instances (instance_id, name, status, created_ms, updated_ms)
         VALUES ('ghost', 'panicking_orchestrator', 'Running', 0, 0)",
        [],
    )
    .expect("a running instance");
    conn.execute(
        "INSERT INTO instance_inputs (instance_id, input) VALUES ('ghost', 'null')",
        [],
    )
    .expect("its input");
    conn.execute(
        "INSERT INTO messages (instance_id, event) VALUES ('ghost', 'not json')",
        [],
    )
    .expect("corrupt a message");
    drop(conn);

    // Recovery neither skips the corrupt message silently nor refuses to start: it fails the
    // instance the row belongs to, naming the row, and resumes everything else.
    let (runtime, client) = store.start().await;
    let ghost = finished(&client, "ghost").await;
    let message = &failure(&ghost).message;
    assert!(
        message.starts_with("the instance cannot be resumed: corrupt messages row"),
        "{message}"
    );

    let err = client
        .get_status_with_history(&id)
        .await
        .expect_err("corrupt history");
    assert!(
        err.to_string()
            .starts_with(&format!("corrupt history row {id}#2")),
        "{err}"
    );
    runtime.shutdown().await;
}

/// Signalled by `gate` once the first step (which scheduled it) is durable.
static GATE_REACHED: tokio::sync::Notify = tokio::sync::Notify::const_new();

#[activity]
async fn gate() {
    GATE_REACHED.notify_one();
    std::future::pending::<()>().await
}

#[orchestrator]
async fn gated(ctx: OrchestrationContext) -> Result<(), OrchestrationError> {
    let opened = ctx.call_activity(gate, ());
    let go = ctx.wait_for_event::<()>("go");
    ctx.when_any2(opened, go).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_history_fails_its_instance_naming_the_row() {
    let store = TestStore::new();
    let quick_stop =
        |b: durable_runtime::RuntimeBuilder| b.shutdown_timeout(Duration::from_millis(20));
    let (runtime, client) = store.start_with(quick_stop).await;
    let id = client.start(gated, ()).await.expect("start");
    GATE_REACHED.notified().await;
    drop(client);
    runtime.shutdown().await;

    let conn = rusqlite::Connection::open(store.path()).expect("open");
    let changed = conn
        .execute(
            "UPDATE history SET event = 'garbage' WHERE instance_id = ?1 AND seq = 2",
            [&id],
        )
        .expect("corrupt a history row");
    assert_eq!(changed, 1);
    drop(conn);

    let (runtime, client) = store.start_with(quick_stop).await;
    client.raise_event(&id, "go", ()).await.expect("raised");
    let status = finished(&client, &id).await;
    let message = &failure(&status).message;
    assert!(
        message.starts_with(&format!(
            "the instance cannot be replayed: corrupt history row {id}#2"
        )),
        "{message}"
    );
    // Other instances are unaffected.
    let other = client
        .start(panicking_orchestrator, 2)
        .await
        .expect("start");
    assert_eq!(
        finished(&client, &other)
            .await
            .output_as::<u32>()
            .expect("output"),
        2
    );
    drop(client);
    runtime.shutdown().await;
}
