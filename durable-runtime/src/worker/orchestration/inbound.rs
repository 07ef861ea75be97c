//! What a step does with the messages it takes: consumes them without running code (an
//! instance that finished, or that is unknown), keeps the results held only in memory for a
//! suspended instance, drops a firing handed over twice, and names the stored rows a commit
//! consumes.

use super::super::Shared;
use crate::dispatch::{Inbound, Source};
use crate::history::HistoryEvent;
use crate::store::{StepCommit, StoreError, Write, Written};
use std::collections::HashSet;
use std::sync::Arc;

/// Stores the activity results and timer firings among `messages` that are only in memory as
/// messages (each with the deletion of its work item or timer), so that a suspended instance
/// keeps them durably: a crash while it is suspended must not run the activity again, and the
/// timer service, which handed the firing over, does not fire it again. Converted in place, so
/// an error part way keeps what was stored; a result recorded (or a timer fired) before is
/// dropped.
pub(super) async fn keep_results(
    shared: &Arc<Shared>,
    instance_id: &str,
    messages: &mut Vec<Inbound>,
) -> Result<(), StoreError> {
    let mut index = 0;
    while index < messages.len() {
        let inbound = &messages[index];
        // Written directly, not through `commit`: the message is handed over here, once.
        let write = match (inbound.source, &inbound.event) {
            (Source::Activity(work_item_id), event) => Write::CompleteActivity {
                work_item_id,
                instance_id: instance_id.to_string(),
                event: event.clone(),
            },
            // A firing in memory: stored as the message `FireTimer` sends, its timer deleted.
            (Source::Timer(timer_id), HistoryEvent::TimerFired { task_id }) => Write::FireTimer {
                timer_id,
                instance_id: instance_id.to_string(),
                task_id: *task_id,
            },
            _ => {
                index += 1;
                continue;
            }
        };
        match shared.store.write(write).await? {
            Written::Delivered(Some(message)) => {
                messages[index].source = Source::Message(message.id);
                index += 1;
            }
            Written::Delivered(None) => {
                messages.remove(index);
            }
            _ => return Err(StoreError::UnexpectedAnswer("a kept result")),
        }
    }
    Ok(())
}

pub(super) async fn commit_consume_only(
    shared: &Arc<Shared>,
    instance_id: &str,
    messages: &[Inbound],
) -> Result<(), StoreError> {
    let mut commit = StepCommit {
        instance_id: instance_id.to_string(),
        // A consume-only step changes no run's state.
        execution_id: Arc::from(""),
        first_seq: 0,
        timestamp_ms: shared.clock.now_ms(),
        events: Vec::new(),
        consumed: stored_messages(messages),
        completed_activities: completed_activities(messages),
        fired_timers: fired_timers(messages),
        activities: Vec::new(),
        timers: Vec::new(),
        children: Vec::new(),
        status: None,
        output: None,
        failure: None,
        custom_status: None,
        continue_as_new: None,
    };
    loop {
        match shared.commit(Write::Step(commit.clone())).await {
            Ok(_) => return Ok(()),
            // Results recorded or messages consumed before: nothing to consume for them.
            Err(StoreError::AlreadyRecorded(gone)) if !gone.is_empty() => {
                commit.completed_activities.retain(|id| !gone.contains(id));
            }
            Err(StoreError::MessagesGone(gone)) if !gone.is_empty() => {
                commit.consumed.retain(|id| !gone.contains(id));
            }
            Err(StoreError::TimersGone(gone)) if !gone.is_empty() => {
                commit.fired_timers.retain(|id| !gone.contains(id));
            }
            Err(err) => return Err(err),
        }
    }
}

/// Keeps the first of two copies of one firing (or result) held only in memory. The timer
/// service can hand a firing over twice: when a step arms timers due before the others, its
/// window drops its latest timer and moves its horizon back, and the read that follows finds
/// again a timer whose firing waits here (its row stays until the step that consumes it
/// commits). Stepped together, the second copy would fail the commit as `TimersGone`, and the
/// retry would drop both copies, losing the firing until the next start.
pub(super) fn drop_duplicates(messages: &mut Vec<Inbound>) {
    if messages.len() < 2 {
        return;
    }
    // Any source twice is the same work twice: a stored message too, which a shared store can
    // hand over again (adopted after a lease lapsed while it was already in memory).
    let mut seen = HashSet::new();
    messages.retain(|m| seen.insert(m.source));
}

/// The ids of the stored messages among `inbound`.
pub(super) fn stored_messages(inbound: &[Inbound]) -> Vec<i64> {
    inbound
        .iter()
        .filter_map(|m| match m.source {
            Source::Message(id) => Some(id),
            Source::Activity(_) | Source::Timer(_) => None,
        })
        .collect()
}

/// The activity work items whose results are among `inbound`.
pub(super) fn completed_activities(inbound: &[Inbound]) -> Vec<i64> {
    inbound
        .iter()
        .filter_map(|m| match m.source {
            Source::Activity(id) => Some(id),
            Source::Message(_) | Source::Timer(_) => None,
        })
        .collect()
}

/// The timers whose firings are among `inbound`.
pub(super) fn fired_timers(inbound: &[Inbound]) -> Vec<i64> {
    inbound
        .iter()
        .filter_map(|m| match m.source {
            Source::Timer(id) => Some(id),
            Source::Message(_) | Source::Activity(_) => None,
        })
        .collect()
}
