//! Startup recovery: hands the work an earlier process left in the store to the workers.
//!
//! It runs beside the workers, so a large backlog neither delays `start()` nor has to fit in
//! memory: the store is read a page at a time, in id order (a start before the events sent to
//! its instance), and the next page is read only once the workers have taken most of the
//! previous one. A row that does not decode fails only its own instance, naming the row.
//!
//! While recovery runs, new work is also committed and dispatched by the workers and clients.
//! An item is dispatched once whichever path sees it first: both record the ids they hand
//! over in [`Recovery`], and the second one skips it.

use super::Shared;
use crate::failure::FailureDetails;
use crate::store::{CorruptRow, ErrorClass, PendingPage, StoreError, Write};
use parking_lot::Mutex;
use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Rows read per page.
const PAGE: usize = 1_000;

/// Recovered work in memory that no worker has taken yet, beyond which recovery waits.
const WINDOW: usize = 4 * PAGE;

/// How often recovery looks again while the workers catch up.
const CATCH_UP_POLL: Duration = Duration::from_millis(5);

/// The kinds of stored work.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    Message,
    Activity,
    Timer,
}

/// The ids handed over while recovery runs, so that nothing is dispatched twice.
pub(crate) struct Recovery {
    /// `None` once recovery is over (then every live item is new).
    dispatched: Mutex<Option<HashSet<(Kind, i64)>>>,
}

impl Recovery {
    pub(crate) fn new() -> Self {
        Recovery {
            dispatched: Mutex::new(Some(HashSet::new())),
        }
    }

    /// True if the item may be dispatched now: recovery is over, or nobody dispatched it yet.
    pub(crate) fn first_dispatch(&self, kind: Kind, id: i64) -> bool {
        match self.dispatched.lock().as_mut() {
            Some(ids) => ids.insert((kind, id)),
            None => true,
        }
    }

    fn finish(&self) {
        *self.dispatched.lock() = None;
    }
}

/// Delivers every pending message, activity and timer, then ends; stops early at shutdown.
/// Returns false if it could not finish (the rest is recovered at the next start).
pub(crate) async fn run(shared: Arc<Shared>, mut stopped: watch::Receiver<bool>) -> bool {
    let work = async {
        let messages = drain(&shared, Kind::Message, |after| {
            let shared = shared.clone();
            async move { shared.store.pending_messages(after, PAGE).await }
        })
        .await;
        let activities = drain(&shared, Kind::Activity, |after| {
            let shared = shared.clone();
            async move { shared.store.pending_activities(after, PAGE).await }
        })
        .await;
        let timers = drain(&shared, Kind::Timer, |after| {
            let shared = shared.clone();
            async move { shared.store.pending_timers(after, PAGE).await }
        })
        .await;
        tracing::info!(messages, activities, timers, "resumed unfinished work");
    };
    let finished = tokio::select! {
        biased;
        _ = stopped.wait_for(|stop| *stop) => false,
        () = work => true,
    };
    shared.recovery.finish();
    finished
}

/// Hands over every page of one kind of work; returns how many items it handed over.
async fn drain<T, F, Fut>(shared: &Arc<Shared>, kind: Kind, read: F) -> usize
where
    T: Recoverable,
    F: Fn(i64) -> Fut,
    Fut: Future<Output = Result<PendingPage<T>, StoreError>>,
{
    let mut after = 0;
    let mut handed = 0;
    let mut attempt = 0;
    loop {
        while kind != Kind::Timer && over_window(shared) {
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
        for item in page.items {
            if shared.recovery.first_dispatch(kind, item.id()) {
                handed += 1;
                item.hand_over(shared);
            }
        }
        match page.last_id {
            Some(last) => after = last,
            None => return handed,
        }
    }
}

fn over_window(shared: &Shared) -> bool {
    let (messages, activities) = shared.dispatcher.backlog();
    messages > WINDOW || activities > WINDOW
}

/// A stored work item recovery can hand to the workers.
trait Recoverable {
    fn id(&self) -> i64;
    fn hand_over(self, shared: &Shared);
}

impl Recoverable for crate::store::Message {
    fn id(&self) -> i64 {
        self.id
    }
    fn hand_over(self, shared: &Shared) {
        shared.dispatcher.deliver(self);
    }
}

impl Recoverable for crate::store::ActivityWorkItem {
    fn id(&self) -> i64 {
        self.id
    }
    fn hand_over(self, shared: &Shared) {
        shared.dispatcher.enqueue_activity(self);
    }
}

impl Recoverable for crate::store::TimerWorkItem {
    fn id(&self) -> i64 {
        self.id
    }
    fn hand_over(self, shared: &Shared) {
        shared.dispatcher.arm_timer(self);
    }
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
