//! Startup recovery: hands the messages and activities an earlier process left in the store to
//! the workers (the timer service reads the timers itself, see [`super::timer`]).
//!
//! It runs beside the workers, so a large backlog neither delays `start()` nor has to fit in
//! memory: the store is read a page at a time, in id order (a start before the events sent to
//! its instance), and the next page is read only once the workers have taken most of the
//! previous one. A row that does not decode fails only its own instance, naming the row.
//!
//! While recovery runs, new work is also committed and dispatched by the workers and clients.
//! It never overlaps with recovery: ids only grow, so recovery reads up to the watermarks taken
//! before any worker or client ran, and everything above them was dispatched by the process
//! that created it. One order still matters: messages to one instance arrive in the order
//! they were committed. So while recovery hands over messages, a new message for an instance
//! that existed before the start is held back ([`HeldBack`]) until recovery has handed over the
//! older ones; messages for instances started since go through at once.

use super::{Shared, StopSignal, record_failure, stopping};
use crate::dispatch::Dispatcher;
use crate::failure::FailureDetails;
use crate::history::HistoryEvent;
use crate::store::{CorruptRow, ErrorClass, Message, PendingPage, StoreError, Watermarks};
use parking_lot::Mutex;
use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// Rows read per page.
const PAGE: usize = 1_000;

/// Recovered work in memory that no worker has taken yet, beyond which recovery waits.
const WINDOW: usize = 4 * PAGE;

/// How often recovery looks again while the workers catch up.
const CATCH_UP_POLL: Duration = Duration::from_millis(5);

/// New messages held back while recovery hands over older ones.
pub(crate) struct HeldBack {
    /// `None` once recovery has handed over every older message.
    state: Mutex<Option<Held>>,
}

#[derive(Default)]
struct Held {
    /// Instances started since the runtime started: they have no older messages.
    fresh: HashSet<String>,
    /// New messages for older instances, in commit order.
    messages: Vec<Message>,
}

impl HeldBack {
    pub(crate) fn new() -> Self {
        HeldBack {
            state: Mutex::new(Some(Held::default())),
        }
    }

    /// Returns `message` if it may be delivered now; otherwise keeps it until recovery has
    /// handed over the older messages.
    pub(crate) fn admit(&self, message: Message) -> Option<Message> {
        let mut state = self.state.lock();
        let Some(held) = state.as_mut() else {
            return Some(message);
        };
        if matches!(message.event, HistoryEvent::ExecutionStarted { .. }) {
            held.fresh.insert(message.instance_id.clone());
            return Some(message);
        }
        if held.fresh.contains(&message.instance_id) {
            return Some(message);
        }
        held.messages.push(message);
        None
    }

    /// How many messages are held back now (they wait in memory like those in the
    /// dispatcher's slots, and count in the same backlog).
    pub(crate) fn len(&self) -> usize {
        self.state
            .lock()
            .as_ref()
            .map_or(0, |held| held.messages.len())
    }

    /// Ends holding back: delivers what was held, in commit order. Under the lock, so that
    /// nothing admitted meanwhile overtakes a held message.
    fn release(&self, dispatcher: &Dispatcher) {
        let mut state = self.state.lock();
        let mut messages = state.take().unwrap_or_default().messages;
        messages.sort_by_key(|m| m.id);
        for message in messages {
            dispatcher.deliver(message);
        }
    }

    /// Ends holding back now: nothing is recovered (a runtime on a shared store adopts its
    /// stored work as it takes leases instead).
    pub(crate) fn release_now(&self, dispatcher: &Dispatcher) {
        self.release(dispatcher);
    }

    /// Runs `deliver` and returns true once recovery has handed over every older message;
    /// while it holds messages back, returns false without running it. `deliver` runs under
    /// the lock the handover takes, so what it delivers cannot overtake a held message.
    pub(crate) fn when_released(&self, deliver: impl FnOnce()) -> bool {
        let state = self.state.lock();
        if state.is_some() {
            return false;
        }
        deliver();
        true
    }
}

/// Delivers every pending message and activity, then ends; stops early at shutdown.
/// Returns false if it could not finish (the rest is recovered at the next start).
pub(crate) async fn run(shared: Arc<Shared>, marks: Watermarks, mut stopped: StopSignal) -> bool {
    // The two kinds are handed over side by side, each paced by its own backlog: a queue of
    // slow activities must not hold back the events.
    let messages = async {
        let handed = drain(&shared, marks.messages, Pace::Messages, |after| {
            let shared = shared.clone();
            async move { shared.store.pending_messages(after, PAGE).await }
        })
        .await;
        shared.held_back.release(&shared.dispatcher);
        handed
    };
    let activities = drain(&shared, marks.activities, Pace::Activities, |after| {
        let shared = shared.clone();
        async move { shared.store.pending_activities(after, PAGE).await }
    });
    // Timers are not recovered here: the timer service reads them from the store in due
    // order, as many as it keeps in memory.
    let work = async {
        let (messages, activities) = tokio::join!(messages, activities);
        tracing::info!(messages, activities, "resumed unfinished work");
    };
    tokio::select! {
        biased;
        _ = stopping(&mut stopped) => false,
        () = work => true,
    }
}

/// Which backlog a kind of recovered work waits on between pages.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pace {
    /// Messages not yet taken by a step.
    Messages,
    /// Activities not yet started.
    Activities,
}

/// Hands over every page of one kind of work up to `mark`, waiting for the workers between
/// pages as `pace` says; returns how many items it handed over.
async fn drain<T, F, Fut>(shared: &Arc<Shared>, mark: i64, pace: Pace, read: F) -> usize
where
    T: Recoverable,
    F: Fn(i64) -> Fut,
    Fut: Future<Output = Result<PendingPage<T>, StoreError>>,
{
    let mut after = 0;
    let mut handed = 0;
    let mut attempt = 0;
    loop {
        while over_window(shared, pace) {
            tokio::time::sleep(CATCH_UP_POLL).await;
        }
        let page = match read(after).await {
            Ok(page) => page,
            Err(err) if err.class() == ErrorClass::Transient => {
                tracing::warn!(error = %err, "recovery read failed; retrying");
                tokio::time::sleep(super::retry_delay(attempt)).await;
                attempt += 1;
                continue;
            }
            Err(err) => {
                tracing::error!(error = %err, "recovery cannot read the store; the rest waits for the next start");
                return handed;
            }
        };
        attempt = 0;
        fail_corrupt(shared, &page.corrupt).await;
        for item in page.items.into_iter().take_while(|item| item.id() <= mark) {
            handed += 1;
            item.hand_over(shared);
        }
        match page.last_id {
            Some(last) if last < mark => after = last,
            _ => return handed,
        }
    }
}

fn over_window(shared: &Shared, pace: Pace) -> bool {
    let (messages, activities) = shared.dispatcher.backlog();
    match pace {
        Pace::Messages => messages > WINDOW,
        Pace::Activities => activities > WINDOW,
    }
}

/// A stored work item recovery can hand to the workers.
trait Recoverable {
    fn id(&self) -> i64;
    fn hand_over(self, shared: &Shared);
}

impl Recoverable for Message {
    fn id(&self) -> i64 {
        self.id
    }
    fn hand_over(self, shared: &Shared) {
        if shared.suspects.watching() {
            shared.suspects.note_instance(&self.instance_id);
        }
        shared.dispatcher.deliver(self);
    }
}

impl Recoverable for crate::store::ActivityWorkItem {
    fn id(&self) -> i64 {
        self.id
    }
    fn hand_over(self, shared: &Shared) {
        if shared.suspects.watching() {
            shared.suspects.note_activity(self.id);
        }
        shared.dispatcher.enqueue_activity(self);
    }
}

/// Fails the instance of each corrupt row; the row itself stays for whoever repairs it.
pub(crate) async fn fail_corrupt(shared: &Arc<Shared>, rows: &[CorruptRow]) {
    for row in rows {
        let Some(instance_id) = &row.instance_id else {
            tracing::error!(table = row.table, id = row.id, reason = %row.reason, "corrupt row of no readable instance; left in the store");
            continue;
        };
        let failure = FailureDetails::new(format!(
            "the instance cannot be resumed: corrupt {} row {}: {}",
            row.table, row.id, row.reason
        ));
        record_failure(shared, instance_id, failure).await;
    }
}
