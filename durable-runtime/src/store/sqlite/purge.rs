//! Purges: finished instances deleted with everything stored about them, and the space given
//! back to the file system.
//!
//! The file is in `auto_vacuum = INCREMENTAL` mode (schema version 7): deleting rows only moves
//! their pages to the free list, and `PRAGMA incremental_vacuum` after a purge moves the free
//! pages to the end of the file and truncates it. In WAL mode the truncation reaches the file
//! at the next checkpoint.

use super::manage::{delete_work, state_for};
use crate::instance::RuntimeStatus;
use crate::store::{PurgeFilter, PurgeTarget, StoreError};
use rusqlite::types::Value;
use rusqlite::{Connection, params_from_iter};

const FINISHED: [RuntimeStatus; 3] = [
    RuntimeStatus::Completed,
    RuntimeStatus::Failed,
    RuntimeStatus::Terminated,
];

/// Purges what `target` names; how many instances were removed.
pub(super) fn purge(conn: &Connection, target: &PurgeTarget) -> Result<u64, StoreError> {
    let ids = match target {
        PurgeTarget::Instance(id) => {
            state_for(conn, "purge", id, &FINISHED)?;
            vec![id.clone()]
        }
        PurgeTarget::Matching { filter, limit } => matching(conn, filter, *limit)?,
    };
    for id in &ids {
        delete_instance(conn, id)?;
    }
    if !ids.is_empty() {
        // Gives the freed pages back. Inside the write's savepoint: undone with it on error.
        // The pragma frees one page per step (each a result row): stepped to its end.
        let mut vacuum = conn.prepare_cached("PRAGMA incremental_vacuum")?;
        let mut freed = vacuum.query([])?;
        while freed.next()?.is_some() {}
    }
    Ok(ids.len() as u64)
}

/// The ids of up to `limit` finished instances matching `filter`.
fn matching(
    conn: &Connection,
    filter: &PurgeFilter,
    limit: u32,
) -> Result<Vec<String>, StoreError> {
    let statuses: Vec<RuntimeStatus> = if filter.statuses.is_empty() {
        FINISHED.to_vec()
    } else {
        // A running instance is never purged, whatever the filter says.
        filter
            .statuses
            .iter()
            .copied()
            .filter(|status| FINISHED.contains(status))
            .collect()
    };
    if statuses.is_empty() {
        return Ok(Vec::new());
    }
    let mut sql = String::from("SELECT instance_id FROM instances WHERE status IN (");
    let mut values: Vec<Value> = Vec::new();
    for (n, status) in statuses.iter().enumerate() {
        sql.push_str(if n == 0 { "?" } else { ", ?" });
        values.push(Value::Text(status.as_str().to_string()));
    }
    sql.push(')');
    for (bound, clause) in [
        (filter.created_from_ms, " AND created_ms >= ?"),
        (filter.created_to_ms, " AND created_ms < ?"),
        (filter.updated_to_ms, " AND updated_ms < ?"),
    ] {
        if let Some(ms) = bound {
            sql.push_str(clause);
            values.push(Value::Integer(ms));
        }
    }
    sql.push_str(" LIMIT ?");
    values.push(Value::Integer(i64::from(limit)));
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params_from_iter(values), |row| row.get(0))?;
    let ids = rows.collect::<Result<Vec<String>, _>>()?;
    Ok(ids)
}

/// Deletes one instance and every row that belongs to it (its input, output and idempotency
/// keys go with its row, by trigger).
fn delete_instance(conn: &Connection, instance_id: &str) -> Result<(), StoreError> {
    for sql in [
        "DELETE FROM history WHERE instance_id = ?1",
        "DELETE FROM instances WHERE instance_id = ?1",
    ] {
        conn.prepare_cached(sql)?.execute([instance_id])?;
    }
    delete_work(conn, instance_id)
}
