//! Purges: finished instances deleted with everything stored about them. PostgreSQL's
//! autovacuum gives the space back to later rows.

use super::db::{Db, col};
use super::manage::{delete_work, state_for};
use crate::instance::RuntimeStatus;
use crate::store::{PurgeFilter, PurgeTarget, StoreError};

const FINISHED: [RuntimeStatus; 3] = [
    RuntimeStatus::Completed,
    RuntimeStatus::Failed,
    RuntimeStatus::Terminated,
];

/// Purges what `target` names; how many instances were removed.
pub(super) async fn purge(db: &Db<'_>, target: &PurgeTarget) -> Result<u64, StoreError> {
    let ids = match target {
        PurgeTarget::Instance(id) => {
            state_for(db, "purge", id, &FINISHED).await?;
            vec![id.clone()]
        }
        PurgeTarget::Matching { filter, limit } => matching(db, filter, *limit).await?,
    };
    for id in &ids {
        delete_instance(db, id).await?;
    }
    Ok(ids.len() as u64)
}

/// The ids of up to `limit` finished instances matching `filter` (locked for the purge).
async fn matching(
    db: &Db<'_>,
    filter: &PurgeFilter,
    limit: u32,
) -> Result<Vec<String>, StoreError> {
    let statuses: Vec<String> = if filter.statuses.is_empty() {
        FINISHED.iter().map(|s| s.as_str().to_string()).collect()
    } else {
        // A running instance is never purged, whatever the filter says.
        filter
            .statuses
            .iter()
            .filter(|status| FINISHED.contains(status))
            .map(|s| s.as_str().to_string())
            .collect()
    };
    if statuses.is_empty() {
        return Ok(Vec::new());
    }
    let rows = db
        .query(
            "SELECT instance_id FROM instances WHERE status = ANY($1)
               AND ($2::BIGINT IS NULL OR created_ms >= $2)
               AND ($3::BIGINT IS NULL OR created_ms < $3)
               AND ($4::BIGINT IS NULL OR updated_ms < $4)
             LIMIT $5 FOR UPDATE SKIP LOCKED",
            &[
                &statuses,
                &filter.created_from_ms,
                &filter.created_to_ms,
                &filter.updated_to_ms,
                &i64::from(limit),
            ],
        )
        .await?;
    rows.iter()
        .map(|row| col(row, 0, "instances", ""))
        .collect()
}

/// Deletes one instance and every row that belongs to it.
async fn delete_instance(db: &Db<'_>, instance_id: &str) -> Result<(), StoreError> {
    for sql in [
        "DELETE FROM history WHERE instance_id = $1",
        "DELETE FROM instances WHERE instance_id = $1",
        "DELETE FROM instance_inputs WHERE instance_id = $1",
        "DELETE FROM instance_outputs WHERE instance_id = $1",
        "DELETE FROM event_keys WHERE instance_id = $1",
    ] {
        db.execute(sql, &[&instance_id]).await?;
    }
    delete_work(db, instance_id).await
}
