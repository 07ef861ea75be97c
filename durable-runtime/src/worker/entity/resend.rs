//! Handing over what a batch sent when its commit was applied but its answer was lost (a
//! connection dropped after the commit, a retry then fenced): the results of the calls it ran
//! and the signals it sent are in the store, and no one else would hand them to their
//! orchestrations and entities before the next start, nor start the orchestrations it
//! created. They are read back from the store.

use super::Entities;
use crate::history::HistoryEvent;
use crate::store::{EntityCommit, EntityReply};
use crate::worker::Shared;
use std::collections::BTreeSet;
use std::sync::Arc;

/// Pending messages read per page while looking for a batch's results.
const PAGE: usize = 1_000;

/// Hands over the call results, signals and started orchestrations of `commit`, which the store applied (`entity_id`
/// is its sender). Best effort: what cannot be read now is handed over at the next start.
pub(super) async fn resend(shared: Arc<Shared>, entity_id: Arc<str>, commit: EntityCommit) {
    let _busy = shared.busy();
    let targets: BTreeSet<&str> = commit
        .signals
        .iter()
        .map(|signal| signal.entity_id.as_str())
        .collect();
    for target in targets {
        match shared.store.load_entity(target).await {
            // A copy of one the target already took is ignored (or fenced) by its task.
            Ok(snapshot) => snapshot
                .pending
                .into_iter()
                .filter(|message| message.message.sender == *entity_id)
                .for_each(|message| Entities::deliver(&shared, message)),
            Err(err) => {
                tracing::warn!(entity = %entity_id, %target, error = %err, "could not read back the signals of a batch whose answer was lost; they run at the next start");
            }
        }
    }
    let mut waiting: Vec<&EntityReply> = commit.responses.iter().map(|(r, _)| r).collect();
    // The orchestrations it started: their `ExecutionStarted` messages.
    let mut starting: BTreeSet<&str> = commit
        .starts
        .iter()
        .map(|start| start.instance_id.as_str())
        .collect();
    let mut after = 0;
    while !waiting.is_empty() || !starting.is_empty() {
        let page = match shared.store.pending_messages(after, PAGE).await {
            Ok(page) => page,
            Err(err) => {
                tracing::warn!(entity = %entity_id, error = %err, "could not read back the results of a batch whose answer was lost; they are delivered at the next start");
                return;
            }
        };
        for message in page.items {
            if matches!(message.event, HistoryEvent::ExecutionStarted(_))
                && starting.remove(message.instance_id.as_str())
            {
                shared.deliver(message);
                continue;
            }
            let task_id = match &message.event {
                HistoryEvent::EntityOperationCompleted { task_id, .. }
                | HistoryEvent::EntityOperationFailed { task_id, .. } => *task_id,
                _ => continue,
            };
            let found = waiting.iter().position(|reply| {
                reply.task_id == task_id
                    && reply.instance_id == message.instance_id
                    && *reply.execution_id == *message.execution_id
            });
            if let Some(index) = found {
                waiting.swap_remove(index);
                shared.deliver(message);
            }
        }
        match page.last_id {
            Some(last) => after = last,
            None => return,
        }
    }
}
