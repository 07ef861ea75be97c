//! Durable entities in SQLite: queueing operations, committing a batch of them, purging, and
//! the reads an entity's worker, recovery and the client make.

use super::apply::{NextIds, insert_message, to_json};
use super::error::SqlContext;
use super::large_values::{self, JsonParam};
use crate::history::HistoryEvent;
use crate::payload::Payload;
use crate::store::{
    ENTITY_LOG_LEN, EntityCommit, EntityLogEntry, EntityMessage, EntityPage, EntityQuery,
    EntityRecord, EntityReply, EntitySnapshot, EntityState, EntityWork, NewEntityMessage,
    RawEntityMessage, StepCommit, StoreError, UNLOCK_OPERATION, decode_state,
};
use rusqlite::{Connection, OptionalExtension, params};

/// Queues `message`.
pub(super) fn queue(
    conn: &Connection,
    ids: &mut NextIds,
    message: &NewEntityMessage,
) -> Result<EntityMessage, StoreError> {
    let id = NextIds::take(&mut ids.entity_messages);
    let reply = message.reply.as_ref().map(to_json).transpose()?;
    conn.prepare_cached(
        "INSERT INTO entity_messages (id, entity_id, operation, input, sender, reply, created_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        id,
        message.entity_id,
        message.operation,
        JsonParam(message.input.as_str()),
        message.sender,
        reply,
        message.created_ms
    ])?;
    large_values::fill(conn, "entity_messages", "input", id, message.input.as_str())?;
    Ok(EntityMessage {
        id,
        message: message.clone(),
    })
}

/// Applies a batch: fences it by version and consumed messages, then writes the state, deletes
/// the messages, queues the signals and appends to the log.
pub(super) fn commit(
    conn: &Connection,
    ids: &mut NextIds,
    commit: &EntityCommit,
) -> Result<EntityWork, StoreError> {
    let row: Option<(i64, i64)> = conn
        .prepare_cached("SELECT version, op_count FROM entities WHERE entity_id = ?1")?
        .query_row(params![commit.entity_id], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .optional()
        .at("entities", &commit.entity_id)?;
    let (version, op_count) = row.unwrap_or((0, 0));
    if version as u64 != commit.expected_version {
        return Err(StoreError::Fenced(format!(
            "entity '{}' is at version {version}, not {}",
            commit.entity_id, commit.expected_version
        )));
    }
    let mut gone = Vec::new();
    {
        let mut delete =
            conn.prepare_cached("DELETE FROM entity_messages WHERE id = ?1 AND entity_id = ?2")?;
        for id in &commit.consumed {
            if delete.execute(params![id, commit.entity_id])? == 0 {
                gone.push(*id);
            }
        }
    }
    if !gone.is_empty() {
        return Err(StoreError::MessagesGone(gone));
    }
    let (state, keep) = match &commit.state {
        EntityState::Set(payload) => (Some(payload.as_str()), false),
        EntityState::Deleted => (None, false),
        EntityState::Unchanged => (None, true),
    };
    let new_count = op_count + commit.log.len() as i64;
    conn.prepare_cached(
        "INSERT INTO entities
             (entity_id, name, state, version, op_count, locked_by, created_ms, updated_ms)
         VALUES (?1, ?2, ?3, 1, ?4, ?6, ?5, ?5)
         ON CONFLICT (entity_id) DO UPDATE SET
             state = CASE WHEN ?7 THEN entities.state ELSE ?3 END, version = version + 1,
             op_count = ?4, updated_ms = ?5, locked_by = ?6",
    )?
    .execute(params![
        commit.entity_id,
        commit.name,
        state,
        new_count,
        commit.timestamp_ms,
        commit.locked_by,
        keep
    ])?;
    // Only the last lines of a large batch can survive the bound: write only those.
    let skip = commit.log.len().saturating_sub(ENTITY_LOG_LEN);
    {
        let mut insert = conn.prepare_cached(
            "INSERT OR REPLACE INTO entity_log
                 (entity_id, seq, operation, sender, ok, error, timestamp_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        for (index, entry) in commit.log.iter().enumerate().skip(skip) {
            insert.execute(params![
                commit.entity_id,
                op_count + index as i64,
                entry.operation,
                entry.sender,
                entry.ok,
                entry.error,
                entry.timestamp_ms
            ])?;
        }
    }
    if !commit.log.is_empty() {
        conn.prepare_cached("DELETE FROM entity_log WHERE entity_id = ?1 AND seq < ?2")?
            .execute(params![commit.entity_id, new_count - ENTITY_LOG_LEN as i64])?;
    }
    let mut signals = Vec::with_capacity(commit.signals.len());
    for signal in &commit.signals {
        signals.push(queue(conn, ids, signal)?);
    }
    let mut messages = Vec::with_capacity(commit.responses.len() + commit.starts.len());
    for start in &commit.starts {
        messages.push(super::apply::create_instance(conn, ids, start, None)?);
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
        messages.push(insert_message(
            conn,
            ids,
            &reply.instance_id,
            &reply.execution_id,
            &event,
        )?);
    }
    Ok(EntityWork { signals, messages })
}

/// Queues the operations an orchestration step sends: one per `EntityOperationCalled` event
/// it appends, in the step's transaction (a call's result goes back to the step's run).
pub(super) fn send_from_step(
    conn: &Connection,
    ids: &mut NextIds,
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
        sent.push(queue(
            conn,
            ids,
            &NewEntityMessage {
                entity_id: call.entity_id.clone(),
                operation: call.operation.clone(),
                input: call.input.clone(),
                sender: step.instance_id.clone(),
                created_ms: step.timestamp_ms,
                reply,
            },
        )?);
    }
    Ok(sent)
}

/// Releases the entity locks `instance_id` holds or asked for (it has ended): queues an unlock
/// from it to each of those entities, after whatever it sent them before (a lock request not
/// granted yet is granted, then released).
pub(super) fn release_locks(
    conn: &Connection,
    ids: &mut NextIds,
    instance_id: &str,
    timestamp_ms: i64,
) -> Result<Vec<EntityMessage>, StoreError> {
    let entities: Vec<String> = {
        let mut stmt = conn.prepare_cached(
            "SELECT entity_id FROM entities WHERE locked_by = ?1
             UNION
             SELECT entity_id FROM entity_messages
             WHERE sender = ?1 AND operation = '__durable.lock'",
        )?;
        let rows = stmt.query_map(params![instance_id], |row| row.get(0))?;
        rows.collect::<Result<_, _>>().at("entities", instance_id)?
    };
    let mut sent = Vec::with_capacity(entities.len());
    for entity_id in entities {
        sent.push(queue(
            conn,
            ids,
            &NewEntityMessage {
                entity_id,
                operation: UNLOCK_OPERATION.to_string(),
                input: Payload::null(),
                sender: instance_id.to_string(),
                created_ms: timestamp_ms,
                reply: None,
            },
        )?);
    }
    Ok(sent)
}

/// Deletes those of `entity_ids` that have no state and nothing queued.
pub(super) fn purge(conn: &Connection, entity_ids: &[String]) -> Result<u64, StoreError> {
    let mut purged = 0;
    let mut delete = conn.prepare_cached(
        "DELETE FROM entities WHERE entity_id = ?1 AND state IS NULL AND locked_by IS NULL
         AND NOT EXISTS (SELECT 1 FROM entity_messages m WHERE m.entity_id = ?1)",
    )?;
    for id in entity_ids {
        purged += delete.execute(params![id])? as u64;
    }
    Ok(purged)
}

/// An entity's state (its text, or why it cannot be read as text), version and lock holder.
type StateRow = (Result<Option<String>, String>, i64, Option<String>);

/// The entity's state, version and queue, in one read transaction. A state or a queued row
/// that does not decode is reported in the snapshot, not as an error: it must fail only itself.
pub(super) fn load(conn: &Connection, entity_id: &str) -> Result<EntitySnapshot, StoreError> {
    let tx = conn.unchecked_transaction()?;
    let row: Option<StateRow> = tx
        .prepare_cached("SELECT state, version, locked_by FROM entities WHERE entity_id = ?1")?
        .query_row(params![entity_id], |row| {
            Ok((
                row.get::<_, Option<String>>(0)
                    .map_err(|err| err.to_string()),
                row.get(1)?,
                row.get(2)?,
            ))
        })
        .optional()
        .at("entities", entity_id)?;
    let (state, version, locked_by) = row.unwrap_or((Ok(None), 0, None));
    let (state, corrupt_state) = match state {
        Ok(None) => (None, None),
        Ok(Some(text)) => match decode_state(entity_id, text) {
            Ok(state) => (Some(state), None),
            Err(reason) => (None, Some(reason)),
        },
        Err(err) => (
            None,
            Some(format!(
                "the stored state of entity '{entity_id}' (entities row) is not text: {err}"
            )),
        ),
    };
    let mut pending = Vec::new();
    let mut corrupt = Vec::new();
    {
        // A large input (a blob: see `large_values`) reads as '' here, then straight from its
        // blob.
        let mut stmt = tx.prepare_cached(
            "SELECT id, operation, CASE WHEN typeof(input) = 'blob' THEN '' ELSE input END,
                    sender, created_ms, reply
             FROM entity_messages WHERE entity_id = ?1 ORDER BY id",
        )?;
        let mut rows = stmt.query(params![entity_id])?;
        while let Some(row) = rows.next().at("entity_messages", entity_id)? {
            let text = |index| row.get::<_, String>(index).map_err(|err| err.to_string());
            let id: i64 = row.get(0).at("entity_messages", entity_id)?;
            let input = match text(2) {
                Ok(json) if json.is_empty() => {
                    large_values::read(&tx, "entity_messages", "input", id, entity_id)
                        .map_err(|err| err.to_string())
                }
                other => other,
            };
            let raw = RawEntityMessage {
                id,
                operation: text(1),
                input,
                sender: text(3),
                created_ms: row.get(4).map_err(|err| err.to_string()),
                reply: row.get(5).map_err(|err| err.to_string()),
            };
            match raw.decode(entity_id) {
                Ok(message) => pending.push(message),
                Err(bad) => corrupt.push(*bad),
            }
        }
    }
    tx.commit()?;
    Ok(EntitySnapshot {
        state,
        corrupt_state,
        version: version as u64,
        locked_by,
        pending,
        corrupt,
    })
}

/// Ids of entities with operations queued, after `after`.
pub(super) fn with_pending(
    conn: &Connection,
    after: &str,
    limit: usize,
) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT DISTINCT entity_id FROM entity_messages WHERE entity_id > ?1
         ORDER BY entity_id LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![after, limit.min(i64::MAX as usize) as i64], |row| {
        row.get(0)
    })?;
    rows.collect::<Result<_, _>>().at("entity_messages", after)
}

/// The entity's row, if it exists.
pub(super) fn read(conn: &Connection, entity_id: &str) -> Result<Option<EntityRecord>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!("{SELECT_ENTITY} WHERE e.entity_id = ?1"))?;
    let mut rows = stmt.query(params![entity_id])?;
    match rows.next().at("entities", entity_id)? {
        Some(row) => Ok(Some(record(row, entity_id)?)),
        None => Ok(None),
    }
}

/// The columns of an [`EntityRecord`].
const SELECT_ENTITY: &str = "SELECT e.entity_id, e.state, e.version, e.updated_ms,
        (SELECT COUNT(*) FROM entity_messages m WHERE m.entity_id = e.entity_id), e.locked_by
    FROM entities e";

fn record(row: &rusqlite::Row<'_>, key: &str) -> Result<EntityRecord, StoreError> {
    let entity_id: String = row.get(0).at("entities", key)?;
    let (state, corrupt_state) = match row.get::<_, Option<String>>(1) {
        Ok(None) => (None, None),
        Ok(Some(text)) => match decode_state(&entity_id, text) {
            Ok(state) => (Some(state), None),
            Err(reason) => (None, Some(reason)),
        },
        Err(err) => (
            None,
            Some(format!(
                "the stored state of entity '{entity_id}' (entities row) is not text: {err}"
            )),
        ),
    };
    Ok(EntityRecord {
        state,
        corrupt_state,
        version: row.get::<_, i64>(2).at("entities", &entity_id)? as u64,
        updated_ms: row.get(3).at("entities", &entity_id)?,
        pending_operations: row.get::<_, i64>(4).at("entities", &entity_id)? as u64,
        locked_by: row.get(5).at("entities", &entity_id)?,
        entity_id,
    })
}

/// Default page size of a listing.
const DEFAULT_PAGE: usize = 100;

/// One page of entities. The token is the last id of the page: the next page starts after it.
pub(super) fn list(conn: &Connection, query: &EntityQuery) -> Result<EntityPage, StoreError> {
    let page = match query.page_size {
        0 => DEFAULT_PAGE,
        n => n,
    };
    let after = query.continuation_token.clone().unwrap_or_default();
    // `@name@key` ids sort by name first: a name prefix is the range of ids starting with
    // `@prefix`.
    let prefix = format!("@{}", query.name_prefix.as_deref().unwrap_or(""));
    // The key range of the prefix, so that the scan starts and stops there.
    let end = successor(&prefix);
    let mut stmt = conn.prepare_cached(&format!(
        "{SELECT_ENTITY} WHERE e.entity_id > ?1 AND e.entity_id >= ?2
           AND (?5 IS NULL OR e.entity_id < ?5)
           AND substr(e.entity_id, 1, length(?2)) = ?2
           AND (?3 = 0 OR e.state IS NOT NULL)
           AND (?6 IS NULL OR e.updated_ms >= ?6)
           AND (?7 IS NULL OR e.updated_ms < ?7)
         ORDER BY e.entity_id LIMIT ?4"
    ))?;
    let mut rows = stmt.query(params![
        after,
        prefix,
        query.with_state_only,
        (page + 1).min(i64::MAX as usize) as i64,
        end,
        query.last_operation_from_ms,
        query.last_operation_to_ms
    ])?;
    let mut entities = Vec::new();
    while let Some(row) = rows.next().at("entities", &after)? {
        entities.push(record(row, &after)?);
    }
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

/// The smallest text above every text starting with `prefix` (its last character incremented),
/// if there is one.
fn successor(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = (u32::from(last) + 1..=u32::from(char::MAX)).find_map(char::from_u32);
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// The entity's log, oldest first.
pub(super) fn log(conn: &Connection, entity_id: &str) -> Result<Vec<EntityLogEntry>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT operation, sender, ok, error, timestamp_ms FROM entity_log
         WHERE entity_id = ?1 ORDER BY seq",
    )?;
    let rows = stmt.query_map(params![entity_id], |row| {
        Ok(EntityLogEntry {
            operation: row.get(0)?,
            sender: row.get(1)?,
            ok: row.get(2)?,
            error: row.get(3)?,
            timestamp_ms: row.get(4)?,
        })
    })?;
    rows.collect::<Result<_, _>>().at("entity_log", entity_id)
}

#[cfg(test)]
mod tests {
    use super::successor;

    #[test]
    fn a_prefix_range_ends_at_its_successor() {
        assert_eq!(successor("@count").as_deref(), Some("@counu"));
        assert_eq!(successor("@").as_deref(), Some("A"));
        // Past the surrogates, and past the last character.
        assert_eq!(successor("a\u{D7FF}").as_deref(), Some("a\u{E000}"));
        assert_eq!(successor("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(successor("\u{10FFFF}"), None);
        for text in ["@counter@k1", "@count", "@count\u{10FFFF}x"] {
            assert!(text < successor("@count").unwrap_or_default().as_str());
        }
    }
}
