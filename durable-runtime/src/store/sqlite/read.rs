//! Reads: instances, histories, instance lists and the paged pending work of recovery.
//!
//! Pending work is read row by row: a row that does not decode is reported as a [`CorruptRow`]
//! (with its instance when that much is readable) and the page goes on, so one bad row fails only
//! its own instance, never the whole recovery.

use super::error::SqlContext;
use super::large_values;
use crate::failure::FailureDetails;
use crate::history::{HistoryEvent, HistoryRecord};
use crate::instance::{InstancePage, InstanceQuery, InstanceStatus, RuntimeStatus};
use crate::payload::Payload;
use crate::store::{
    ActivityWorkItem, CorruptRow, CurrentRun, DueKey, Message, PendingPage, StoreError,
    TimerWorkItem, Watermarks,
};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, Row, params};

/// Input and output are read as `''` (which no JSON document is) when they are a large value's
/// blob: SQLite answers `typeof` from the row's header without loading the value, which
/// [`payload_column`] then reads straight from its blob.
const INSTANCE_COLUMNS: &str = "instance_id, name, version, status, \
     CASE WHEN typeof(input) = 'blob' THEN '' ELSE input END, \
     CASE WHEN typeof(output) = 'blob' THEN '' ELSE output END, \
     failure, created_ms, updated_ms, custom_status";

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

/// The JSON of an instance's input or output (`table`'s `column`), from its column in
/// [`INSTANCE_COLUMNS`].
fn payload_column(
    conn: &Connection,
    table: &'static str,
    column: &'static str,
    instance_id: &str,
    read: String,
) -> Result<String, StoreError> {
    if !read.is_empty() {
        return Ok(read);
    }
    let rowid: i64 = conn
        .prepare_cached(&format!("SELECT rowid FROM {table} WHERE instance_id = ?1"))?
        .query_row(params![instance_id], |row| row.get(0))
        .at(table, instance_id)?;
    large_values::read(conn, table, column, rowid, instance_id)
}

fn instance_from_row(conn: &Connection, row: &Row<'_>) -> Result<InstanceStatus, StoreError> {
    let instance_id: String = row.get(0).at("instances", "?")?;
    let key = instance_id.as_str();
    let runtime_status = parse_status(key, &row.get::<_, String>(3).at("instances", key)?)?;
    let output = row
        .get::<_, Option<String>>(5)
        .at("instances", key)?
        .map(|json| payload_column(conn, "instance_outputs", "output", key, json))
        .transpose()?
        .map(|json| parse_payload("instances", key, json))
        .transpose()?;
    let failure = row
        .get::<_, Option<String>>(6)
        .at("instances", key)?
        .map(|json| {
            serde_json::from_str::<FailureDetails>(&json)
                .map_err(|err| corrupt("instances", key, format!("failure does not decode: {err}")))
        })
        .transpose()?;
    Ok(InstanceStatus {
        name: row.get(1).at("instances", key)?,
        version: row.get(2).at("instances", key)?,
        runtime_status,
        input: parse_payload(
            "instances",
            key,
            payload_column(
                conn,
                "instance_inputs",
                "input",
                key,
                row.get(4).at("instances", key)?,
            )?,
        )?,
        output,
        failure,
        created_ms: row.get(7).at("instances", key)?,
        last_updated_ms: row.get(8).at("instances", key)?,
        custom_status: row
            .get::<_, Option<String>>(9)
            .at("instances", key)?
            .map(|json| parse_payload("instances", key, json))
            .transpose()?,
        history: None,
        instance_id,
    })
}

/// The instance's row, if it exists.
pub(crate) fn instance(conn: &Connection, id: &str) -> Result<Option<InstanceStatus>, StoreError> {
    let sql = format!("SELECT {INSTANCE_COLUMNS} FROM instance_rows WHERE instance_id = ?1");
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(params![id])?;
    match rows.next().at("instances", id)? {
        Some(row) => instance_from_row(conn, row).map(Some),
        None => Ok(None),
    }
}

/// The instance's status and current run.
pub(crate) fn current_run(conn: &Connection, id: &str) -> Result<Option<CurrentRun>, StoreError> {
    let row: Option<(String, String)> = conn
        .prepare_cached("SELECT status, execution_id FROM instances WHERE instance_id = ?1")?
        .query_row(params![id], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()
        .at("instances", id)?;
    row.map(|(text, execution_id)| {
        Ok(CurrentRun {
            status: parse_status(id, &text)?,
            execution_id,
        })
    })
    .transpose()
}

/// The largest id of each kind of work (ids come from AUTOINCREMENT: they only grow).
pub(crate) fn watermarks(conn: &Connection) -> Result<Watermarks, StoreError> {
    let max = |table: &'static str| -> Result<i64, StoreError> {
        conn.prepare_cached(&format!("SELECT COALESCE(MAX(id), 0) FROM {table}"))?
            .query_row([], |row| row.get(0))
            .at(table, "MAX(id)")
    };
    Ok(Watermarks {
        messages: max("messages")?,
        activities: max("activities")?,
    })
}

/// The instance's history, in order.
pub(crate) fn history(conn: &Connection, id: &str) -> Result<Vec<HistoryRecord>, StoreError> {
    super::history_rows::read(conn, id)
}

/// One page of instances matching `query`.
pub(crate) fn list(conn: &Connection, query: &InstanceQuery) -> Result<InstancePage, StoreError> {
    let mut sql = format!("SELECT {INSTANCE_COLUMNS} FROM instance_rows WHERE 1=1");
    let mut args: Vec<rusqlite::types::Value> = Vec::new();
    if !query.statuses.is_empty() {
        let marks = vec!["?"; query.statuses.len()].join(",");
        sql.push_str(&format!(" AND status IN ({marks})"));
        args.extend(query.statuses.iter().map(|s| s.as_str().to_string().into()));
    }
    if let Some(from) = query.created_from_ms {
        sql.push_str(" AND created_ms >= ?");
        args.push(from.into());
    }
    if let Some(to) = query.created_to_ms {
        sql.push_str(" AND created_ms < ?");
        args.push(to.into());
    }
    if let Some(prefix) = &query.instance_id_prefix {
        // Range on the primary key instead of LIKE, so `%` and `_` in ids are literal.
        sql.push_str(" AND instance_id >= ? AND instance_id < ?");
        args.push(prefix.clone().into());
        args.push(format!("{prefix}\u{10FFFF}").into());
    }
    if let Some(name) = &query.name {
        sql.push_str(" AND name = ?");
        args.push(name.clone().into());
    }
    if let Some(after) = &query.continuation_token {
        sql.push_str(" AND instance_id > ?");
        args.push(after.clone().into());
    }
    let page_size = query.page_size.max(1);
    sql.push_str(&format!(
        " ORDER BY instance_id LIMIT {}",
        u64::from(page_size) + 1
    ));
    let mut stmt = conn.prepare(&sql)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(args))?;
    let mut instances = Vec::new();
    while let Some(row) = rows.next().at("instances", "")? {
        instances.push(instance_from_row(conn, row)?);
    }
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

/// The text in column `index`, or why it is not text.
fn text(row: &Row<'_>, index: usize) -> Result<String, String> {
    match row.get_ref(index) {
        Ok(ValueRef::Text(bytes)) => String::from_utf8(bytes.to_vec())
            .map_err(|err| format!("column {index} is not UTF-8: {err}")),
        Ok(other) => Err(format!(
            "column {index} is {:?}, not text",
            other.data_type()
        )),
        Err(err) => Err(err.to_string()),
    }
}

/// The JSON text in column `index`: text, or a blob of UTF-8 for a large value (see
/// `large_values`).
fn json_text(row: &Row<'_>, index: usize) -> Result<String, String> {
    match row.get_ref(index) {
        Ok(ValueRef::Blob(bytes)) => String::from_utf8(bytes.to_vec())
            .map_err(|err| format!("column {index} is not UTF-8: {err}")),
        _ => text(row, index),
    }
}

/// The integer in column `index`, or why it is not one.
fn integer(row: &Row<'_>, index: usize) -> Result<i64, String> {
    match row.get_ref(index) {
        Ok(ValueRef::Integer(value)) => Ok(value),
        Ok(other) => Err(format!(
            "column {index} is {:?}, not an integer",
            other.data_type()
        )),
        Err(err) => Err(err.to_string()),
    }
}

fn task_id(row: &Row<'_>, index: usize) -> Result<u64, String> {
    let value = integer(row, index)?;
    u64::try_from(value).map_err(|_| format!("task id {value} is negative"))
}

fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// Reads one page of `table` (`SELECT id, instance_id, ...` in `sql`), decoding each row with
/// `decode` and reporting the rows it rejects instead of failing.
fn page<T>(
    conn: &Connection,
    table: &'static str,
    sql: &str,
    params: impl rusqlite::Params,
    decode: impl Fn(&Row<'_>, i64, &str) -> Result<T, String>,
) -> Result<PendingPage<T>, StoreError> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query(params)?;
    let mut page = PendingPage {
        items: Vec::new(),
        corrupt: Vec::new(),
        last_id: None,
    };
    while let Some(row) = rows.next().at(table, "")? {
        // `id` is the rowid: always an integer.
        let id = integer(row, 0).map_err(|reason| corrupt(table, "?", reason))?;
        page.last_id = Some(id);
        let instance_id = text(row, 1);
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

/// Unconsumed messages after `after_id`.
pub(crate) fn pending_messages(
    conn: &Connection,
    after_id: i64,
    limit: usize,
) -> Result<PendingPage<Message>, StoreError> {
    page(
        conn,
        "messages",
        "SELECT id, instance_id, event, execution_id FROM messages
         WHERE id > ?1 ORDER BY id LIMIT ?2",
        params![after_id, sql_limit(limit)],
        |row, id, instance_id| {
            let event: HistoryEvent = serde_json::from_str(&json_text(row, 2)?)
                .map_err(|err| format!("event does not decode: {err}"))?;
            Ok(Message {
                id,
                instance_id: instance_id.to_string(),
                execution_id: text(row, 3)?.into(),
                event,
            })
        },
    )
}

/// Activity work items after `after_id`.
pub(crate) fn pending_activities(
    conn: &Connection,
    after_id: i64,
    limit: usize,
) -> Result<PendingPage<ActivityWorkItem>, StoreError> {
    page(
        conn,
        "activities",
        "SELECT id, instance_id, task_id, name, input, execution_id FROM activities
         WHERE id > ?1 ORDER BY id LIMIT ?2",
        params![after_id, sql_limit(limit)],
        |row, id, instance_id| {
            let input = Payload::from_json(json_text(row, 4)?)
                .map_err(|err| format!("input is not JSON: {err}"))?;
            Ok(ActivityWorkItem {
                id,
                instance_id: instance_id.to_string(),
                execution_id: text(row, 5)?.into(),
                task_id: task_id(row, 2)?,
                name: text(row, 3)?,
                input,
            })
        },
    )
}

/// Armed timers after `after` in due order (`timers_by_due`).
///
/// Two ranges of the index, merged in index order (no sort): the rest of `after`'s due time
/// (by id), then the later due times. SQLite seeks a row value `(fire_at_ms, id) > (?, ?)` on the due time alone and then
/// scans every timer of that due time up to the id, so reading on through a million timers
/// due together would cost a scan per page, quadratic in all.
pub(crate) fn pending_timers(
    conn: &Connection,
    after: DueKey,
    limit: usize,
) -> Result<PendingPage<TimerWorkItem>, StoreError> {
    page(
        conn,
        "timers",
        "SELECT id, instance_id, task_id, fire_at_ms, execution_id FROM timers
         WHERE fire_at_ms = ?1 AND id > ?2
         UNION ALL
         SELECT id, instance_id, task_id, fire_at_ms, execution_id FROM timers
         WHERE fire_at_ms > ?1
         ORDER BY fire_at_ms, id LIMIT ?3",
        params![after.fire_at_ms, after.id, sql_limit(limit)],
        |row, id, instance_id| {
            Ok(TimerWorkItem {
                id,
                instance_id: instance_id.to_string(),
                execution_id: text(row, 4)?.into(),
                task_id: task_id(row, 2)?,
                fire_at_ms: integer(row, 3)?,
            })
        },
    )
}
