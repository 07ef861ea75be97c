//! Helpers for the entity tests.

use super::WAIT;
use durable_runtime::{Client, EntityId};
use serde::de::DeserializeOwned;

/// Waits (up to [`WAIT`]) until the entity's committed state satisfies `done`; returns it.
pub async fn until_state<T: DeserializeOwned + std::fmt::Debug>(
    client: &Client,
    id: &EntityId,
    done: impl Fn(Option<&T>) -> bool,
) -> Option<T> {
    let mut last = None;
    let reached = async {
        loop {
            let state = client.read_entity_state::<T>(id).await.expect("reads");
            if done(state.as_ref()) {
                return state;
            }
            last = Some(format!("{state:?}"));
            tokio::task::yield_now().await;
        }
    };
    match tokio::time::timeout(WAIT, reached).await {
        Ok(state) => state,
        Err(_) => panic!("entity {id} did not reach the state within {WAIT:?} (last: {last:?})"),
    }
}

/// Waits (up to [`WAIT`]) until the entity's log holds `count` operations (at most
/// `ENTITY_LOG_LEN`); returns it.
pub async fn until_logged(
    client: &Client,
    id: &EntityId,
    count: usize,
) -> Vec<durable_runtime::store::EntityLogEntry> {
    let reached = async {
        loop {
            let log = client.entity_log(id).await.expect("reads the log");
            if log.len() >= count {
                return log;
            }
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(WAIT, reached)
        .await
        .unwrap_or_else(|_| panic!("entity {id} did not log {count} operations within {WAIT:?}"))
}
