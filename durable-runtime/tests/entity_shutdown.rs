//! Shutdown and entity tasks: an operation that does not finish (it waits on something that
//! never comes) does not keep the store after shutdown; it stays queued, and runs again at the
//! next start.

mod support;

use durable_runtime::Operation;
use durable_runtime::prelude::*;
use std::sync::atomic::{AtomicU32, Ordering};
use support::TestStore;
use support::entities::until_state;

static STARTED: AtomicU32 = AtomicU32::new(0);

/// `stall` adds 1; its first run waits forever before it does.
#[entity]
async fn staller(ctx: &mut EntityContext<i64>) -> Result<(), EntityError> {
    if STARTED.fetch_add(1, Ordering::SeqCst) == 0 {
        std::future::pending::<()>().await;
    }
    *ctx.state_mut() += 1;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operation_that_never_finishes_does_not_keep_the_store_after_shutdown() {
    let store = TestStore::new();
    let (runtime, client) = store.start().await;
    let id = EntityId::new("staller", "s");
    client
        .signal_entity(&id, Operation::named("stall", ()))
        .await
        .expect("durable");
    while STARTED.load(Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
    }
    runtime.shutdown().await;
    drop(client);
    // Panics if the stalled operation's task still holds the store.
    let (runtime, client) = store.restart(|b| b).await;
    // Not committed before: it runs again, once.
    until_state::<i64>(&client, &id, |s| s == Some(&1)).await;
    runtime.shutdown().await;
}
