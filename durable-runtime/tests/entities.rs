//! Function-style entities from the client: signals are applied exactly once, in order, with
//! their state in the store; an operation that fails or panics fails alone (the state goes back
//! to before it and the entity keeps serving); delete and re-create; signals between entities;
//! list, read, log and purge; and all of it on both engine paths (state kept in memory, or
//! loaded for every batch) and across a restart.

mod support;

use durable_runtime::prelude::*;
use durable_runtime::store::{Backend, EntityQuery, NewEntityMessage, Write};
use durable_runtime::{Error, Payload};
use support::entities::until_state;
use support::{CACHES, TestStore, cache_settings};

/// A counter: `add` (which fails on a negative amount after changing the state, to show it is
/// rolled back), `boom` (panics after changing it), `delete`, `forward` (adds to itself and
/// signals `add` to the counter whose key is the input), `append` (keeps the order of its
/// inputs in a second entity kind).
#[entity]
async fn counter(ctx: &mut EntityContext<i64>) -> Result<(), EntityError> {
    match ctx.operation_name() {
        "add" => {
            let amount: i64 = ctx.input()?;
            *ctx.state_mut() += amount;
            if amount < 0 {
                return Err(EntityError::new("negative amounts are refused"));
            }
        }
        "boom" => {
            *ctx.state_mut() += 1000;
            panic!("boom");
        }
        "delete" => ctx.delete_state(),
        "forward" => {
            let target: String = ctx.input()?;
            *ctx.state_mut() += 1;
            ctx.signal_entity(
                &EntityId::new("counter", target),
                Operation::named("add", 1),
            )?;
        }
        other => return Err(EntityError::new(format!("no operation '{other}'"))),
    }
    Ok(())
}

/// Records the order in which its inputs arrive.
#[entity(name = "sequence")]
async fn sequence_entity(ctx: &mut EntityContext<Vec<u32>>) {
    if let Ok(n) = ctx.input::<u32>() {
        ctx.state_mut().push(n);
    }
}

fn counter_id(key: &str) -> EntityId {
    EntityId::new("counter", key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signals_are_applied_once_each_on_both_paths() {
    for cache in CACHES {
        let store = TestStore::new();
        let (runtime, client) = store.start_with(cache_settings(cache)).await;
        let id = counter_id("a");
        assert_eq!(
            client.read_entity_state::<i64>(&id).await.expect("reads"),
            None
        );
        for _ in 0..50 {
            client
                .signal_entity(&id, Operation::named("add", 2))
                .await
                .expect("signal is durable");
        }
        let state = until_state::<i64>(&client, &id, |s| s == Some(&100)).await;
        assert_eq!(state, Some(100), "cache {cache:?}");
        runtime.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_of_one_sender_run_in_the_order_sent() {
    for cache in CACHES {
        let store = TestStore::new();
        let (runtime, client) = store.start_with(cache_settings(cache)).await;
        let id = EntityId::new("sequence", "s");
        for n in 0..200u32 {
            client
                .signal_entity_by_name(&id, "push", n)
                .await
                .expect("durable");
        }
        let state = until_state::<Vec<u32>>(&client, &id, |s| s.is_some_and(|v| v.len() == 200))
            .await
            .expect("has state");
        assert_eq!(state, (0..200).collect::<Vec<_>>(), "cache {cache:?}");
        runtime.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_or_panicking_operation_fails_alone_and_the_entity_keeps_serving() {
    for cache in CACHES {
        let store = TestStore::new();
        let (runtime, client) = store.start_with(cache_settings(cache)).await;
        let id = counter_id("f");
        let ops = [
            Operation::named("add", 5),
            Operation::named("add", -3),
            Operation::named("boom", ()),
            Operation::named("add", "not a number"),
            Operation::named("nope", ()),
            Operation::named("add", 1),
        ];
        for op in ops {
            client.signal_entity(&id, op).await.expect("durable");
        }
        // Only the two good adds count: every failure was rolled back.
        until_state::<i64>(&client, &id, |s| s == Some(&6)).await;
        let log = client.entity_log(&id).await.expect("log");
        let outcome: Vec<(&str, bool)> = log.iter().map(|e| (e.operation.as_str(), e.ok)).collect();
        assert_eq!(
            outcome,
            [
                ("add", true),
                ("add", false),
                ("boom", false),
                ("add", false),
                ("nope", false),
                ("add", true)
            ],
            "cache {cache:?}"
        );
        let errors: Vec<&str> = log.iter().filter_map(|e| e.error.as_deref()).collect();
        assert!(errors[0].contains("negative"), "{errors:?}");
        assert!(errors[1].contains("panicked: boom"), "{errors:?}");
        assert!(errors[2].contains("does not decode as `i64`"), "{errors:?}");
        assert!(errors[3].contains("no operation 'nope'"), "{errors:?}");
        runtime.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entity_deletes_itself_is_purged_and_is_created_again() {
    for cache in CACHES {
        let store = TestStore::new();
        let (runtime, client) = store.start_with(cache_settings(cache)).await;
        let gone = counter_id("gone");
        let kept = counter_id("kept");
        client
            .signal_entity(&gone, Operation::named("add", 3))
            .await
            .expect("durable");
        client
            .signal_entity(&kept, Operation::named("add", 4))
            .await
            .expect("durable");
        client
            .signal_entity(&gone, Operation::named("delete", ()))
            .await
            .expect("durable");
        until_state::<i64>(&client, &kept, |s| s == Some(&4)).await;
        // Deleted: no state, but still listed until purged.
        let listed = until_listed_without_state(&client, &gone).await;
        assert!(listed);
        assert_eq!(
            client
                .purge_entities(Some("counter"))
                .await
                .expect("purges"),
            1
        );
        let page = client
            .list_entities(&EntityQuery::default())
            .await
            .expect("lists");
        let ids: Vec<&str> = page.entities.iter().map(|e| e.entity_id.as_str()).collect();
        assert_eq!(ids, ["@counter@kept"], "cache {cache:?}");
        assert!(
            client.entity_log(&gone).await.expect("log").is_empty(),
            "the log goes with it"
        );
        // A new operation creates it again, from no state.
        client
            .signal_entity(&gone, Operation::named("add", 7))
            .await
            .expect("durable");
        until_state::<i64>(&client, &gone, |s| s == Some(&7)).await;
        runtime.shutdown().await;
    }
}

async fn until_listed_without_state(client: &Client, id: &EntityId) -> bool {
    let wait = async {
        loop {
            let page = client
                .list_entities(&EntityQuery::default())
                .await
                .expect("lists");
            if page.entities.iter().any(|e| {
                e.entity_id == id.to_string() && e.state.is_none() && e.pending_operations == 0
            }) {
                return true;
            }
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(support::WAIT, wait)
        .await
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signals_between_entities_are_sent_once_with_the_batch_that_sends_them() {
    for cache in CACHES {
        let store = TestStore::new();
        let (runtime, client) = store.start_with(cache_settings(cache)).await;
        let source = counter_id("source");
        let target = counter_id("target");
        for _ in 0..30 {
            client
                .signal_entity(&source, Operation::named("forward", "target"))
                .await
                .expect("durable");
        }
        until_state::<i64>(&client, &target, |s| s == Some(&30)).await;
        assert_eq!(
            client
                .read_entity_state::<i64>(&source)
                .await
                .expect("reads"),
            Some(30)
        );
        let log = client.entity_log(&target).await.expect("log");
        assert!(log.iter().all(|e| e.sender == "@counter@source"), "{log:?}");
        runtime.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_operations_come_back_from_the_store_after_a_restart() {
    let store = TestStore::new();
    // Queued by an earlier process that stopped before running them: written to the store
    // directly, with no runtime.
    {
        let raw = store.reopen().await;
        for n in 0..25 {
            raw.write(Write::SignalEntity(NewEntityMessage {
                entity_id: "@sequence@r".into(),
                operation: "push".into(),
                input: Payload::encode(&n).expect("encodes"),
                sender: String::new(),
                created_ms: 0,
                reply: None,
            }))
            .await
            .expect("queued");
        }
    }
    // Each start (one per engine path) adds one push after whatever the store holds.
    let mut expected: Vec<u32> = (0..25).collect();
    for cache in CACHES {
        let (runtime, client) = store.restart(cache_settings(cache)).await;
        let id = EntityId::new("sequence", "r");
        // New operations after the start run after the recovered ones.
        client
            .signal_entity_by_name(&id, "push", 100)
            .await
            .expect("durable");
        expected.push(100);
        let state = until_state::<Vec<u32>>(&client, &id, |s| {
            s.is_some_and(|v| v.len() == expected.len())
        })
        .await;
        assert_eq!(state.as_ref(), Some(&expected), "cache {cache:?}");
        runtime.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_ids_and_unknown_entities_are_refused_with_typed_errors() {
    let store = TestStore::new();
    let (runtime, client) = store.start().await;
    let unknown = client
        .signal_entity(&EntityId::new("nobody", "x"), Operation::named("add", 1))
        .await;
    assert!(
        matches!(unknown, Err(Error::UnknownEntity(ref name)) if name == "nobody"),
        "{unknown:?}"
    );
    let bad = client
        .signal_entity(&EntityId::new("co@unter", "x"), Operation::named("add", 1))
        .await;
    assert!(matches!(bad, Err(Error::InvalidEntityId(_))), "{bad:?}");
    let read = client
        .read_entity_state::<i64>(&EntityId::new("", "x"))
        .await;
    assert!(matches!(read, Err(Error::InvalidEntityId(_))), "{read:?}");
    // A state read as the wrong type is a typed error, not a panic.
    let id = counter_id("typed");
    client
        .signal_entity(&id, Operation::named("add", 1))
        .await
        .expect("durable");
    until_state::<i64>(&client, &id, |s| s == Some(&1)).await;
    let wrong = client.read_entity_state::<String>(&id).await;
    assert!(matches!(wrong, Err(Error::EntityState { .. })), "{wrong:?}");
    runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entities_are_listed_by_name_prefix_a_page_at_a_time() {
    let store = TestStore::new();
    let (runtime, client) = store.start().await;
    for key in 0..7 {
        let id = counter_id(&format!("k{key}"));
        client
            .signal_entity(&id, Operation::named("add", key))
            .await
            .expect("durable");
    }
    let seq = EntityId::new("sequence", "x");
    client
        .signal_entity_by_name(&seq, "push", 1)
        .await
        .expect("durable");
    until_state::<Vec<u32>>(&client, &seq, |s| s.is_some()).await;
    for key in 0..7 {
        until_state::<i64>(&client, &counter_id(&format!("k{key}")), |s| {
            s == Some(&key)
        })
        .await;
    }
    let mut query = EntityQuery {
        name_prefix: Some("count".into()),
        page_size: 3,
        ..EntityQuery::default()
    };
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let page = client.list_entities(&query).await.expect("lists");
        pages += 1;
        assert!(page.entities.len() <= 3);
        seen.extend(
            page.entities
                .into_iter()
                .map(|e| (e.entity_id, e.state.map(|s| s.to_string()))),
        );
        match page.continuation_token {
            Some(token) => query.continuation_token = Some(token),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let expected: Vec<(String, Option<String>)> = (0..7)
        .map(|k| (format!("@counter@k{k}"), Some(k.to_string())))
        .collect();
    assert_eq!(seen, expected);
    runtime.shutdown().await;
}
