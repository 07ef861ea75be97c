//! `RuntimeBuilder::open_client`: a client-only handle on a store no runtime runs on. It
//! holds the store's lock like a runtime; its writes are durable and wait in the store until
//! a runtime opens it; it starts by name without the orchestrator linked in, leaving the name
//! to the runtime (which fails an instance whose orchestrator it does not have).

mod support;

use durable_runtime::prelude::*;
use durable_runtime::store::StoreError;
use support::{TestStore, WAIT};

#[orchestrator]
async fn add_one(ctx: OrchestrationContext, n: u64) -> u64 {
    let _ = &ctx;
    n + 1
}

#[orchestrator]
async fn waits(ctx: OrchestrationContext) -> Result<u64, OrchestrationError> {
    Ok(ctx.wait_for_event::<u64>("go").await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_wait_in_the_store_for_the_next_runtime() {
    for cache in support::CACHES {
        let store = TestStore::new();
        let (runtime, client) = store.start_with(support::cache_settings(cache)).await;
        client
            .start_by_name("waits", Some("w".into()), ())
            .await
            .expect("starts");
        support::until_status(&client, "w", RuntimeStatus::Running).await;
        drop(client);
        runtime.shutdown().await;
        let _ = store.reopen().await;

        let offline = Runtime::builder()
            .sqlite(store.path())
            .open_client()
            .await
            .expect("opens");
        // It holds the lock: no runtime starts meanwhile.
        let refused = store.builder().start().await;
        assert!(
            matches!(
                refused,
                Err(durable_runtime::Error::Store(StoreError::Locked { .. }))
            ),
            "{:?}",
            refused.err().map(|e| e.to_string())
        );
        offline
            .start_by_name("add_one", Some("a".into()), 41)
            .await
            .expect("starts");
        offline.raise_event("w", "go", 7).await.expect("raises");
        // Nothing runs them here.
        let pending = offline
            .get_status("a")
            .await
            .expect("reads")
            .expect("exists");
        assert_eq!(pending.runtime_status, RuntimeStatus::Pending);
        let waiting = offline
            .get_status("w")
            .await
            .expect("reads")
            .expect("exists");
        assert_eq!(waiting.runtime_status, RuntimeStatus::Running);
        // A name this program does not have is left to the runtime.
        offline
            .start_by_name("not_linked_here", Some("x".into()), ())
            .await
            .expect("accepted");
        // Refusals are as on any client.
        support::assert_not_found(&offline.raise_event("nobody", "go", 1).await);
        let invalid = offline
            .start_by_name("add_one", Some("a/b".into()), 1)
            .await;
        assert!(matches!(
            invalid,
            Err(durable_runtime::Error::InvalidInstanceId { .. })
        ));
        drop(offline);

        let (runtime, client) = store.restart(support::cache_settings(cache)).await;
        let a = client
            .wait_for_completion("a", WAIT)
            .await
            .expect("completes");
        assert_eq!(a.output_as::<u64>().expect("output"), 42);
        let w = client
            .wait_for_completion("w", WAIT)
            .await
            .expect("completes");
        assert_eq!(w.output_as::<u64>().expect("output"), 7);
        let x = client
            .wait_for_completion("x", WAIT)
            .await
            .expect("finishes");
        assert_eq!(x.runtime_status, RuntimeStatus::Failed);
        let message = x.failure.expect("a failure").message;
        assert!(message.contains("not_linked_here"), "{message}");
        // A runtime's own client still refuses a name it does not have.
        let unknown = client.start_by_name("not_linked_here", None, ()).await;
        assert!(matches!(
            unknown,
            Err(durable_runtime::Error::UnknownOrchestrator(_))
        ));
        drop(client);
        runtime.shutdown().await;
    }
}
