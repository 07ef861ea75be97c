//! Reading armed timers in due order, a page at a time.

use super::tests::{create, open, step};
use super::*;
use crate::history::HistoryEvent;
use crate::store::ErrorClass;

#[tokio::test]
async fn timers_are_read_in_due_order_a_page_at_a_time() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(&dir);
    store.write(create("i")).await.expect("created");
    let mut arm = step("i", 0);
    // Armed out of due order, two due together.
    arm.timers = vec![(1, 3_000), (2, 1_000), (3, 2_000), (4, 1_000)];
    store.write(Write::Step(arm)).await.expect("applies");
    let mut after = DueKey::FIRST;
    let mut due = Vec::new();
    loop {
        let page = store.pending_timers(after, 3).await.expect("reads");
        let Some(last) = page.items.last() else { break };
        after = last.due_key();
        due.extend(page.items.iter().map(|t| (t.fire_at_ms, t.task_id)));
    }
    assert_eq!(due, vec![(1_000, 2), (1_000, 4), (2_000, 3), (3_000, 1)]);
}

#[test]
fn reading_on_inside_a_large_group_of_timers_due_together_costs_one_page() {
    // A million reminders due at the same midnight: the timer service reads them a page at a
    // time, each page after the last one's (due time, id). Reading the last page must cost
    // about what reading the first does, not a scan of every tie before it.
    const TIES: i64 = 100_000;
    let dir = tempfile::tempdir().expect("temp dir");
    drop(open(&dir));
    let conn = Connection::open(dir.path().join("s.db")).expect("opens");
    conn.execute(
        "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < ?1)
         INSERT INTO timers (id, instance_id, task_id, fire_at_ms) SELECT x, 'i', x, 5 FROM n",
        [TIES],
    )
    .expect("fills");
    let ops = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counted = ops.clone();
    conn.progress_handler(
        100,
        Some(move || {
            counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            false
        }),
    );
    let cost = |after_id: i64| {
        ops.store(0, std::sync::atomic::Ordering::Relaxed);
        let after = DueKey {
            fire_at_ms: 5,
            id: after_id,
        };
        let page = read::pending_timers(&conn, after, 100).expect("reads");
        let ids: Vec<i64> = page.items.iter().map(|t| t.id).collect();
        assert_eq!(ids, (after_id + 1..after_id + 101).collect::<Vec<_>>());
        ops.load(std::sync::atomic::Ordering::Relaxed)
    };
    let first = cost(0);
    let last = cost(TIES - 100);
    assert!(
        last <= 2 * first + 10,
        "the first page cost {first} units, the last {last}: each page scans the ties before it"
    );
}

#[tokio::test]
async fn a_step_records_a_firing_once_and_is_refused_whole_when_the_timer_is_gone() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(&dir);
    store.write(create("i")).await.expect("created");
    let mut arm = step("i", 0);
    arm.timers = vec![(1, 1_000)];
    let Written::Step(work) = store.write(Write::Step(arm)).await.expect("applies") else {
        panic!("a step answers with its work");
    };
    let timer = work.timers[0].id;
    let fired = || {
        let mut fire = step("i", 1);
        fire.events = vec![HistoryEvent::TimerFired { task_id: 1 }];
        fire.fired_timers = vec![timer];
        fire
    };
    store
        .write(Write::Step(fired()))
        .await
        .expect("records the firing");
    let page = store
        .pending_timers(DueKey::FIRST, 10)
        .await
        .expect("reads");
    assert!(page.items.is_empty(), "the step deleted the timer");
    // The same firing again (a step recomputed after a lost answer) must not be recorded twice.
    let mut again = fired();
    again.first_seq = 2;
    let err = store.write(Write::Step(again)).await.expect_err("gone");
    assert!(
        matches!(err, StoreError::TimersGone(ref ids) if ids == &[timer]),
        "{err}"
    );
    assert_eq!(err.class(), ErrorClass::Conflict);
    assert_eq!(store.read_history("i").await.expect("reads").len(), 2);
}
