//! Purging finished instances: one, by filter, and by age (the runtime's retention option).

use super::{Client, store_error};
use crate::error::Error;
use crate::store::{Manage, PurgeFilter, PurgeTarget, StoreError, Write, Written};
use crate::worker::Shared;
use std::sync::Arc;

/// Instances purged per write: each batch is one short transaction, so a large purge never
/// holds the writer (and every step waiting on it) for long.
const PURGE_BATCH: u32 = 500;

impl Client {
    /// Deletes a finished instance (`Completed`, `Failed` or `Terminated`) with everything
    /// stored about it: its history, input, output, idempotency keys, and any timer, message
    /// or activity row left. The file's space is given back (incremental vacuum).
    ///
    /// An unknown id is [`Error::InstanceNotFound`]; an instance that has not finished is
    /// refused with [`Error::NotApplicable`] (terminate it first).
    pub async fn purge(&self, instance_id: &str) -> Result<(), Error> {
        let write = Manage::Purge(PurgeTarget::Instance(instance_id.to_string()));
        self.shared
            .commit(Write::Manage(write))
            .await
            .map_err(store_error)?;
        Ok(())
    }

    /// Purges every finished instance matching `filter` (created-time range, last-update
    /// time, statuses; running instances never match), a batch at a time; returns how many
    /// were purged.
    ///
    /// ```no_run
    /// # async fn demo(client: durable_runtime::Client) -> Result<(), durable_runtime::Error> {
    /// use durable_runtime::RuntimeStatus;
    /// use durable_runtime::store::PurgeFilter;
    /// let purged = client
    ///     .purge_by(&PurgeFilter {
    ///         statuses: vec![RuntimeStatus::Completed, RuntimeStatus::Terminated],
    ///         ..PurgeFilter::default()
    ///     })
    ///     .await?;
    /// println!("{purged} instances purged");
    /// # Ok(()) }
    /// ```
    pub async fn purge_by(&self, filter: &PurgeFilter) -> Result<u64, Error> {
        purge_matching(&self.shared, filter)
            .await
            .map_err(store_error)
    }
}

/// Purges every finished instance matching `filter`, a batch per write.
pub(crate) async fn purge_matching(
    shared: &Arc<Shared>,
    filter: &PurgeFilter,
) -> Result<u64, StoreError> {
    let mut total = 0;
    loop {
        let write = Manage::Purge(PurgeTarget::Matching {
            filter: filter.clone(),
            limit: PURGE_BATCH,
        });
        // Nothing to dispatch: written directly (the writer finishes it even if this caller
        // stops waiting).
        let purged = match shared.store.write(Write::Manage(write)).await? {
            Written::Purged(count) => count,
            _ => return Err(StoreError::UnexpectedAnswer("purge")),
        };
        total += purged;
        if purged < u64::from(PURGE_BATCH) {
            return Ok(total);
        }
    }
}
