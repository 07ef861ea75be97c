//! The client's side of durable entities: signal them, read their state, list and purge them,
//! read their recent operations.

use super::Client;
use crate::entity::{EntityId, Operation};
use crate::error::Error;
use crate::store::{
    EntityLogEntry, EntityPage, EntityQuery, NewEntityMessage, StoreError, Write, Written,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

impl Client {
    /// Sends `operation` to the entity `id`, one way, returning once it is durable: from then
    /// on it runs exactly once, even if the process is killed before it does. Operations from
    /// one sender run in the order they were sent. The entity is created by its first
    /// operation.
    ///
    /// An id whose name no `#[entity]` of this program registers is
    /// [`Error::UnknownEntity`] (except on a handle without workers,
    /// [`open_client`](crate::RuntimeBuilder::open_client), which cannot know); a typed operation sent to an entity of another name,
    /// [`Error::WrongEntity`]; a store that cannot take writes now,
    /// [`Error::StoreUnavailable`] (nothing was sent).
    ///
    /// ```no_run
    /// # async fn demo(client: durable_runtime::Client) -> Result<(), durable_runtime::Error> {
    /// use durable_runtime::{EntityId, Operation};
    /// let id = EntityId::new("counter", "visits");
    /// client.signal_entity(&id, Operation::named("add", 1)).await?;
    /// # Ok(()) }
    /// ```
    pub async fn signal_entity<R>(
        &self,
        id: &EntityId,
        operation: Operation<R>,
    ) -> Result<(), Error> {
        self.signal(id, operation, None).await
    }

    /// [`signal_entity`](Self::signal_entity) for callers that may send the same signal twice
    /// (an HTTP request retried after a timeout whose write landed): a signal sent to this
    /// entity with the same `idempotency_key` before is not queued again, and the call
    /// succeeds. The operation then runs once.
    ///
    /// ```no_run
    /// # async fn demo(client: durable_runtime::Client) -> Result<(), durable_runtime::Error> {
    /// use durable_runtime::{EntityId, Operation};
    /// let id = EntityId::new("counter", "visits");
    /// client.signal_entity_once(&id, Operation::named("add", 1), "request-7f3a").await?;
    /// client.signal_entity_once(&id, Operation::named("add", 1), "request-7f3a").await?; // no-op
    /// # Ok(()) }
    /// ```
    pub async fn signal_entity_once<R>(
        &self,
        id: &EntityId,
        operation: Operation<R>,
        idempotency_key: &str,
    ) -> Result<(), Error> {
        self.signal(id, operation, Some(idempotency_key.to_string()))
            .await
    }

    async fn signal<R>(
        &self,
        id: &EntityId,
        operation: Operation<R>,
        idempotency_key: Option<String>,
    ) -> Result<(), Error> {
        self.check_entity(id, operation.entity_name(), operation.name())?;
        if operation.is_reserved() {
            return Err(Error::ReservedOperation(operation.name().to_string()));
        }
        let (name, input) = operation
            .into_parts()
            .map_err(|reason| Error::Serialize(serde::ser::Error::custom(reason)))?;
        let size = input.as_str().len();
        let limit = self.shared.limits.max_payload_bytes;
        if size > limit {
            return Err(Error::PayloadTooLarge {
                what: "operation input",
                size,
                limit,
            });
        }
        let message = NewEntityMessage {
            entity_id: id.to_string(),
            operation: name,
            input,
            sender: String::new(),
            created_ms: self.shared.clock.now_ms(),
            reply: None,
        };
        let write = match idempotency_key {
            Some(idempotency_key) => Write::SignalEntityOnce {
                message,
                idempotency_key,
            },
            None => Write::SignalEntity(message),
        };
        match self.shared.commit(write).await {
            Ok(_) => Ok(()),
            Err(err) => Err(self.write_failed(err)),
        }
    }

    /// [`signal_entity`](Self::signal_entity) by operation name, for input from HTTP or a
    /// CLI: the input is checked against the operation's type when it runs.
    pub async fn signal_entity_by_name(
        &self,
        id: &EntityId,
        operation: &str,
        input: impl Serialize,
    ) -> Result<(), Error> {
        self.signal_entity(id, Operation::named(operation.to_string(), input))
            .await
    }

    /// [`signal_entity_once`](Self::signal_entity_once) by operation name (HTTP's
    /// `Idempotency-Key`).
    pub async fn signal_entity_by_name_once(
        &self,
        id: &EntityId,
        operation: &str,
        input: impl Serialize,
        idempotency_key: &str,
    ) -> Result<(), Error> {
        self.signal_entity_once(
            id,
            Operation::named(operation.to_string(), input),
            idempotency_key,
        )
        .await
    }

    /// The entity's state as last committed, decoded as `T`; `None` if it has none (never
    /// created, or deleted). Operations still queued are not reflected.
    pub async fn read_entity_state<T: DeserializeOwned>(
        &self,
        id: &EntityId,
    ) -> Result<Option<T>, Error> {
        id.check()?;
        let entity_id = id.to_string();
        let Some(record) = self.shared.store.read_entity(&entity_id).await? else {
            return Ok(None);
        };
        if let Some(reason) = record.corrupt_state {
            return Err(Error::Store(StoreError::Corrupt {
                table: "entities",
                key: entity_id,
                reason,
            }));
        }
        record
            .state
            .map(|state| {
                state.decode().map_err(|source| Error::EntityState {
                    entity_id: entity_id.clone(),
                    expected: std::any::type_name::<T>(),
                    source,
                })
            })
            .transpose()
    }

    /// One page of entities, in id order (see [`EntityQuery`]: a name prefix, only those with
    /// a state, a page size, and the continuation token of the previous page).
    pub async fn list_entities(&self, query: &EntityQuery) -> Result<EntityPage, Error> {
        Ok(self.shared.store.list_entities(query).await?)
    }

    /// Removes the entities matching `query`'s name prefix that have no state (deleted, or
    /// never set) and no operation queued, with their logs; returns how many. Entities with a
    /// state are never removed. An entity that gets an operation after the purge is created
    /// again.
    pub async fn purge_entities(&self, name_prefix: Option<&str>) -> Result<u64, Error> {
        let mut purged = 0;
        let mut query = EntityQuery {
            name_prefix: name_prefix.map(str::to_string),
            page_size: 500,
            ..EntityQuery::default()
        };
        loop {
            let page = self.list_entities(&query).await?;
            let candidates: Vec<String> = page
                .entities
                .iter()
                .filter(|e| {
                    e.state.is_none() && e.corrupt_state.is_none() && e.pending_operations == 0
                })
                .map(|e| e.entity_id.clone())
                .collect();
            if !candidates.is_empty() {
                // The store checks again: an operation queued since the listing keeps it.
                // Nothing to dispatch: written directly.
                let written = self
                    .shared
                    .store
                    .write(Write::PurgeEntities {
                        entity_ids: candidates,
                    })
                    .await;
                purged += count_purged(written).map_err(|err| self.write_failed(err))?;
            }
            match page.continuation_token {
                Some(token) => query.continuation_token = Some(token),
                None => return Ok(purged),
            }
        }
    }

    /// The entity's last operations (at most [`ENTITY_LOG_LEN`](crate::store::ENTITY_LOG_LEN)),
    /// oldest first: what ran, who sent it, and why it failed if it did. For debugging.
    pub async fn entity_log(&self, id: &EntityId) -> Result<Vec<EntityLogEntry>, Error> {
        id.check()?;
        Ok(self.shared.store.entity_log(&id.to_string()).await?)
    }

    /// Refuses an id that is not valid or not registered here, and a typed operation of
    /// another entity.
    fn check_entity(
        &self,
        id: &EntityId,
        typed_for: Option<&'static str>,
        operation: &str,
    ) -> Result<(), Error> {
        id.check()?;
        if let Some(expected) = typed_for
            && expected != id.name()
        {
            return Err(Error::WrongEntity {
                operation: operation.to_string(),
                expected,
                entity_id: id.to_string(),
            });
        }
        // A handle without workers cannot know which entities the runtime that will run the
        // operation links in (as for `start_by_name`): that runtime keeps an operation for an
        // entity it does not know queued until one is registered.
        if self.shared.registry.entity(id.name()).is_none() && !self.detached {
            return Err(Error::UnknownEntity(id.name().to_string()));
        }
        Ok(())
    }
}

/// What a purge write answered.
fn count_purged(written: Result<Written, StoreError>) -> Result<u64, StoreError> {
    match written? {
        Written::Purged(count) => Ok(count),
        _ => Err(StoreError::UnexpectedAnswer("purge entities")),
    }
}
