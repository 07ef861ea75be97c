//! Recording that a corrupt row's instance failed is retried through transient store errors,
//! like every other write: one busy moment of the disk must not leave the instance `Running`
//! until the next restart.

mod support;

use durable_runtime::prelude::*;
use durable_runtime::store::{StoreError, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use support::hooked::{BoxFut, Hook, Phase};
use support::{TestStore, WAIT};

#[orchestrator]
async fn waits_for_go(ctx: OrchestrationContext) -> Result<String, OrchestrationError> {
    Ok(ctx.wait_for_event::<String>("go").await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transient_error_does_not_leave_a_corrupt_instance_running() {
    let store = TestStore::new();
    let (runtime, client) = store.start().await;
    let id = client.start(waits_for_go, ()).await.expect("start");
    support::until_status(&client, &id, RuntimeStatus::Running).await;
    drop(client);
    runtime.shutdown().await;
    let conn = rusqlite::Connection::open(store.path()).expect("opens");
    conn.execute(
        "INSERT INTO messages (instance_id, event) VALUES (?1, 'not json')",
        [&id],
    )
    .expect("a corrupt message for the instance");
    drop(conn);

    // The first FailInstance meets a transient error (one busy moment of the disk).
    let failures = Arc::new(AtomicU32::new(0));
    let hook: Hook = {
        let failures = failures.clone();
        Arc::new(move |phase, write| -> BoxFut {
            let fail = phase == Phase::Before
                && matches!(write, Write::FailInstance { .. })
                && failures.fetch_add(1, Ordering::SeqCst) == 0;
            Box::pin(
                async move { fail.then(|| StoreError::Unavailable("disk busy (test)".into())) },
            )
        })
    };
    let runtime = store.hooked_builder(hook).start().await.expect("starts");
    let client = runtime.client();
    let status = client
        .wait_for_completion(&id, WAIT)
        .await
        .expect("finishes");
    runtime.shutdown().await;
    assert_eq!(
        status.runtime_status,
        RuntimeStatus::Failed,
        "the corrupt row's instance must be failed once the transient error passes \
         (FailInstance attempts: {})",
        failures.load(Ordering::SeqCst)
    );
}
