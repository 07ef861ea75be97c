//! One way to run statements on a pooled connection or inside the writer's transaction, with
//! every statement prepared once per connection, and typed column reads that report a value
//! that does not decode as corruption of its row.

use super::error::classify;
use crate::store::StoreError;
use deadpool_postgres::ClientWrapper;
use tokio_postgres::Row;
use tokio_postgres::types::{FromSql, ToSql};

/// Where statements run: a pooled connection, inside the writer's transaction (which the
/// writer opens and closes itself, merging the transaction control into as few round trips as
/// it can) or on its own (reads).
#[derive(Clone, Copy)]
pub(crate) struct Db<'a>(pub(crate) &'a ClientWrapper);

/// Statements (and batches of them) sent to the server by this process, a flight of
/// pipelined ones (`pipeline::fly`) counted once: the round trips the store costs, for the
/// benchmark's figures.
pub(crate) static ROUND_TRIPS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn count() {
    ROUND_TRIPS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// Statement parameters.
pub(crate) type Params<'p> = [&'p (dyn ToSql + Sync)];

impl Db<'_> {
    /// Runs `sql`; how many rows it changed.
    pub(crate) async fn execute(&self, sql: &str, params: &Params<'_>) -> Result<u64, StoreError> {
        let statement = self.0.prepare_cached(sql).await?;
        count();
        Ok(self.0.execute(&statement, params).await?)
    }

    /// Runs `sql`; every row it returns.
    pub(crate) async fn query(
        &self,
        sql: &str,
        params: &Params<'_>,
    ) -> Result<Vec<Row>, StoreError> {
        let statement = self.0.prepare_cached(sql).await?;
        count();
        Ok(self.0.query(&statement, params).await?)
    }

    /// Runs `sql`; its first row, if any.
    pub(crate) async fn query_opt(
        &self,
        sql: &str,
        params: &Params<'_>,
    ) -> Result<Option<Row>, StoreError> {
        Ok(self.query(sql, params).await?.into_iter().next())
    }

    /// Runs statements that need no parameters and no preparing (transaction control, DDL),
    /// all in one round trip.
    pub(crate) async fn batch(&self, sql: &str) -> Result<(), StoreError> {
        count();
        self.0
            .batch_execute(sql)
            .await
            .map_err(|err| classify(&err, "database", ""))
    }
}

/// Column `index` of `row`, or [`StoreError::Corrupt`] naming `table` and `key`.
pub(crate) fn col<'r, T: FromSql<'r>>(
    row: &'r Row,
    index: usize,
    table: &'static str,
    key: &str,
) -> Result<T, StoreError> {
    row.try_get(index).map_err(|err| StoreError::Corrupt {
        table,
        key: key.to_string(),
        reason: format!("column {index}: {err}"),
    })
}

/// A count or sequence number as a column value; one over `i64::MAX` can never be stored.
pub(crate) fn int(value: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(value)
        .map_err(|_| StoreError::Refused(format!("{what} {value} is over i64::MAX")))
}

/// A stored non-negative integer, or [`StoreError::Corrupt`].
pub(crate) fn unsigned(
    value: i64,
    table: &'static str,
    key: &str,
    what: &str,
) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt {
        table,
        key: key.to_string(),
        reason: format!("negative {what} {value}"),
    })
}
