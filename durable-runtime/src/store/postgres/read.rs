//! Reads: instances, histories, instance lists and the paged pending work of recovery.
//!
//! Pending work is read row by row: a row that does not decode is reported as a [`CorruptRow`]
//! (with its instance when that much is readable) and the page goes on, so one bad row fails only
//! its own instance, never the whole recovery.

use super::db::{Db, col, unsigned};
use crate::failure::FailureDetails;
use crate::history::{HistoryEvent, HistoryRecord};
use crate::instance::{InstancePage, InstanceQuery, InstanceStatus, RuntimeStatus};
use crate::payload::Payload;
use crate::store::{
    ActivityWorkItem, CorruptRow, CurrentRun, DueKey, Message, PendingPage, StoreError,
    TimerWorkItem, Watermarks,
};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

const INSTANCE_COLUMNS: &str = "instance_id, name, version, status, input, output, failure, \
     created_ms, updated_ms, custom_status";

fn corrupt(table: &'static str, key: &str, reason: impl ToString) -> StoreError {
    StoreError::Corrupt {
        table,
        key: key.to_string(),
        reason: reason.to_string(),
    }
}

fn parse_status(key: &str, text: &str) -> Result<RuntimeStatus, StoreError> {
    text.parse().map_err(|err| corrupt("instances", key, err))
}

fn parse_payload(table: &'static str, key: &str, json: String) -> Result<Payload, StoreError> {
    Payload::from_json(json)
        .map_err(|err| corrupt(table, key, format!("payload is not JSON: {err}")))
}

fn instance_from_row(row: &Row) -> Result<InstanceStatus, StoreError> {
    let instance_id: String = col(row, 0, "instances", "?")?;
    let key = instance_id.as_str();
    let status: String = col(row, 3, "instances", key)?;
    let runtime_status = parse_status(key, &status)?;
    let output = col::<Option<String>>(row, 5, "instances", key)?
        .map(|json| parse_payload("instances", key, json))
        .transpose()?;
    let failure = col::<Option<String>>(row, 6, "instances", key)?
        .map(|json| {
            serde_json::from_str::<FailureDetails>(&json)
                .map_err(|err| corrupt("instances", key, format!("failure does not decode: {err}")))
        })
        .transpose()?;
    let input: Option<String> = col(row, 4, "instances", key)?;
    let input = input.ok_or_else(|| corrupt("instance_inputs", key, "no input row"))?;
    Ok(InstanceStatus {
        name: col(row, 1, "instances", key)?,
        version: col(row, 2, "instances", key)?,
        runtime_status,
        input: parse_payload("instances", key, input)?,
        output,
        failure,
        created_ms: col(row, 7, "instances", key)?,
        last_updated_ms: col(row, 8, "instances", key)?,
        custom_status: col::<Option<String>>(row, 9, "instances", key)?
            .map(|json| parse_payload("instances", key, json))
            .transpose()?,
        history: None,
        instance_id,
    })
}

/// The instance's row, if it exists.
pub(crate) async fn instance(db: &Db<'_>, id: &str) -> Result<Option<InstanceStatus>, StoreError> {
    let sql = format!("SELECT {INSTANCE_COLUMNS} FROM instance_rows WHERE instance_id = $1");
    match db.query_opt(&sql, &[&id]).await? {
        Some(row) => instance_from_row(&row).map(Some),
        None => Ok(None),
    }
}

/// The instance's status and current run.
pub(crate) async fn current_run(db: &Db<'_>, id: &str) -> Result<Option<CurrentRun>, StoreError> {
    match db
        .query_opt(
            "SELECT status, execution_id FROM instances WHERE instance_id = $1",
            &[&id],
        )
        .await?
    {
        Some(row) => {
            let text: String = col(&row, 0, "instances", id)?;
            Ok(Some(CurrentRun {
                status: parse_status(id, &text)?,
                execution_id: col(&row, 1, "instances", id)?,
            }))
        }
        None => Ok(None),
    }
}

/// The largest id of each kind of work (ids come from sequences: they only grow).
pub(crate) async fn watermarks(db: &Db<'_>) -> Result<Watermarks, StoreError> {
    let row = db
        .query_opt(
            "SELECT (SELECT COALESCE(MAX(id), 0) FROM messages),
                    (SELECT COALESCE(MAX(id), 0) FROM activities)",
            &[],
        )
        .await?
        .ok_or(StoreError::UnexpectedAnswer("watermarks"))?;
    Ok(Watermarks {
        messages: col(&row, 0, "messages", "MAX(id)")?,
        activities: col(&row, 1, "activities", "MAX(id)")?,
    })
}

/// The instance's history, in order.
pub(crate) async fn history(db: &Db<'_>, id: &str) -> Result<Vec<HistoryRecord>, StoreError> {
    let rows = db
        .query(
            "SELECT seq, timestamp_ms, event FROM history WHERE instance_id = $1 ORDER BY seq",
            &[&id],
        )
        .await?;
    let mut history = Vec::with_capacity(rows.len());
    for row in &rows {
        let seq: i64 = col(row, 0, "history", id)?;
        let key = format!("{id}#{seq}");
        let json: &str = col(row, 2, "history", &key)?;
        let event = serde_json::from_str(json)
            .map_err(|err| corrupt("history", &key, format!("event does not decode: {err}")))?;
        history.push(HistoryRecord {
            seq: unsigned(seq, "history", &key, "seq")?,
            timestamp_ms: col(row, 1, "history", &key)?,
            event,
        });
    }
    Ok(history)
}

/// One page of instances matching `query`.
pub(crate) async fn list(db: &Db<'_>, query: &InstanceQuery) -> Result<InstancePage, StoreError> {
    let statuses: Vec<String> = query
        .statuses
        .iter()
        .map(|s| s.as_str().to_string())
        .collect();
    let prefix_end = query
        .instance_id_prefix
        .as_ref()
        .map(|prefix| format!("{prefix}\u{10FFFF}"));
    let page_size = query.page_size.max(1);
    let limit = i64::from(page_size) + 1;
    let sql = format!(
        "SELECT {INSTANCE_COLUMNS} FROM instance_rows
         WHERE (cardinality($1::text[]) = 0 OR status = ANY($1))
           AND ($2::BIGINT IS NULL OR created_ms >= $2)
           AND ($3::BIGINT IS NULL OR created_ms < $3)
           AND ($4::TEXT IS NULL OR (instance_id >= $4 AND instance_id < $5))
           AND ($6::TEXT IS NULL OR name = $6)
           AND ($7::TEXT IS NULL OR instance_id > $7)
         ORDER BY instance_id LIMIT $8"
    );
    let params: [&(dyn ToSql + Sync); 8] = [
        &statuses,
        &query.created_from_ms,
        &query.created_to_ms,
        &query.instance_id_prefix,
        &prefix_end,
        &query.name,
        &query.continuation_token,
        &limit,
    ];
    let rows = db.query(&sql, &params).await?;
    let mut instances = rows
        .iter()
        .map(instance_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    let continuation_token = if instances.len() > page_size as usize {
        instances.truncate(page_size as usize);
        instances.last().map(|i| i.instance_id.clone())
    } else {
        None
    };
    Ok(InstancePage {
        instances,
        continuation_token,
    })
}

/// Column `index` as `T`, or why it is not one.
fn get<'r, T: tokio_postgres::types::FromSql<'r>>(row: &'r Row, index: usize) -> Result<T, String> {
    row.try_get(index)
        .map_err(|err| format!("column {index}: {err}"))
}

fn task_id(row: &Row, index: usize) -> Result<u64, String> {
    let value: i64 = get(row, index)?;
    u64::try_from(value).map_err(|_| format!("task id {value} is negative"))
}

fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// Reads one page of `table` (`SELECT id, instance_id, ...` in `sql`, or an `UPDATE ...
/// RETURNING` the same), decoding each row with `decode` and reporting the rows it rejects
/// instead of failing.
pub(super) async fn decode_page<T>(
    db: &Db<'_>,
    table: &'static str,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
    decode: impl Fn(&Row, i64, &str) -> Result<T, String>,
) -> Result<PendingPage<T>, StoreError> {
    let rows = db.query(sql, params).await?;
    let mut page = PendingPage {
        items: Vec::new(),
        corrupt: Vec::new(),
        last_id: None,
    };
    for row in &rows {
        // `id` is a BIGSERIAL primary key: always an integer.
        let id: i64 = col(row, 0, table, "?")?;
        page.last_id = Some(id);
        let instance_id: Result<String, String> = get(row, 1);
        let decoded = instance_id
            .as_deref()
            .map_err(Clone::clone)
            .and_then(|instance_id| decode(row, id, instance_id));
        match decoded {
            Ok(item) => page.items.push(item),
            Err(reason) => {
                tracing::error!(table, id, %reason, "corrupt pending row");
                page.corrupt.push(CorruptRow {
                    table,
                    id,
                    instance_id: instance_id.ok(),
                    reason,
                });
            }
        }
    }
    Ok(page)
}

/// A message row (`id, instance_id, event, execution_id`).
pub(super) fn message_row(row: &Row, id: i64, instance_id: &str) -> Result<Message, String> {
    let event: HistoryEvent = serde_json::from_str(get::<&str>(row, 2)?)
        .map_err(|err| format!("event does not decode: {err}"))?;
    Ok(Message {
        id,
        instance_id: instance_id.to_string(),
        execution_id: get::<&str>(row, 3)?.into(),
        event,
    })
}

/// An activity row (`id, instance_id, task_id, name, input, execution_id`).
pub(super) fn activity_row(
    row: &Row,
    id: i64,
    instance_id: &str,
) -> Result<ActivityWorkItem, String> {
    let input = Payload::from_json(get::<String>(row, 4)?)
        .map_err(|err| format!("input is not JSON: {err}"))?;
    Ok(ActivityWorkItem {
        id,
        instance_id: instance_id.to_string(),
        execution_id: get::<&str>(row, 5)?.into(),
        task_id: task_id(row, 2)?,
        name: get(row, 3)?,
        input,
    })
}

/// A timer row (`id, instance_id, task_id, fire_at_ms, execution_id`).
pub(super) fn timer_row(row: &Row, id: i64, instance_id: &str) -> Result<TimerWorkItem, String> {
    Ok(TimerWorkItem {
        id,
        instance_id: instance_id.to_string(),
        execution_id: get::<&str>(row, 4)?.into(),
        task_id: task_id(row, 2)?,
        fire_at_ms: get(row, 3)?,
    })
}

/// Unconsumed messages after `after_id`, in the partitions `scope` (all when `None`).
pub(crate) async fn pending_messages(
    db: &Db<'_>,
    after_id: i64,
    limit: usize,
    scope: Option<Vec<i16>>,
) -> Result<PendingPage<Message>, StoreError> {
    decode_page(
        db,
        "messages",
        "SELECT id, instance_id, event, execution_id FROM messages
         WHERE id > $1 AND ($3::smallint[] IS NULL OR part = ANY($3)) ORDER BY id LIMIT $2",
        &[&after_id, &sql_limit(limit), &scope],
        message_row,
    )
    .await
}

/// Activity work items after `after_id`, in the partitions `scope` (all when `None`).
pub(crate) async fn pending_activities(
    db: &Db<'_>,
    after_id: i64,
    limit: usize,
    scope: Option<Vec<i16>>,
) -> Result<PendingPage<ActivityWorkItem>, StoreError> {
    decode_page(
        db,
        "activities",
        "SELECT id, instance_id, task_id, name, input, execution_id FROM activities
         WHERE id > $1 AND ($3::smallint[] IS NULL OR part = ANY($3)) ORDER BY id LIMIT $2",
        &[&after_id, &sql_limit(limit), &scope],
        activity_row,
    )
    .await
}

/// Armed timers after `after` in due order (the `timers_by_due` index on `(fire_at_ms, id)`:
/// a row comparison seeks it directly), in the partitions `scope` (all when `None`).
pub(crate) async fn pending_timers(
    db: &Db<'_>,
    after: DueKey,
    limit: usize,
    scope: Option<Vec<i16>>,
) -> Result<PendingPage<TimerWorkItem>, StoreError> {
    decode_page(
        db,
        "timers",
        "SELECT id, instance_id, task_id, fire_at_ms, execution_id FROM timers
         WHERE (fire_at_ms, id) > ($1, $2) AND ($4::smallint[] IS NULL OR part = ANY($4))
         ORDER BY fire_at_ms, id LIMIT $3",
        &[&after.fire_at_ms, &after.id, &sql_limit(limit), &scope],
        timer_row,
    )
    .await
}
