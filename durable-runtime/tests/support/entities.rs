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

/// Waits (up to [`WAIT`]) until the entity has no operation queued and at least `ops`
/// operations in its log count (so every one sent was processed); returns its log.
pub async fn until_processed(
    client: &Client,
    id: &EntityId,
    ops: usize,
) -> Vec<durable_runtime::store::EntityLogEntry> {
    let reached = async {
        loop {
            let page = client
                .list_entities(&durable_runtime::store::EntityQuery {
                    name_prefix: Some(id.name().to_string()),
                    page_size: 1000,
                    ..Default::default()
                })
                .await
                .expect("lists");
            let idle = page
                .entities
                .iter()
                .find(|e| e.entity_id == id.to_string())
                .is_some_and(|e| e.pending_operations == 0);
            let log = client.entity_log(id).await.expect("reads the log");
            if idle && log.len() >= ops.min(durable_runtime::store::ENTITY_LOG_LEN) {
                return log;
            }
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(WAIT, reached)
        .await
        .unwrap_or_else(|_| panic!("entity {id} did not process its operations within {WAIT:?}"))
}
