//! What an entity batch sends when its commit was applied but the answer was lost (as when a
//! connection drops after the commit): the call's result and the signals to other entities
//! are in the store, and must still reach their orchestration and entities without a restart.

mod support;

use durable_runtime::Operation;
use durable_runtime::prelude::*;
use durable_runtime::store::{StoreError, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use support::entities::until_state;
use support::hooked::{BoxFut, Hook, Phase};
use support::{CACHES, TestStore, WAIT, cache_settings};

/// `add` adds its input; `forward` adds 1 and signals `add 1` to the counter named by its input.
#[entity]
async fn tally(ctx: &mut EntityContext<i64>) -> Result<(), EntityError> {
    match ctx.operation_name() {
        "add" => {
            let amount: i64 = ctx.input()?;
            *ctx.state_mut() += amount;
        }
        "forward" => {
            let target: String = ctx.input()?;
            *ctx.state_mut() += 1;
            ctx.signal_entity(&EntityId::new("tally", target), Operation::named("add", 1))?;
        }
        other => return Err(EntityError::new(format!("no operation '{other}'"))),
    }
    Ok(())
}

/// Calls `add 1` on its counter and returns the result.
#[orchestrator]
async fn caller(
    ctx: OrchestrationContext,
    key: String,
) -> Result<serde_json::Value, OrchestrationError> {
    let id = EntityId::new("tally", key);
    Ok(ctx.call_entity(&id, Operation::named("add", 1)).await?)
}

/// Answers the first entity batch, applied, with an error.
fn first_answer_lost() -> Hook {
    let batches = Arc::new(AtomicU64::new(0));
    Arc::new(move |phase, write: &Write| -> BoxFut {
        let failure = match (phase, write) {
            (Phase::After, Write::Entity(_)) if batches.fetch_add(1, Ordering::Relaxed) == 0 => {
                Some(StoreError::Unavailable(
                    "injected: the answer is lost".into(),
                ))
            }
            _ => None,
        };
        Box::pin(async move { failure })
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_whose_batch_answer_was_lost_still_gets_its_result() {
    for cache in CACHES {
        let store = TestStore::new();
        let runtime = cache_settings(cache)(store.hooked_builder(first_answer_lost()))
            .write_retry_interval(Duration::from_millis(10))
            .start()
            .await
            .expect("starts");
        let client = runtime.client();
        let id = client.start(caller, "c".into()).await.expect("starts");
        let status = client
            .wait_for_completion(&id, WAIT)
            .await
            .unwrap_or_else(|err| panic!("cache {cache:?}: the call's result never came: {err}"));
        assert_eq!(
            status.runtime_status,
            RuntimeStatus::Completed,
            "cache {cache:?}"
        );
        let state = client
            .read_entity_state::<i64>(&EntityId::new("tally", "c"))
            .await
            .expect("reads");
        assert_eq!(state, Some(1), "cache {cache:?}: applied once");
        runtime.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_from_a_batch_whose_answer_was_lost_still_reaches_its_entity() {
    for cache in CACHES {
        let store = TestStore::new();
        let runtime = cache_settings(cache)(store.hooked_builder(first_answer_lost()))
            .write_retry_interval(Duration::from_millis(10))
            .start()
            .await
            .expect("starts");
        let client = runtime.client();
        let source = EntityId::new("tally", "source");
        let target = EntityId::new("tally", "target");
        client
            .signal_entity(&source, Operation::named("forward", "target"))
            .await
            .expect("durable");
        until_state::<i64>(&client, &target, |s| s == Some(&1)).await;
        let state = client
            .read_entity_state::<i64>(&source)
            .await
            .expect("reads");
        assert_eq!(state, Some(1), "cache {cache:?}: applied once");
        runtime.shutdown().await;
    }
}
