//! Idempotent entity signals: `Client::signal_entity_once` and `POST /entities/{name}/{key}`
//! with an `Idempotency-Key` header queue a signal once per key, as raiseEvent does. The
//! promise is tested where it matters: the first attempt's write lands but its answer is lost
//! (a 503), the sender retries with the same key, and the operation runs once; a retry after
//! a restart is still recognised. Hot and replayed, on both stores
//! (`DURABLE_TEST_BACKEND=postgres`).
#![cfg(feature = "http")]

#[path = "support/http.rs"]
mod http_support;
mod support;

use durable_runtime::http::HttpOptions;
use durable_runtime::prelude::*;
use durable_runtime::store::{StoreError, Write};
use http_support::Served;
use reqwest::StatusCode;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use support::entities::until_state;
use support::hooked::{BoxFut, Hook, Phase};
use support::{CACHES, TestStore, cache_settings};

/// A counter: `add` adds its input.
#[entity]
async fn tally(ctx: &mut EntityContext<i64>) -> Result<(), EntityError> {
    match ctx.operation_name() {
        "add" => {
            let amount: i64 = ctx.input()?;
            *ctx.state_mut() += amount;
        }
        other => return Err(EntityError::new(format!("no operation '{other}'"))),
    }
    Ok(())
}

/// Loses the answer of the first keyed signal whose write was applied (a timeout after the
/// commit); counts the keyed signal writes.
fn lose_first_answer(writes: Arc<AtomicU32>) -> Hook {
    Arc::new(move |phase, write| -> BoxFut {
        let lose = phase == Phase::After
            && matches!(write, Write::SignalEntityOnce { .. })
            && writes.fetch_add(1, Ordering::SeqCst) == 0;
        Box::pin(async move {
            lose.then(|| StoreError::Unavailable("the answer was lost (test)".into()))
        })
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyed_signal_retried_after_a_lost_answer_runs_once() {
    for cache in CACHES {
        let store = TestStore::new();
        let writes = Arc::new(AtomicU32::new(0));
        let runtime = cache_settings(cache)(
            store
                .hooked_builder_on_backend(lose_first_answer(writes.clone()), None)
                .await,
        )
        .start()
        .await
        .expect("starts");
        let client = runtime.client();
        let id = EntityId::new("tally", "once");
        let add = |n: i64| Operation::named("add", n);
        let first = client.signal_entity_once(&id, add(5), "req-1").await;
        assert!(
            matches!(first, Err(durable_runtime::Error::StoreUnavailable(_))),
            "the first answer is lost: {first:?}"
        );
        // The sender retries (twice), then sends another request and an unkeyed signal.
        for _ in 0..2 {
            client
                .signal_entity_once(&id, add(5), "req-1")
                .await
                .expect("a retry succeeds");
        }
        client
            .signal_entity_once(&id, add(1), "req-2")
            .await
            .expect("durable");
        client.signal_entity(&id, add(100)).await.expect("durable");
        // One sender's signals run in order: had a retry been queued, it ran before the last.
        until_state::<i64>(&client, &id, |s| s == Some(&106)).await;
        let log = client.entity_log(&id).await.expect("reads the log");
        assert_eq!(log.len(), 3, "each signal ran once: {log:?}");
        assert!(writes.load(Ordering::SeqCst) >= 4);
        runtime.shutdown().await;
        drop(client);

        // The keys come back from the store.
        let (runtime, client) = store.restart(cache_settings(cache)).await;
        client
            .signal_entity_once(&id, add(5), "req-1")
            .await
            .expect("a late retry succeeds");
        // The same key for another entity is another signal.
        let other = EntityId::new("tally", "other");
        client
            .signal_entity_once(&other, add(7), "req-1")
            .await
            .expect("durable");
        client.signal_entity(&id, add(1000)).await.expect("durable");
        until_state::<i64>(&client, &id, |s| s == Some(&1106)).await;
        until_state::<i64>(&client, &other, |s| s == Some(&7)).await;
        runtime.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_signal_retried_with_its_idempotency_key_runs_once() {
    for cache in CACHES {
        let store = TestStore::new();
        let writes = Arc::new(AtomicU32::new(0));
        let runtime = cache_settings(cache)(
            store
                .hooked_builder_on_backend(lose_first_answer(writes.clone()), None)
                .await,
        )
        .start()
        .await
        .expect("starts");
        let client = runtime.client();
        let served = Served::serve(store, runtime, client, HttpOptions::new()).await;
        let send = |key: Option<&'static str>, amount: i64| {
            let mut request = served
                .http
                .post(served.url("/entities/tally/k?op=add"))
                .json(&json!(amount));
            if let Some(key) = key {
                request = request.header("Idempotency-Key", key);
            }
            request.send()
        };
        let first = send(Some("req-1"), 5).await.expect("answers");
        assert_eq!(first.status(), StatusCode::SERVICE_UNAVAILABLE);
        for _ in 0..2 {
            let retried = send(Some("req-1"), 5).await.expect("answers");
            assert_eq!(retried.status(), StatusCode::ACCEPTED);
        }
        let unkeyed = send(None, 100).await.expect("answers");
        assert_eq!(unkeyed.status(), StatusCode::ACCEPTED);
        let id = EntityId::new("tally", "k");
        until_state::<i64>(&served.client, &id, |s| s == Some(&105)).await;
        let log = served.client.entity_log(&id).await.expect("reads the log");
        assert_eq!(log.len(), 2, "the retried signal ran once: {log:?}");
        // A key that is not visible ASCII is refused, not ignored.
        let bad = served
            .http
            .post(served.url("/entities/tally/k?op=add"))
            .header(
                "Idempotency-Key",
                reqwest::header::HeaderValue::from_bytes("clé".as_bytes()).expect("a value"),
            )
            .json(&json!(1))
            .send()
            .await
            .expect("answers");
        assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
        served.stop().await;
    }
}
