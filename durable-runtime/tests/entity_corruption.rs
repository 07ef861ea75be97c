//! A corrupt row fails only itself. A queued operation whose row does not decode is consumed
//! as failed (its caller gets `TaskFailed` when its reply can be read; a signal is logged),
//! and the operations queued behind it run. An entity whose stored state is not JSON fails
//! each operation with an error naming the corruption, keeps the row as it is (for repair),
//! and `read_entity_state` answers a typed error. Other entities are not affected. Hot (the
//! entity keeps its state) and replayed (`cache_capacity(0)`), across a restart, on both
//! stores (`DURABLE_TEST_BACKEND=postgres`).

mod support;

use durable_runtime::prelude::*;
use durable_runtime::store::{EntityQuery, StoreError};
use serde::{Deserialize, Serialize};
use support::entities::{until_logged, until_state};
use support::{CACHES, TestStore, WAIT, cache_settings, exec_sql, query_text, until_status};

#[derive(Default, Serialize, Deserialize, Debug, PartialEq)]
struct Tally(i64);

#[entity]
impl Tally {
    pub fn add(&mut self, n: i64) {
        self.0 += n;
    }

    pub fn get(&self) -> i64 {
        self.0
    }

    pub fn delete(self) {}
}

/// Holds the lock of `@tally@a` until the event `go`.
#[orchestrator]
async fn holder(ctx: OrchestrationContext) -> Result<(), OrchestrationError> {
    let lock = ctx.lock_entities(&[Tally::entity_id("a")]).await?;
    ctx.wait_for_event::<()>("go").await?;
    lock.release();
    Ok(())
}

/// Calls `get` on `@tally@{key}` and says how it went.
#[orchestrator]
async fn caller(ctx: OrchestrationContext, key: String) -> Result<String, OrchestrationError> {
    match ctx
        .call_entity(&Tally::entity_id(key), Tally::get_op())
        .await
    {
        Ok(value) => Ok(format!("ok {value}")),
        Err(failed) => Ok(format!("failed: {failed}")),
    }
}

/// The stored record of `id`, once `done` holds for it.
async fn until_record(
    client: &Client,
    id: &EntityId,
    done: impl Fn(&durable_runtime::store::EntityRecord) -> bool,
) {
    let reached = async {
        loop {
            let page = client
                .list_entities(&EntityQuery {
                    name_prefix: Some(id.name().to_string()),
                    ..EntityQuery::default()
                })
                .await
                .expect("lists");
            let record = page
                .entities
                .iter()
                .find(|record| record.entity_id == id.to_string());
            if record.is_some_and(&done) {
                return;
            }
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(WAIT, reached)
        .await
        .unwrap_or_else(|_| panic!("entity {id} did not reach the expected record"));
}

async fn corrupt_rows_fail_only_themselves(cache: Option<usize>) {
    let store = TestStore::new();
    let (a, b, c) = (
        Tally::entity_id("a"),
        Tally::entity_id("b"),
        Tally::entity_id("c"),
    );
    let (runtime, client) = store.start_with(cache_settings(cache)).await;
    client
        .signal_entity(&a, Tally::add_op(1))
        .await
        .expect("durable");
    client
        .signal_entity(&b, Tally::add_op(1))
        .await
        .expect("durable");
    until_state::<Tally>(&client, &b, |s| s == Some(&Tally(1))).await;
    until_state::<Tally>(&client, &a, |s| s == Some(&Tally(1))).await;
    // While `holder` holds `a`'s lock, a call and two signals queue up behind it.
    let holding = client.start(holder, ()).await.expect("starts");
    until_record(&client, &a, |r| {
        r.locked_by.as_deref() == Some(holding.as_str())
    })
    .await;
    let calling = client.start(caller, "a".to_string()).await.expect("starts");
    until_record(&client, &a, |r| r.pending_operations == 1).await;
    for n in [100, 7] {
        client
            .signal_entity(&a, Tally::add_op(n))
            .await
            .expect("durable");
    }
    runtime.shutdown().await;
    drop(client);

    // The call's input, the first signal's reply, and `b`'s state stop decoding.
    exec_sql(
        &store,
        &format!(
            "UPDATE entity_messages SET input = 'not json' WHERE sender = '{calling}';
             UPDATE entity_messages SET reply = 'garbage' WHERE id =
                 (SELECT MIN(id) FROM entity_messages WHERE entity_id = '{a}' AND sender = '');
             UPDATE entities SET state = 'not json' WHERE entity_id = '{b}';"
        ),
    );

    let (runtime, client) = store.restart(cache_settings(cache)).await;
    client
        .raise_event(&holding, "go", ())
        .await
        .expect("raised");
    let status = client
        .wait_for_completion(&holding, WAIT)
        .await
        .expect("finishes");
    assert_eq!(status.runtime_status, RuntimeStatus::Completed);
    // The corrupt call is answered with a failure naming the corruption.
    let status = client
        .wait_for_completion(&calling, WAIT)
        .await
        .expect("the caller is answered");
    let answer: String = status.output_as().expect("a string");
    assert!(
        answer.starts_with("failed:") && answer.contains("corrupt") && answer.contains("input"),
        "{answer}"
    );
    // The corrupt signal is set aside; the one behind it runs.
    until_state::<Tally>(&client, &a, |s| s == Some(&Tally(8))).await;
    let log = client.entity_log(&a).await.expect("reads the log");
    let failed: Vec<_> = log.iter().filter(|entry| !entry.ok).collect();
    assert_eq!(failed.len(), 2, "the two corrupt rows are logged: {log:?}");
    assert!(
        failed.iter().all(|entry| entry
            .error
            .as_deref()
            .is_some_and(|e| e.contains("corrupt"))),
        "{failed:?}"
    );

    // `b`'s state is not JSON: each operation fails naming it, and the row is kept.
    let logged_before = client.entity_log(&b).await.expect("reads").len();
    client
        .signal_entity(&b, Tally::add_op(1))
        .await
        .expect("durable");
    let log = until_logged(&client, &b, logged_before + 1).await;
    let last = log.last().expect("logged");
    assert!(!last.ok);
    assert!(
        last.error
            .as_deref()
            .is_some_and(|e| e.contains("not JSON") && e.contains(&b.to_string())),
        "{last:?}"
    );
    let reading = client.start(caller, "b".to_string()).await.expect("starts");
    let status = client
        .wait_for_completion(&reading, WAIT)
        .await
        .expect("answered");
    let answer: String = status.output_as().expect("a string");
    assert!(
        answer.starts_with("failed:") && answer.contains("not JSON"),
        "{answer}"
    );
    let read = client.read_entity_state::<Tally>(&b).await;
    assert!(
        matches!(
            read,
            Err(durable_runtime::Error::Store(StoreError::Corrupt { .. }))
        ),
        "{read:?}"
    );
    until_status(&client, &reading, RuntimeStatus::Completed).await;

    // Other entities keep working.
    client
        .signal_entity(&c, Tally::add_op(3))
        .await
        .expect("durable");
    until_state::<Tally>(&client, &c, |s| s == Some(&Tally(3))).await;
    let reading = client.start(caller, "a".to_string()).await.expect("starts");
    let status = client
        .wait_for_completion(&reading, WAIT)
        .await
        .expect("answered");
    assert_eq!(status.output_as::<String>().expect("a string"), "ok 8");
    runtime.shutdown().await;
    drop(client);
    assert_eq!(
        query_text(
            &store,
            &format!("SELECT state FROM entities WHERE entity_id = '{b}'")
        )
        .as_deref(),
        Some("not json"),
        "the corrupt state is kept for repair"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_rows_fail_only_themselves_hot() {
    corrupt_rows_fail_only_themselves(CACHES[0]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_rows_fail_only_themselves_replayed() {
    corrupt_rows_fail_only_themselves(CACHES[1]).await;
}

/// One entity whose state is not JSON does not take the listing, nor the purge, of the others
/// down with it: it is listed with its corruption, and kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_state_does_not_fail_the_listing_or_purge_of_others() {
    let store = TestStore::new();
    let (good, bad, gone) = (
        Tally::entity_id("good"),
        Tally::entity_id("bad"),
        Tally::entity_id("gone"),
    );
    let (runtime, client) = store.start().await;
    for id in [&good, &bad, &gone] {
        client
            .signal_entity(id, Tally::add_op(1))
            .await
            .expect("durable");
        until_state::<Tally>(&client, id, |s| s == Some(&Tally(1))).await;
    }
    client
        .signal_entity(&gone, Tally::delete_op())
        .await
        .expect("durable");
    until_state::<Tally>(&client, &gone, |s| s.is_none()).await;
    runtime.shutdown().await;
    drop(client);
    exec_sql(
        &store,
        &format!("UPDATE entities SET state = 'not json' WHERE entity_id = '{bad}'"),
    );

    let (runtime, client) = store.restart(|builder| builder).await;
    let page = client
        .list_entities(&EntityQuery {
            name_prefix: Some("tally".to_string()),
            ..EntityQuery::default()
        })
        .await
        .expect("lists despite the corrupt row");
    let listed: Vec<&str> = page.entities.iter().map(|e| e.entity_id.as_str()).collect();
    assert_eq!(
        listed,
        [bad.to_string(), gone.to_string(), good.to_string()]
    );
    let corrupt = page
        .entities
        .iter()
        .find(|e| e.entity_id == bad.to_string())
        .and_then(|e| e.corrupt_state.as_deref())
        .unwrap_or_default();
    assert!(corrupt.contains("not JSON"), "{corrupt:?}");
    assert_eq!(
        client.purge_entities(Some("tally")).await.expect("purges"),
        1
    );
    assert_eq!(
        client
            .read_entity_state::<Tally>(&good)
            .await
            .expect("reads"),
        Some(Tally(1))
    );
    let read = client.read_entity_state::<Tally>(&bad).await;
    assert!(
        matches!(
            read,
            Err(durable_runtime::Error::Store(StoreError::Corrupt { .. }))
        ),
        "{read:?}"
    );
    runtime.shutdown().await;
    drop(client);
    assert_eq!(
        query_text(
            &store,
            &format!("SELECT state FROM entities WHERE entity_id = '{bad}'")
        )
        .as_deref(),
        Some("not json"),
        "the corrupt row is kept"
    );
}

/// An unlock whose row is corrupt in a column an unlock does not use (its reply: an unlock
/// answers no one) still releases the lock: otherwise the entity would stay locked by an
/// orchestration that is gone, and every other operation would wait forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_unlock_still_releases_the_lock() {
    let store = TestStore::new();
    let id = Tally::entity_id("unlock");
    let (runtime, client) = store.start().await;
    client
        .signal_entity(&id, Tally::add_op(1))
        .await
        .expect("durable");
    until_state::<Tally>(&client, &id, |s| s == Some(&Tally(1))).await;
    runtime.shutdown().await;
    drop(client);
    // Locked by an orchestration that ended: the unlock the store queued for it is corrupt.
    exec_sql(
        &store,
        &format!(
            "UPDATE entities SET locked_by = 'gone' WHERE entity_id = '{id}';
             INSERT INTO entity_messages (entity_id, operation, input, sender, reply, created_ms)
             VALUES ('{id}', '__durable.unlock', 'null', 'gone', 'garbage', 0);"
        ),
    );
    let (runtime, client) = store.restart(|builder| builder).await;
    client
        .signal_entity(&id, Tally::add_op(5))
        .await
        .expect("durable");
    until_state::<Tally>(&client, &id, |s| s == Some(&Tally(6))).await;
    runtime.shutdown().await;
}

/// A corrupt call queued for an entity this program does not register is answered too (its
/// reply still reads): its caller must not wait forever for an entity that will never run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_call_to_an_unregistered_entity_is_answered() {
    let store = TestStore::new();
    let (runtime, client) = store.start().await;
    // The call queues behind `holder`'s lock, so it is still in the store at shutdown.
    let holding = client.start(holder, ()).await.expect("starts");
    until_record(&client, &Tally::entity_id("a"), |r| {
        r.locked_by.as_deref() == Some(holding.as_str())
    })
    .await;
    let calling = client.start(caller, "a".to_string()).await.expect("starts");
    until_record(&client, &Tally::entity_id("a"), |r| {
        r.pending_operations == 1
    })
    .await;
    runtime.shutdown().await;
    drop(client);
    // The queued call now addresses an entity nobody registers, and its input is unreadable.
    exec_sql(
        &store,
        &format!(
            "UPDATE entity_messages SET entity_id = '@nobody@k', input = 'not json'
             WHERE sender = '{calling}';"
        ),
    );
    let (runtime, client) = store.restart(|builder| builder).await;
    let status = client
        .wait_for_completion(&calling, WAIT)
        .await
        .expect("the caller is answered");
    let answer: String = status.output_as().expect("a string");
    assert!(
        answer.starts_with("failed:")
            && answer.contains("no entity named 'nobody'")
            && answer.contains("corrupt"),
        "{answer}"
    );
    runtime.shutdown().await;
}
