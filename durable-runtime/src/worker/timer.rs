//! The timer service: fires durable timers when they come due.
//!
//! Armed timers live in the store (so they survive restarts). Only the earliest of them are
//! also kept here, at most [`Limits::max_timers_in_memory`](super::Limits), ordered by due
//! time: however many timers are armed (a million reminders due next year), memory stays
//! bounded. The service keeps one promise, the *horizon*: every stored timer up to the
//! horizon, in due order, is in memory (or being fired). Timers beyond it are read from the
//! store, a page at a time, as the earlier ones fire. At start the horizon is before every
//! timer, so the timers an earlier process left are read the same way.
//!
//! A timer armed by a step arrives here after its commit. If it falls beyond the horizon it is
//! left to the store, which a later read will find it in; that read happens after the commit,
//! so nothing is missed. A timer read from the store and also announced by its step is one key
//! in the map, and a timer fired twice is a no-op the second time (its row is gone).
//!
//! A due timer is handed to its instance in memory, and the step that consumes the firing
//! deletes the timer's row as it records `TimerFired` (one commit, as for activity results).
//! Only while startup recovery still holds newer messages back does a firing go through the
//! store ([`Write::FireTimer`]), so that it cannot overtake an older stored event.
//!
//! Due times are wall-clock times, read from the runtime's [`Clock`](crate::clock::Clock), and
//! the service waits on the clock's [`ClockTimer`](crate::clock::ClockTimer). The system clock's
//! timer sleeps on Tokio's monotonic clock, which stands still while a VM is suspended and
//! ignores clock adjustments. So the service never waits longer than [`MAX_TIMER_SLEEP`] before
//! reading the clock again: an 8-hour timer fires at most that late after a suspend or a
//! forward jump. A virtual clock wakes the service the moment a test moves it.

use super::{InFlight, Shared, StopSignal, record_failure, retry_delay, stopping};
use crate::failure::FailureDetails;
use crate::store::{
    DueKey, ErrorClass, PendingPage, START_TIMER_TASK, StoreError, TimerWorkItem, Write,
};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// The longest the timer service sleeps before it reads the wall clock again.
pub(crate) const MAX_TIMER_SLEEP: Duration = Duration::from_secs(1);

/// Messages waiting for their steps (or held back for startup recovery) beyond which no more
/// timers are read from the store: firing a backlog of due timers must not outrun the steps
/// that consume what they deliver.
const MESSAGE_BACKLOG: usize = 4_000;

/// How often a read held back by the backlog looks again.
const CATCH_UP_POLL: Duration = Duration::from_millis(5);

/// Due timers written in one batch.
const FIRE_BATCH: usize = 1_000;

/// Timers kept in memory when nothing says otherwise.
pub(crate) const DEFAULT_MAX_TIMERS_IN_MEMORY: usize = 10_000;

/// How far the timers in memory reach into the store's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Horizon {
    /// Every stored timer is in memory.
    Everything,
    /// Every stored timer up to this key is in memory; later ones are only in the store.
    Through(DueKey),
}

impl Horizon {
    fn covers(self, key: DueKey) -> bool {
        match self {
            Horizon::Everything => true,
            Horizon::Through(last) => key <= last,
        }
    }
}

/// The earliest armed timers, and how far they reach.
struct Armed {
    timers: BTreeMap<DueKey, TimerWorkItem>,
    horizon: Horizon,
    capacity: usize,
    /// Corrupt timer rows whose instance was already failed, so a later read skips them.
    reported_corrupt: HashSet<i64>,
}

impl Armed {
    fn new(capacity: usize) -> Self {
        Armed {
            timers: BTreeMap::new(),
            // Nothing read yet: the store may hold timers an earlier process armed.
            horizon: Horizon::Through(DueKey::FIRST),
            // Evicting makes room for one: at least two keep the horizon on a timer in memory.
            capacity: capacity.max(2),
            reported_corrupt: HashSet::new(),
        }
    }

    /// Takes in a timer that was committed; keeps it if it falls within the horizon.
    fn arm(&mut self, timer: TimerWorkItem) {
        let key = timer.due_key();
        if !self.horizon.covers(key) {
            return;
        }
        self.timers.insert(key, timer);
        if self.timers.len() > self.capacity {
            // The latest goes back to being only in the store, and the horizon moves before it.
            self.timers.pop_last();
            if let Some((&last, _)) = self.timers.last_key_value() {
                self.horizon = Horizon::Through(last);
            }
        }
    }

    /// Up to `limit` timers due at `now_ms`, in due order.
    fn take_due(&mut self, now_ms: i64, limit: usize) -> Vec<TimerWorkItem> {
        let mut due = Vec::new();
        while let Some(entry) = self.timers.first_entry() {
            if entry.key().fire_at_ms > now_ms || due.len() == limit {
                break;
            }
            due.push(entry.remove());
        }
        due
    }

    /// Where to read from the store next, and how many, if memory has room to reach further.
    /// Corrupt rows reported before may be read again (a row whose instance cannot be failed
    /// stays in the store): they are asked for on top, so they never take the room of timers.
    fn wants_more(&self) -> Option<(DueKey, usize)> {
        match self.horizon {
            Horizon::Through(last) if self.timers.len() <= self.capacity / 2 => Some((
                last,
                (self.capacity - self.timers.len()).saturating_add(self.reported_corrupt.len()),
            )),
            _ => None,
        }
    }

    /// Takes in the page read from the horizon on (nothing is armed while it is read);
    /// returns its corrupt rows not reported before.
    fn extend(
        &mut self,
        asked: usize,
        page: PendingPage<TimerWorkItem>,
    ) -> Vec<crate::store::CorruptRow> {
        let read = page.items.len() + page.corrupt.len();
        self.horizon = match page.items.last().map(TimerWorkItem::due_key) {
            _ if read < asked => Horizon::Everything,
            Some(last) => Horizon::Through(last),
            // A whole page of corrupt rows: nothing to order by, so the horizon stays. At most
            // the rows reported before were among them, so most are new: once reported, the
            // next read asks for that many more and reaches past them.
            None => self.horizon,
        };
        for timer in page.items {
            self.arm(timer);
        }
        page.corrupt
            .into_iter()
            .filter(|row| self.reported_corrupt.insert(row.id))
            .collect()
    }
}

/// Runs until the runtime stops.
pub(crate) async fn run(
    shared: Arc<Shared>,
    mut armed_rx: mpsc::UnboundedReceiver<Vec<TimerWorkItem>>,
    mut stopped: StopSignal,
) -> bool {
    let mut armed = Armed::new(shared.limits.max_timers_in_memory);
    let mut in_flight = InFlight::default();
    let mut read_attempt = 0;
    let mut next_read = Instant::now();
    // Made once and re-armed for every wait: waiting allocates nothing.
    let mut clock_timer = shared.clock.timer();
    let deadline = loop {
        // One batch fires at a time, so timers due together are written in due order and a
        // burst of due timers costs one batch of memory.
        if in_flight.running() == 0 {
            let due = armed.take_due(shared.clock.now_ms(), FIRE_BATCH);
            if let Some(due) = hand_over(&shared, due) {
                in_flight.spawn(fire_in_order(shared.clone(), due));
            }
        }
        let firing = in_flight.running() > 0;
        let wanted = armed.wants_more();
        // Reads wait for a batch that fires (the reap below wakes the loop when it is done)
        // and for the steps to catch up with the messages (polled). Messages held back for
        // recovery count: a due timer of an instance of the earlier process delivers one,
        // which waits in memory until recovery is done.
        let backlogged = shared.dispatcher.backlog().0 + shared.held_messages() > MESSAGE_BACKLOG;
        let caught_up = !firing && !backlogged;
        if let Some((after, limit)) = wanted
            && caught_up
            && Instant::now() >= next_read
        {
            let read = shared.store.pending_timers(after, limit);
            let page = tokio::select! {
                biased;
                deadline = stopping(&mut stopped) => break deadline,
                page = read => page,
            };
            match page {
                Ok(page) => {
                    read_attempt = 0;
                    let corrupt = armed.extend(limit, page);
                    // Reporting retries a failing store for as long as it fails: it must not
                    // hold shutdown (a row not reported yet fails its instance at the next
                    // start).
                    let report = async {
                        for row in corrupt {
                            fail_corrupt(&shared, row).await;
                        }
                    };
                    tokio::select! {
                        biased;
                        deadline = stopping(&mut stopped) => break deadline,
                        () = report => {}
                    }
                    // What was read may be due already.
                    continue;
                }
                Err(err) => {
                    let retry = err.class() == ErrorClass::Transient;
                    tracing::warn!(error = %err, retry, "armed timers could not be read");
                    next_read = Instant::now() + read_retry_delay(&err, read_attempt);
                    read_attempt += 1;
                }
            }
        }
        let now = shared.clock.now_ms();
        // While a batch fires, the next due one waits for it (the reap below wakes the loop).
        let next_due = armed
            .timers
            .first_key_value()
            .filter(|_| !firing)
            .map(|(key, _)| key.fire_at_ms);
        // The clock's timer fires at the next due time by the clock; real time bounds the
        // wait for what is polled (reads, back-pressure) and for a clock that jumps.
        let mut wait = MAX_TIMER_SLEEP;
        if wanted.is_some() && !firing {
            if backlogged {
                wait = wait.min(CATCH_UP_POLL);
            } else {
                // A read that failed is tried again when its back-off ends.
                wait = wait.min(next_read.saturating_duration_since(Instant::now()));
            }
        }
        clock_timer.reset(now, next_due, wait);
        tokio::select! {
            biased;
            deadline = stopping(&mut stopped) => break deadline,
            timers = armed_rx.recv() => match timers {
                // A step's timers come together, and so does whatever else is waiting: timers
                // that are due already fire in one batch, in due order.
                Some(timers) => {
                    timers.into_iter().for_each(|timer| armed.arm(timer));
                    while let Ok(timers) = armed_rx.try_recv() {
                        timers.into_iter().for_each(|timer| armed.arm(timer));
                    }
                }
                None => break Instant::now(),
            },
            () = in_flight.reap() => {}
            () = clock_timer.fired() => {}
        }
    };
    drop(shared);
    in_flight.drain(deadline).await
}

/// A read that failed for a transient reason is tried again soon; any other failure is tried
/// again every few seconds, in case an operator repairs the store: until a read succeeds, no
/// timer beyond the horizon (at start, none at all) can fire.
fn read_retry_delay(err: &StoreError, attempt: u32) -> Duration {
    if err.class() == ErrorClass::Transient {
        retry_delay(attempt)
    } else {
        Duration::from_secs(5)
    }
}

/// Fails the instance of a timer row that does not decode; the row stays for whoever repairs
/// it.
async fn fail_corrupt(shared: &Arc<Shared>, row: crate::store::CorruptRow) {
    let Some(instance_id) = &row.instance_id else {
        tracing::error!(id = row.id, reason = %row.reason, "corrupt timer row of no readable instance; left in the store");
        return;
    };
    let failure = FailureDetails::new(format!(
        "the instance cannot be resumed: corrupt timers row {}: {}",
        row.id, row.reason
    ));
    record_failure(shared, instance_id, failure).await;
}

/// Hands due timers to their instances in memory, in due order: each firing is recorded by the
/// step that consumes it (see [`Source::Timer`](crate::dispatch::Source::Timer)). Returns the
/// timers that must fire through the store instead: scheduled starts (firing one sends the
/// instance's `ExecutionStarted`, which the store builds from the instance's row), and every
/// timer while startup recovery still holds messages back (an in-memory firing could overtake
/// an older stored event), and, on a shared store, the timers of partitions whose adoption has
/// yet to hand over the older messages (see [`AdoptionGate`](super::lease::AdoptionGate)).
fn hand_over(shared: &Shared, mut due: Vec<TimerWorkItem>) -> Option<Vec<TimerWorkItem>> {
    // A timer due before this start was (or should have been) in hand when the runtime
    // before stopped: the step it wakes is an attempt at suspect work (see `poison`).
    for timer in due
        .iter()
        .filter(|timer| shared.suspects.timer_is_suspect(timer.fire_at_ms))
    {
        shared.suspects.note_instance(&timer.instance_id);
    }
    if shared.leases.is_some() {
        // A timer of a partition another runtime took over is that runtime's to fire.
        due.retain(|timer| shared.holds(&timer.instance_id));
    }
    let adopted = |id: &str| match &shared.leases {
        None => true,
        Some(leases) => shared.adoption_gate.is_open(&**leases, id),
    };
    let (through_store, in_memory): (Vec<_>, Vec<_>) = due
        .into_iter()
        .partition(|timer| timer.task_id == START_TIMER_TASK || !adopted(&timer.instance_id));
    let mut in_memory = Some(in_memory);
    shared.held_back.when_released(|| {
        for timer in in_memory.take().into_iter().flatten() {
            shared.dispatcher.deliver_fired_timer(timer);
        }
        if let Some(hooks) = &shared.hooks {
            hooks.poke();
        }
    });
    let mut through_store = through_store;
    if let Some(held) = in_memory {
        // Not handed over: all of them go through the store, in due order.
        through_store.extend(held);
        through_store.sort_by_key(TimerWorkItem::due_key);
    }
    (!through_store.is_empty()).then_some(through_store)
}

/// Fires timers that came due together in their due order: their writes are queued to the
/// store in that order (one batch, one fsync) and their messages delivered in that order, so
/// `when_any` over timers that fired during downtime picks the one due first.
async fn fire_in_order(shared: Arc<Shared>, due: Vec<TimerWorkItem>) {
    let _busy = shared.busy();
    let writes = due.iter().map(|timer| {
        shared.store.write(Write::FireTimer {
            timer_id: timer.id,
            instance_id: timer.instance_id.clone(),
            task_id: timer.task_id,
        })
    });
    let answers = futures::future::join_all(writes).await;
    for (timer, answer) in due.into_iter().zip(answers) {
        match answer {
            Ok(written) => {
                shared.health.write_succeeded();
                shared.dispatch(written);
            }
            // Fired again on its own, retrying as long as the error is transient.
            Err(_) => fire(shared.clone(), timer).await,
        }
    }
}

/// Commits the firing, which hands `TimerFired` to the instance, retrying transient errors
/// until the store takes it.
async fn fire(shared: Arc<Shared>, timer: TimerWorkItem) {
    let write = || Write::FireTimer {
        timer_id: timer.id,
        instance_id: timer.instance_id.clone(),
        task_id: timer.task_id,
    };
    if let Err(err) = shared.commit_retrying("a timer firing", write).await {
        // Retrying cannot help; the timer stays in the store for the next start.
        tracing::error!(error = %err, instance = %timer.instance_id, "timer cannot be fired");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timer(id: i64, fire_at_ms: i64) -> TimerWorkItem {
        TimerWorkItem {
            id,
            instance_id: format!("i{id}"),
            execution_id: "run".into(),
            task_id: 0,
            fire_at_ms,
        }
    }

    fn page(items: Vec<TimerWorkItem>) -> PendingPage<TimerWorkItem> {
        let last_id = items.last().map(|t| t.id);
        PendingPage {
            items,
            corrupt: Vec::new(),
            last_id,
        }
    }

    fn keys(armed: &Armed) -> Vec<i64> {
        armed.timers.values().map(|t| t.id).collect()
    }

    #[test]
    fn reads_the_store_first_and_everything_once_a_page_comes_back_short() {
        let mut armed = Armed::new(4);
        assert_eq!(armed.wants_more(), Some((DueKey::FIRST, 4)));
        armed.extend(4, page(vec![timer(1, 10), timer(2, 20)]));
        assert_eq!(armed.horizon, Horizon::Everything);
        assert_eq!(armed.wants_more(), None);
    }

    #[test]
    fn a_full_memory_keeps_the_earliest_and_moves_the_horizon_before_the_rest() {
        let mut armed = Armed::new(3);
        armed.extend(3, page(Vec::new()));
        for (id, at) in [(1, 50), (2, 10), (3, 40), (4, 20), (5, 30)] {
            armed.arm(timer(id, at));
        }
        // Due 10, 20, 30 are kept; 40 and 50 are left to the store.
        assert_eq!(keys(&armed), vec![2, 4, 5]);
        assert_eq!(
            armed.horizon,
            Horizon::Through(DueKey {
                fire_at_ms: 30,
                id: 5
            })
        );
        // A later timer beyond the horizon is not taken in; an earlier one is.
        armed.arm(timer(6, 35));
        armed.arm(timer(7, 5));
        assert_eq!(keys(&armed), vec![7, 2, 4]);
        let due: Vec<i64> = armed.take_due(20, 10).iter().map(|t| t.id).collect();
        assert_eq!(due, vec![7, 2, 4]);
        // Memory has room again: the next read starts right after the horizon.
        assert_eq!(
            armed.wants_more(),
            Some((
                DueKey {
                    fire_at_ms: 20,
                    id: 4
                },
                3
            ))
        );
    }

    #[test]
    fn a_full_page_moves_the_horizon_to_its_last_timer() {
        let mut armed = Armed::new(4);
        armed.extend(
            4,
            page(vec![timer(1, 10), timer(2, 10), timer(9, 11), timer(3, 12)]),
        );
        assert_eq!(
            armed.horizon,
            Horizon::Through(DueKey {
                fire_at_ms: 12,
                id: 3
            })
        );
        // Announced by its step after the page was read, within the horizon: kept once.
        armed.arm(timer(2, 10));
        assert_eq!(keys(&armed), vec![1, 2, 9, 3]);
    }

    #[test]
    fn a_page_of_corrupt_rows_is_read_past() {
        let mut armed = Armed::new(2);
        let corrupt = |id| crate::store::CorruptRow {
            table: "timers",
            id,
            instance_id: Some("gone".into()),
            reason: "task id -1 is negative".into(),
        };
        let mut all_corrupt = page(Vec::new());
        all_corrupt.corrupt = vec![corrupt(7), corrupt(8)];
        assert_eq!(armed.extend(2, all_corrupt).len(), 2);
        // Nothing to order by: the horizon stays, and the next read asks past the two rows.
        assert_eq!(armed.horizon, Horizon::Through(DueKey::FIRST));
        assert_eq!(armed.wants_more(), Some((DueKey::FIRST, 4)));
        let mut past = page(vec![timer(1, 30)]);
        past.corrupt = vec![corrupt(7), corrupt(8)];
        assert!(armed.extend(4, past).is_empty());
        assert_eq!(keys(&armed), vec![1]);
        assert_eq!(armed.horizon, Horizon::Everything);
    }

    #[test]
    fn a_corrupt_row_is_reported_once() {
        let mut armed = Armed::new(4);
        let corrupt = || crate::store::CorruptRow {
            table: "timers",
            id: 7,
            instance_id: Some("broken".into()),
            reason: "task id -1 is negative".into(),
        };
        let mut first = page(vec![timer(1, 10)]);
        first.corrupt.push(corrupt());
        assert_eq!(armed.extend(4, first).len(), 1);
        armed.horizon = Horizon::Through(DueKey::FIRST);
        let mut again = page(vec![timer(1, 10)]);
        again.corrupt.push(corrupt());
        assert!(armed.extend(4, again).is_empty());
    }
}
