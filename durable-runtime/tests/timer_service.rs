//! The timer service under adverse conditions: a corrupt timer row met while the store fails,
//! timers that were due before their step committed, and large groups of timers due together.

mod support;

use durable_runtime::clock::{Clock, SystemClock};
use durable_runtime::prelude::*;
use durable_runtime::store::{StoreError, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use support::TestStore;
use support::hooked::{BoxFut, Hook, Phase};

/// Shutdown must honour its timeout while the timer service reports a corrupt timer row to a
/// store that keeps failing (a full disk): the report is retried, but not past the stop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_is_not_held_by_reporting_a_corrupt_timer_to_a_failing_store() {
    let store = TestStore::new();
    let (runtime, client) = store.start().await;
    drop(client);
    runtime.shutdown().await;
    let conn = rusqlite::Connection::open(store.path()).expect("opens");
    // A negative task id does not decode: the row fails its instance when it is read.
    conn.execute(
        "INSERT INTO timers (instance_id, task_id, fire_at_ms) VALUES ('broken', -1, 0)",
        [],
    )
    .expect("inserts");
    drop(conn);

    let (reported, mut report_seen) = tokio::sync::watch::channel(false);
    let failing_reports = Arc::new(AtomicBool::new(true));
    let hook: Hook = {
        let failing_reports = failing_reports.clone();
        Arc::new(move |phase, write| -> BoxFut {
            let fail = phase == Phase::Before
                && matches!(write, Write::FailInstance { .. })
                && failing_reports.load(Ordering::SeqCst);
            if fail {
                let _ = reported.send(true);
            }
            Box::pin(async move { fail.then(|| StoreError::Unavailable("disk full".into())) })
        })
    };
    let runtime = store
        .hooked_builder(hook)
        .shutdown_timeout(Duration::from_millis(200))
        .start()
        .await
        .expect("starts");
    report_seen
        .wait_for(|seen| *seen)
        .await
        .expect("the corrupt row is reported");
    let stopped = tokio::time::timeout(Duration::from_secs(10), runtime.shutdown()).await;
    failing_reports.store(false, Ordering::SeqCst);
    assert!(
        stopped.is_ok(),
        "shutdown_timeout is 200 ms, but shutdown waited on the timer service's report"
    );
}

/// Arms two timers that are due already, the later-due one first.
#[orchestrator]
async fn two_past_deadlines(ctx: OrchestrationContext) -> Result<String, OrchestrationError> {
    let now = ctx.current_utc_datetime();
    let later = ctx.create_timer(now - Duration::from_secs(1));
    let earlier = ctx.create_timer(now - Duration::from_secs(2));
    Ok(match ctx.when_any2(later, earlier).await {
        Either::Left(()) => "later",
        Either::Right(()) => "earlier",
    }
    .to_string())
}

/// Timers one step arms that are due already came due together: they fire in due order, so
/// `when_any` picks the one due first, as it does for timers that came due during downtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timers_a_step_arms_already_due_fire_in_due_order() {
    let store = TestStore::new();
    let (runtime, client) = store.start().await;
    for _ in 0..5 {
        let id = client.start(two_past_deadlines, ()).await.expect("starts");
        let status = client
            .wait_for_completion(&id, support::WAIT)
            .await
            .expect("completes");
        assert_eq!(
            status.output_as::<String>().expect("output"),
            "earlier",
            "{status:?}"
        );
    }
    runtime.shutdown().await;
}

#[orchestrator]
async fn nap(ctx: OrchestrationContext, ms: u64) -> Result<(), OrchestrationError> {
    ctx.sleep(Duration::from_millis(ms)).await;
    Ok(())
}

/// Corrupt timer rows whose instance cannot be failed (it is gone) stay in the store. When
/// they fill a whole page of the timer service's read, the timers due after them must still be
/// read and fire (a few rows are enough with a small memory; half of it with any).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_rows_that_fill_a_page_do_not_hide_the_timers_due_after_them() {
    let store = TestStore::new();
    let (runtime, client) = store.start().await;
    let id = client.start(nap, 400).await.expect("starts");
    support::until_recorded(&client, &id, "the timer", 1, |e| {
        matches!(e, durable_runtime::HistoryEvent::TimerCreated { .. })
    })
    .await;
    drop(client);
    runtime.shutdown().await;
    let conn = rusqlite::Connection::open(store.path()).expect("opens");
    let due: i64 = conn
        .query_row("SELECT fire_at_ms FROM timers", [], |row| row.get(0))
        .expect("the nap's timer is armed");
    // Two rows of an instance that is gone, due before the nap's timer, with task ids that do
    // not decode.
    for early in [2, 1] {
        conn.execute(
            "INSERT INTO timers (instance_id, task_id, fire_at_ms) VALUES ('gone', -1, ?1)",
            [due - early],
        )
        .expect("inserts");
    }
    drop(conn);
    let (runtime, client) = store.restart(|b| b.max_timers_in_memory(2)).await;
    let status = client
        .wait_for_completion(&id, Duration::from_secs(10))
        .await;
    runtime.shutdown().await;
    let status = status.expect("the nap's timer fires after the corrupt rows");
    assert_eq!(status.runtime_status, RuntimeStatus::Completed);
}

/// The system clock, counting how often it is read: the timer service reads it once per turn
/// of its loop.
#[derive(Default)]
struct CountingClock(AtomicU64);

impl Clock for CountingClock {
    fn now_ms(&self) -> i64 {
        self.0.fetch_add(1, Ordering::SeqCst);
        SystemClock.now_ms()
    }
}

/// While a batch of timers takes long to fire (a slow or failing store), the timer service
/// waits for it; it must not wake every few milliseconds meanwhile. Timers fire through the
/// store (a write each) while startup recovery holds messages back, so recovery is held here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_firing_does_not_spin_the_timer_service() {
    let store = TestStore::new();
    let (fire_started, mut fire_seen) = tokio::sync::watch::channel(false);
    let (release, released) = tokio::sync::watch::channel(false);
    let hook: Hook = Arc::new(move |phase, write| -> BoxFut {
        if phase == Phase::Before && matches!(write, Write::FireTimer { .. }) {
            let _ = fire_started.send(true);
            let mut released = released.clone();
            return Box::pin(async move {
                let _ = released.wait_for(|r| *r).await;
                None
            });
        }
        Box::pin(async { None })
    });
    let clock = Arc::new(CountingClock::default());
    let (open_recovery, recovery_open) = tokio::sync::watch::channel(false);
    let runtime = store
        .hooked_builder_held_recovery(hook, recovery_open)
        .max_timers_in_memory(2)
        .clock(clock.clone())
        .shutdown_timeout(Duration::from_millis(200))
        .start()
        .await
        .expect("starts");
    let client = runtime.client();
    // Two far timers fill memory; a third, due at once, pushes one of them back to the store,
    // so memory has room and reading on is wanted, while the due one fires (held).
    for ms in [3_600_000, 3_600_001] {
        let id = client.start(nap, ms).await.expect("starts");
        support::until_recorded(&client, &id, "the timer", 1, |e| {
            matches!(e, durable_runtime::HistoryEvent::TimerCreated { .. })
        })
        .await;
    }
    client.start(nap, 0).await.expect("starts");
    fire_seen
        .wait_for(|seen| *seen)
        .await
        .expect("the due timer fires");
    clock.0.store(0, Ordering::SeqCst);
    // A window to count wakeups in, not a synchronisation.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let turns = clock.0.load(Ordering::SeqCst);
    let _ = release.send(true);
    let _ = open_recovery.send(true);
    runtime.shutdown().await;
    assert!(
        turns < 25,
        "the timer service turned {turns} times in 500 ms while one firing was held"
    );
}

/// Timers that came due while the process was down fire while startup recovery still hands
/// over older messages, and what they deliver to instances of the earlier process is held
/// back until recovery is done. The timer service must count those messages in the backlog
/// that paces its reads, or it fires the whole backlog into memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timers_fired_while_recovery_holds_their_messages_back_are_paced() {
    const DUE: u64 = 20_000;
    const IN_MEMORY: usize = 1_000;
    let store = TestStore::new();
    let (runtime, client) = store.start().await;
    drop(client);
    runtime.shutdown().await;
    let now_ms = SystemClock.now_ms();
    {
        let mut db = rusqlite::Connection::open(store.path()).expect("opens");
        let tx = db.transaction().expect("tx");
        {
            // Due already, for an instance of the earlier process (gone: what reaches it is
            // consumed and dropped).
            let mut insert = tx
                .prepare(
                    "INSERT INTO timers (instance_id, task_id, fire_at_ms) VALUES ('gone', ?1, ?2)",
                )
                .expect("prepares");
            for n in 0..DUE as i64 {
                insert.execute([n, now_ms - 1]).expect("inserts");
            }
        }
        tx.commit().expect("commits");
    }
    let fired = Arc::new(AtomicU64::new(0));
    let hook: Hook = {
        let fired = fired.clone();
        Arc::new(move |phase, write| -> BoxFut {
            if phase == Phase::Before && matches!(write, Write::FireTimer { .. }) {
                fired.fetch_add(1, Ordering::SeqCst);
            }
            Box::pin(async { None })
        })
    };
    let (open_recovery, recovery_open) = tokio::sync::watch::channel(false);
    let clock = Arc::new(CountingClock::default());
    let runtime = store
        .hooked_builder_held_recovery(hook, recovery_open)
        .max_timers_in_memory(IN_MEMORY)
        .clock(clock.clone())
        .start()
        .await
        .expect("starts");
    // Recovery is held on its first page. Wait until every timer fired, or until the timer
    // service stopped firing: it turns (reading the clock) again and again without firing.
    let mut seen = (u64::MAX, 0);
    let fired_while_held = loop {
        let turns = clock.0.load(Ordering::SeqCst);
        let now_fired = fired.load(Ordering::SeqCst);
        if now_fired >= DUE {
            break now_fired;
        }
        if now_fired != seen.0 {
            seen = (now_fired, turns);
        } else if turns - seen.1 >= 50 {
            break now_fired;
        }
        tokio::task::yield_now().await;
    };
    let _ = open_recovery.send(true);
    let db = durable_runtime::store::sqlite::open_read_only(store.path()).expect("opens");
    let left = |table: &str| -> i64 {
        db.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |row| {
            row.get(0)
        })
        .expect("counts")
    };
    tokio::time::timeout(support::WAIT, async {
        while left("timers") > 0 || left("messages") > 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("every timer fires once recovery is done");
    runtime.shutdown().await;
    println!("{fired_while_held} of {DUE} timers fired while recovery was held");
    // The backlog the service reads up to (4,000), one memory of timers and one batch.
    assert!(
        fired_while_held < 8_000,
        "{fired_while_held} of {DUE} timers fired while recovery held their messages back"
    );
}
