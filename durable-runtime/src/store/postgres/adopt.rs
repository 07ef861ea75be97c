//! Adoption on a shared schema (see [`crate::store::Leases::adopt`]): the work stored for the
//! partitions a worker holds that it has not seen (created by another process, or left by the
//! partition's last holder) becomes this worker's, a page at a time.

use super::db::Db;
use super::lease::LeaseState;
use super::read;
use crate::store::{Adopted, EntityMessage, EntityReply, NewEntityMessage, StoreError};
use deadpool_postgres::Pool;

/// Takes over up to `limit` unseen rows of each kind of work in the partitions held (see
/// [`crate::store::Leases::adopt`]): marks them as this worker's and returns them. The four
/// statements are pipelined on one connection, in one transaction: rows marked this worker's
/// but not returned (one statement failed) would be adopted by no one.
pub(crate) async fn adopt(
    pool: &Pool,
    state: &LeaseState,
    limit: usize,
) -> Result<Adopted, StoreError> {
    let parts = state.held_partitions();
    if parts.is_empty() {
        return Ok(Adopted::default());
    }
    let client = pool.get().await?;
    let db = Db(&client);
    let me = &state.worker_id;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let claim = |table: &str, columns: &str| {
        format!(
            "UPDATE {table} SET origin = $1 WHERE id IN (
                 SELECT id FROM {table} WHERE part = ANY($2) AND origin IS DISTINCT FROM $1
                 ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED)
             RETURNING {columns}"
        )
    };
    let messages_sql = claim("messages", "id, instance_id, event, execution_id");
    let activities_sql = claim(
        "activities",
        "id, instance_id, task_id, name, input, execution_id",
    );
    let timers_sql = claim(
        "timers",
        "id, instance_id, task_id, fire_at_ms, execution_id",
    );
    let entities_sql = claim(
        "entity_messages",
        "id, entity_id, operation, input, sender, created_ms, reply",
    );
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] = [me, &parts, &limit];
    db.batch("BEGIN").await?;
    let pages = tokio::try_join!(
        read::decode_page(&db, "messages", &messages_sql, &params, read::message_row),
        read::decode_page(
            &db,
            "activities",
            &activities_sql,
            &params,
            read::activity_row
        ),
        read::decode_page(&db, "timers", &timers_sql, &params, read::timer_row),
        read::decode_page(
            &db,
            "entity_messages",
            &entities_sql,
            &params,
            entity_message_row
        ),
    );
    let (messages, activities, timers, entities) = match pages {
        Ok(pages) => pages,
        Err(err) => {
            let _ = db.batch("ROLLBACK").await;
            return Err(err);
        }
    };
    if let Err(err) = db.batch("COMMIT").await {
        // It may have committed: the rows would be this worker's, yet dropped here. Marked
        // unseen again at the next renewal, they are adopted by the adoption that follows it.
        state.unsee_later(&parts);
        let _ = db.batch("ROLLBACK").await;
        return Err(err);
    }
    let full = |n: usize| i64::try_from(n).unwrap_or(i64::MAX) >= limit;
    let more = full(messages.items.len() + messages.corrupt.len())
        || full(activities.items.len() + activities.corrupt.len())
        || full(timers.items.len() + timers.corrupt.len())
        || full(entities.items.len() + entities.corrupt.len());
    let mut adopted = Adopted {
        messages: messages.items,
        activities: activities.items,
        timers: timers.items,
        entity_messages: entities.items,
        corrupt: messages.corrupt,
        more,
    };
    adopted.corrupt.extend(activities.corrupt);
    adopted.corrupt.extend(timers.corrupt);
    adopted.corrupt.extend(entities.corrupt);
    // `RETURNING` keeps no order: messages to one instance go in the order they were sent.
    adopted.messages.sort_by_key(|m| m.id);
    adopted.activities.sort_by_key(|a| a.id);
    adopted.entity_messages.sort_by_key(|m| m.id);
    Ok(adopted)
}

/// An entity operation row (`id, entity_id, operation, input, sender, created_ms, reply`).
fn entity_message_row(
    row: &tokio_postgres::Row,
    id: i64,
    entity_id: &str,
) -> Result<EntityMessage, String> {
    let get = |index| -> Result<String, String> {
        row.try_get(index)
            .map_err(|err| format!("column {index}: {err}"))
    };
    let input = crate::payload::Payload::from_json(get(3)?)
        .map_err(|err| format!("input is not JSON: {err}"))?;
    let reply: Option<String> = row.try_get(6).map_err(|err| format!("column 6: {err}"))?;
    let reply = reply
        .map(|text| serde_json::from_str::<EntityReply>(&text))
        .transpose()
        .map_err(|err| format!("reply does not decode: {err}"))?;
    Ok(EntityMessage {
        id,
        message: NewEntityMessage {
            entity_id: entity_id.to_string(),
            operation: get(2)?,
            input,
            sender: get(4)?,
            created_ms: row.try_get(5).map_err(|err| format!("column 5: {err}"))?,
            reply,
        },
    })
}
