//! Reading armed timers in due order, a page at a time.

use super::tests::open;
use super::*;

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
