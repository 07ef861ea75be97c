//! Durable entities in PostgreSQL: queueing operations, committing a batch of them, purging,
//! and the reads an entity's worker, recovery and the client make.

use super::apply::{insert_message, to_json};
use super::db::{Db, col, unsigned};
use crate::history::HistoryEvent;
use crate::payload::Payload;
use crate::store::{
    ENTITY_LOG_LEN, EntityCommit, EntityLogEntry, EntityMessage, EntityPage, EntityQuery,
    EntityRecord, EntityReply, EntitySnapshot, EntityState, EntityWork, NewEntityMessage,
    RawEntityMessage, StepCommit, StoreError, UNLOCK_OPERATION, decode_state,
};
use tokio_postgres::Row;

/// Queues `message`.
pub(super) async fn queue(
    db: &Db<'_>,
    message: &NewEntityMessage,
) -> Result<EntityMessage, StoreError> {
    let reply = message.reply.as_ref().map(to_json).transpose()?;
    let row = db
        .query_opt(
            "INSERT INTO entity_messages (entity_id, operation, input, sender, reply, created_ms)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            &[
                &message.entity_id,
                &message.operation,
                &message.input.as_str(),
                &message.sender,
                &reply,
                &message.created_ms,
            ],
        )
        .await?
        .ok_or(StoreError::UnexpectedAnswer("entity message insert"))?;
    Ok(EntityMessage {
        id: col(&row, 0, "entity_messages", &message.entity_id)?,
        message: message.clone(),
    })
}

/// Applies a batch: fences it by version and consumed messages, then writes the state, deletes
/// the messages, queues the signals and appends to the log.
pub(super) async fn commit(db: &Db<'_>, commit: &EntityCommit) -> Result<EntityWork, StoreError> {
    let id = &commit.entity_id;
    let row = db
        .query_opt(
            "SELECT version, op_count FROM entities WHERE entity_id = $1 FOR UPDATE",
            &[id],
        )
        .await?;
    let (version, op_count): (i64, i64) = match &row {
        Some(row) => (col(row, 0, "entities", id)?, col(row, 1, "entities", id)?),
        None => (0, 0),
    };
    let fenced = || {
        StoreError::Fenced(format!(
            "entity '{id}' is at version {version}, not {}",
            commit.expected_version
        ))
    };
    if unsigned(version, "entities", id, "version")? != commit.expected_version {
        return Err(fenced());
    }
    if !commit.consumed.is_empty() {
        let deleted: Vec<i64> = db
            .query(
                "DELETE FROM entity_messages WHERE id = ANY($1) AND entity_id = $2 RETURNING id",
                &[&commit.consumed, id],
            )
            .await?
            .iter()
            .map(|row| col(row, 0, "entity_messages", id))
            .collect::<Result<_, _>>()?;
        let gone: Vec<i64> = commit
            .consumed
            .iter()
            .copied()
            .filter(|consumed| !deleted.contains(consumed))
            .collect();
        if !gone.is_empty() {
            return Err(StoreError::MessagesGone(gone));
        }
    }
    let (state, keep) = match &commit.state {
        EntityState::Set(payload) => (Some(payload.as_str()), false),
        EntityState::Deleted => (None, false),
        EntityState::Unchanged => (None, true),
    };
    let new_count = op_count + commit.log.len() as i64;
    // The version check again in the upsert: an entity's first batch has no row to lock, and a
    // concurrent first batch elsewhere must not be overwritten.
    let written = db
        .execute(
            "INSERT INTO entities
                 (entity_id, name, state, version, op_count, locked_by, created_ms, updated_ms)
             VALUES ($1, $2, $3, 1, $4, $6, $5, $5)
             ON CONFLICT (entity_id) DO UPDATE SET
                 state = CASE WHEN $8 THEN entities.state ELSE $3 END,
                 version = entities.version + 1, op_count = $4, updated_ms = $5, locked_by = $6
             WHERE entities.version = $7",
            &[
                id,
                &commit.name,
                &state,
                &new_count,
                &commit.timestamp_ms,
                &commit.locked_by,
                &version,
                &keep,
            ],
        )
        .await?;
    if written != 1 {
        return Err(fenced());
    }
    // Only the last lines of a large batch can survive the bound: write only those.
    let skip = commit.log.len().saturating_sub(ENTITY_LOG_LEN);
    for (index, entry) in commit.log.iter().enumerate().skip(skip) {
        db.execute(
            "INSERT INTO entity_log (entity_id, seq, operation, sender, ok, error, timestamp_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (entity_id, seq) DO UPDATE SET operation = EXCLUDED.operation,
                 sender = EXCLUDED.sender, ok = EXCLUDED.ok, error = EXCLUDED.error,
                 timestamp_ms = EXCLUDED.timestamp_ms",
            &[
                id,
                &(op_count + index as i64),
                &entry.operation,
                &entry.sender,
                &entry.ok,
                &entry.error,
                &entry.timestamp_ms,
            ],
        )
        .await?;
    }
    if !commit.log.is_empty() {
        db.execute(
            "DELETE FROM entity_log WHERE entity_id = $1 AND seq < $2",
            &[id, &(new_count - ENTITY_LOG_LEN as i64)],
        )
        .await?;
    }
    let mut signals = Vec::with_capacity(commit.signals.len());
    for signal in &commit.signals {
        signals.push(queue(db, signal).await?);
    }
    let mut messages = Vec::with_capacity(commit.responses.len() + commit.starts.len());
    for start in &commit.starts {
        messages.push(super::apply::create_instance(db, start, None).await?);
    }
    for (reply, result) in &commit.responses {
        let event = match result {
            Ok(result) => HistoryEvent::EntityOperationCompleted {
                task_id: reply.task_id,
                result: result.clone(),
            },
            Err(failure) => HistoryEvent::EntityOperationFailed {
                task_id: reply.task_id,
                failure: failure.clone(),
            },
        };
        messages.push(insert_message(db, &reply.instance_id, &reply.execution_id, &event).await?);
    }
    Ok(EntityWork { signals, messages })
}

/// Queues the operations an orchestration step sends: one per `EntityOperationCalled` event
/// it appends, in the step's transaction (a call's result goes back to the step's run).
pub(super) async fn send_from_step(
    db: &Db<'_>,
    step: &StepCommit,
) -> Result<Vec<EntityMessage>, StoreError> {
    let mut sent = Vec::new();
    for event in &step.events {
        let HistoryEvent::EntityOperationCalled(call) = event else {
            continue;
        };
        let reply = (!call.signal).then(|| EntityReply {
            instance_id: step.instance_id.clone(),
            execution_id: step.execution_id.to_string(),
            task_id: call.task_id,
        });
        sent.push(
            queue(
                db,
                &NewEntityMessage {
                    entity_id: call.entity_id.clone(),
                    operation: call.operation.clone(),
                    input: call.input.clone(),
                    sender: step.instance_id.clone(),
                    created_ms: step.timestamp_ms,
                    reply,
                },
            )
            .await?,
        );
    }
    Ok(sent)
}

/// The entities an instance (`$1`) holds locked or asked to lock.
pub(super) const LOCKS_HELD: &str = "SELECT entity_id FROM entities WHERE locked_by = $1
     UNION
     SELECT entity_id FROM entity_messages
     WHERE sender = $1 AND operation = '__durable.lock'";

/// Releases the entity locks `instance_id` holds or asked for (it has ended): queues an unlock
/// from it to each of those entities, after whatever it sent them before.
pub(super) async fn release_locks(
    db: &Db<'_>,
    instance_id: &str,
    timestamp_ms: i64,
) -> Result<Vec<EntityMessage>, StoreError> {
    let entities: Vec<String> = db
        .query(LOCKS_HELD, &[&instance_id])
        .await?
        .iter()
        .map(|row| col(row, 0, "entities", instance_id))
        .collect::<Result<_, _>>()?;
    let mut sent = Vec::with_capacity(entities.len());
    for entity_id in entities {
        sent.push(
            queue(
                db,
                &NewEntityMessage {
                    entity_id,
                    operation: UNLOCK_OPERATION.to_string(),
                    input: Payload::null(),
                    sender: instance_id.to_string(),
                    created_ms: timestamp_ms,
                    reply: None,
                },
            )
            .await?,
        );
    }
    Ok(sent)
}

/// Deletes those of `entity_ids` that have no state and nothing queued.
pub(super) async fn purge(db: &Db<'_>, entity_ids: &[String]) -> Result<u64, StoreError> {
    let mut purged = 0;
    for id in entity_ids {
        let deleted = db
            .execute(
                "DELETE FROM entities WHERE entity_id = $1 AND state IS NULL AND locked_by IS NULL
                 AND NOT EXISTS (SELECT 1 FROM entity_messages m WHERE m.entity_id = $1)",
                &[id],
            )
            .await?;
        if deleted > 0 {
            db.execute("DELETE FROM entity_log WHERE entity_id = $1", &[id])
                .await?;
        }
        purged += deleted;
    }
    Ok(purged)
}

/// The entity's state, version and queue, read at one moment (one statement: a consistent
/// snapshot).
pub(super) async fn load(db: &Db<'_>, entity_id: &str) -> Result<EntitySnapshot, StoreError> {
    let rows = db
        .query(
            "SELECT e.state, e.version, e.locked_by, m.id, m.operation, m.input, m.sender,
                    m.created_ms, m.reply
             FROM (SELECT $1::text AS entity_id) k
             LEFT JOIN entities e ON e.entity_id = k.entity_id
             LEFT JOIN entity_messages m ON m.entity_id = k.entity_id
             ORDER BY m.id",
            &[&entity_id],
        )
        .await?;
    let mut snapshot = EntitySnapshot::default();
    for (n, row) in rows.iter().enumerate() {
        if n == 0 {
            // A state that does not decode fails only the entity's operations, not its load.
            match row.try_get::<_, Option<String>>(0) {
                Ok(None) => {}
                Ok(Some(text)) => match decode_state(entity_id, text) {
                    Ok(state) => snapshot.state = Some(state),
                    Err(reason) => snapshot.corrupt_state = Some(reason),
                },
                Err(err) => {
                    snapshot.corrupt_state = Some(format!(
                        "the stored state of entity '{entity_id}' (entities row) is not text: {err}"
                    ))
                }
            }
            let version: Option<i64> = col(row, 1, "entities", entity_id)?;
            snapshot.version = unsigned(version.unwrap_or(0), "entities", entity_id, "version")?;
            snapshot.locked_by = col(row, 2, "entities", entity_id)?;
        }
        let Some(id) = col::<Option<i64>>(row, 3, "entity_messages", entity_id)? else {
            continue;
        };
        let text = |index| {
            row.try_get::<_, String>(index)
                .map_err(|err| err.to_string())
        };
        let raw = RawEntityMessage {
            id,
            operation: text(4),
            input: text(5),
            sender: text(6),
            created_ms: row.try_get(7).map_err(|err| err.to_string()),
            reply: row.try_get(8).map_err(|err| err.to_string()),
        };
        match raw.decode(entity_id) {
            Ok(message) => snapshot.pending.push(message),
            Err(bad) => snapshot.corrupt.push(*bad),
        }
    }
    Ok(snapshot)
}

/// Ids of entities with operations queued, after `after`.
pub(super) async fn with_pending(
    db: &Db<'_>,
    after: &str,
    limit: usize,
    scope: Option<Vec<i16>>,
) -> Result<Vec<String>, StoreError> {
    db.query(
        "SELECT DISTINCT entity_id FROM entity_messages WHERE entity_id > $1
           AND ($3::smallint[] IS NULL OR part = ANY($3))
         ORDER BY entity_id LIMIT $2",
        &[&after, &(limit.min(i64::MAX as usize) as i64), &scope],
    )
    .await?
    .iter()
    .map(|row| col(row, 0, "entity_messages", after))
    .collect()
}

/// The columns of an [`EntityRecord`].
const SELECT_ENTITY: &str = "SELECT e.entity_id, e.state, e.version, e.updated_ms,
        (SELECT COUNT(*) FROM entity_messages m WHERE m.entity_id = e.entity_id), e.locked_by
    FROM entities e";

/// The entity's row, if it exists.
pub(super) async fn read(db: &Db<'_>, entity_id: &str) -> Result<Option<EntityRecord>, StoreError> {
    let sql = format!("{SELECT_ENTITY} WHERE e.entity_id = $1");
    match db.query_opt(&sql, &[&entity_id]).await? {
        Some(row) => Ok(Some(record(&row, entity_id)?)),
        None => Ok(None),
    }
}

fn record(row: &Row, key: &str) -> Result<EntityRecord, StoreError> {
    let entity_id: String = col(row, 0, "entities", key)?;
    let state: Option<String> = col(row, 1, "entities", &entity_id)?;
    let version: i64 = col(row, 2, "entities", &entity_id)?;
    let pending: i64 = col(row, 4, "entities", &entity_id)?;
    // A state that is not JSON is reported with its entity, not as the listing's error.
    let (state, corrupt_state) = match state.map(|text| decode_state(&entity_id, text)) {
        None => (None, None),
        Some(Ok(state)) => (Some(state), None),
        Some(Err(reason)) => (None, Some(reason)),
    };
    Ok(EntityRecord {
        state,
        corrupt_state,
        version: unsigned(version, "entities", &entity_id, "version")?,
        updated_ms: col(row, 3, "entities", &entity_id)?,
        pending_operations: unsigned(pending, "entities", &entity_id, "count")?,
        locked_by: col(row, 5, "entities", &entity_id)?,
        entity_id,
    })
}

/// Default page size of a listing.
const DEFAULT_PAGE: usize = 100;

/// One page of entities. The token is the last id of the page: the next page starts after it.
pub(super) async fn list(db: &Db<'_>, query: &EntityQuery) -> Result<EntityPage, StoreError> {
    let page = match query.page_size {
        0 => DEFAULT_PAGE,
        n => n,
    };
    let after = query.continuation_token.clone().unwrap_or_default();
    // `@name@key` ids sort by name first (ids are `COLLATE "C"`): a name prefix is an id range.
    let prefix = format!("@{}", query.name_prefix.as_deref().unwrap_or(""));
    let sql = format!(
        "{SELECT_ENTITY} WHERE e.entity_id > $1 AND starts_with(e.entity_id, $2)
           AND (NOT $3 OR e.state IS NOT NULL)
           AND ($5::BIGINT IS NULL OR e.updated_ms >= $5)
           AND ($6::BIGINT IS NULL OR e.updated_ms < $6)
         ORDER BY e.entity_id LIMIT $4"
    );
    let rows = db
        .query(
            &sql,
            &[
                &after,
                &prefix,
                &query.with_state_only,
                &((page + 1).min(i64::MAX as usize) as i64),
                &query.last_operation_from_ms,
                &query.last_operation_to_ms,
            ],
        )
        .await?;
    let mut entities = rows
        .iter()
        .map(|row| record(row, &after))
        .collect::<Result<Vec<_>, _>>()?;
    let continuation_token = if entities.len() > page {
        entities.truncate(page);
        entities.last().map(|e| e.entity_id.clone())
    } else {
        None
    };
    Ok(EntityPage {
        entities,
        continuation_token,
    })
}

/// The entity's log, oldest first.
pub(super) async fn log(db: &Db<'_>, entity_id: &str) -> Result<Vec<EntityLogEntry>, StoreError> {
    db.query(
        "SELECT operation, sender, ok, error, timestamp_ms FROM entity_log
         WHERE entity_id = $1 ORDER BY seq",
        &[&entity_id],
    )
    .await?
    .iter()
    .map(|row| {
        Ok(EntityLogEntry {
            operation: col(row, 0, "entity_log", entity_id)?,
            sender: col(row, 1, "entity_log", entity_id)?,
            ok: col(row, 2, "entity_log", entity_id)?,
            error: col(row, 3, "entity_log", entity_id)?,
            timestamp_ms: col(row, 4, "entity_log", entity_id)?,
        })
    })
    .collect()
}
