//! Impl-style entities: every `pub fn` is an operation (sync or async; `&mut self` changes the
//! state, `&self` reads it, `self` deletes it), sent through typed proxies (`Counter::add_op(5)`)
//! or by name; an `Err` fails the operation alone. On both engine paths and across a restart.

mod support;

use durable_runtime::prelude::*;
use durable_runtime::{Error, Operation};
use serde::{Deserialize, Serialize};
use support::entities::{until_logged, until_state};
use support::{CACHES, TestStore, cache_settings};

#[derive(Default, Serialize, Deserialize, Debug, PartialEq)]
struct Counter {
    value: i64,
    ops: u32,
}

#[entity]
impl Counter {
    pub fn add(&mut self, n: i64) {
        self.value += n;
        self.ops += 1;
    }

    pub fn get(&self) -> i64 {
        self.value
    }

    pub fn reset(&mut self) {
        self.value = 0;
    }

    pub fn delete(self) {}

    /// Async, several inputs, and a `Result`: an `Err` leaves the state as it was.
    pub async fn add_checked(&mut self, n: i64, limit: i64) -> Result<i64, String> {
        self.value += n;
        tokio::task::yield_now().await;
        if self.value > limit {
            return Err(format!("{} is over the limit {limit}", self.value));
        }
        Ok(self.value)
    }

    /// Not an operation.
    #[expect(dead_code, reason = "shows that a private fn is not an operation")]
    fn bump(&mut self) {
        self.ops += 1;
    }
}

/// Registered under another name.
#[derive(Default, Serialize, Deserialize)]
struct Flag(bool);

#[entity(name = "switch")]
impl Flag {
    pub fn set(&mut self, on: bool) {
        self.0 = on;
    }
}

fn counter(key: &str) -> EntityId {
    Counter::entity_id(key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_and_by_name_operations_run_on_both_paths() {
    for cache in CACHES {
        let store = TestStore::new();
        let (runtime, client) = store.start_with(cache_settings(cache)).await;
        let id = counter("a");
        assert_eq!(id.to_string(), "@counter@a");
        client
            .signal_entity(&id, Counter::add_op(5))
            .await
            .expect("durable");
        client
            .signal_entity(&id, Counter::add_checked_op(10, 100))
            .await
            .expect("durable");
        // Over the limit: fails, and the state stays at 15.
        client
            .signal_entity(&id, Counter::add_checked_op(1000, 100))
            .await
            .expect("durable");
        // By name, as from HTTP: several inputs are a JSON array.
        client
            .signal_entity_by_name(&id, "add_checked", (1, 100))
            .await
            .expect("durable");
        client
            .signal_entity_by_name(&id, "add", "x")
            .await
            .expect("durable");
        client
            .signal_entity_by_name(&id, "bump", ())
            .await
            .expect("durable");
        client
            .signal_entity(&id, Counter::get_op())
            .await
            .expect("durable");
        let log = until_logged(&client, &id, 7).await;
        let state = client
            .read_entity_state::<Counter>(&id)
            .await
            .expect("reads")
            .expect("state");
        // `add` ran once (the bad input and `bump`, no operation, failed).
        assert_eq!(state, Counter { value: 16, ops: 1 }, "cache {cache:?}");
        let failed: Vec<&str> = log
            .iter()
            .filter(|e| !e.ok)
            .map(|e| e.operation.as_str())
            .collect();
        assert_eq!(failed, ["add_checked", "add", "bump"], "cache {cache:?}");
        assert!(
            log[2]
                .error
                .as_deref()
                .is_some_and(|e| e.contains("over the limit"))
        );
        runtime.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_by_value_deletes_the_state_and_the_entity_comes_back_after_a_restart() {
    let store = TestStore::new();
    let id = counter("d");
    for (restarts, cache) in CACHES.into_iter().enumerate() {
        let (runtime, client) = store.restart(cache_settings(cache)).await;
        if restarts > 0 {
            // The state committed before the restart is read back.
            assert_eq!(
                client
                    .read_entity_state::<Counter>(&id)
                    .await
                    .expect("reads"),
                Some(Counter { value: 3, ops: 1 })
            );
            client
                .signal_entity(&id, Counter::delete_op())
                .await
                .expect("durable");
            until_state::<Counter>(&client, &id, |s| s.is_none()).await;
        }
        client
            .signal_entity(&id, Counter::add_op(3))
            .await
            .expect("durable");
        until_state::<Counter>(&client, &id, |s| s.is_some_and(|c| c.value == 3)).await;
        runtime.shutdown().await;
    }
    let (runtime, client) = store.restart(|b| b).await;
    let flag = EntityId::new("switch", "1");
    client
        .signal_entity(&flag, Flag::set_op(true))
        .await
        .expect("durable");
    until_state::<bool>(&client, &flag, |s| s == Some(&true)).await;
    runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_typed_operation_sent_to_another_entity_is_refused() {
    let store = TestStore::new();
    let (runtime, client) = store.start().await;
    let wrong = client
        .signal_entity(&EntityId::new("switch", "1"), Counter::add_op(1))
        .await;
    assert!(
        matches!(
            wrong,
            Err(Error::WrongEntity {
                expected: "counter",
                ..
            })
        ),
        "{wrong:?}"
    );
    let named: Operation = Operation::named("add", 1);
    assert_eq!(named.entity_name(), None);
    assert_eq!(Counter::add_op(1).entity_name(), Some("counter"));
    assert_eq!(Counter::ENTITY_NAME, "counter");
    runtime.shutdown().await;
}
