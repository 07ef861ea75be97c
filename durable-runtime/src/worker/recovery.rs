//! Startup recovery: hands the work an earlier process left in the store to the workers.
//!
//! The store is read a page at a time, in id order (a start before the events sent to its
//! instance). A row that does not decode fails only its own instance, with a message naming
//! the row; every other instance resumes.

use super::Shared;
use crate::failure::FailureDetails;
use crate::store::{CorruptRow, StoreError, Write};
use std::sync::Arc;

/// Rows read per page.
const PAGE: usize = 1_000;

/// Delivers every pending message, activity and timer.
pub(crate) async fn recover(shared: &Arc<Shared>) -> Result<(), StoreError> {
    let (mut messages, mut activities, mut timers) = (0usize, 0usize, 0usize);
    let mut after = 0;
    loop {
        let page = shared.store.pending_messages(after, PAGE).await?;
        fail_corrupt(shared, &page.corrupt).await;
        messages += page.items.len();
        for message in page.items {
            shared.dispatcher.deliver(message);
        }
        match page.last_id {
            Some(last) => after = last,
            None => break,
        }
    }
    after = 0;
    loop {
        let page = shared.store.pending_activities(after, PAGE).await?;
        fail_corrupt(shared, &page.corrupt).await;
        activities += page.items.len();
        for item in page.items {
            shared.dispatcher.enqueue_activity(item);
        }
        match page.last_id {
            Some(last) => after = last,
            None => break,
        }
    }
    after = 0;
    loop {
        let page = shared.store.pending_timers(after, PAGE).await?;
        fail_corrupt(shared, &page.corrupt).await;
        timers += page.items.len();
        for timer in page.items {
            shared.dispatcher.arm_timer(timer);
        }
        match page.last_id {
            Some(last) => after = last,
            None => break,
        }
    }
    tracing::info!(messages, activities, timers, "resumed unfinished work");
    Ok(())
}

/// Fails the instance of each corrupt row; the row itself stays for whoever repairs it.
async fn fail_corrupt(shared: &Arc<Shared>, rows: &[CorruptRow]) {
    for row in rows {
        let Some(instance_id) = &row.instance_id else {
            tracing::error!(table = row.table, id = row.id, reason = %row.reason, "corrupt row of no readable instance; left in the store");
            continue;
        };
        let failure = FailureDetails::new(format!(
            "the instance cannot be resumed: corrupt {} row {}: {}",
            row.table, row.id, row.reason
        ));
        tracing::error!(instance = %instance_id, failure = %failure.message, "failing the instance");
        let write = Write::FailInstance {
            instance_id: instance_id.clone(),
            failure,
            timestamp_ms: shared.clock.now_ms(),
        };
        match shared.commit(write).await {
            Ok(_) => shared.dispatcher.finished(instance_id),
            Err(err) => {
                tracing::error!(instance = %instance_id, error = %err, "could not record the failure")
            }
        }
    }
}
