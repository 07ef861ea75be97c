//! A large backlog left by an earlier process is recovered a page at a time: memory stays
//! bounded whatever the backlog, and every item is still run. Alone in its binary, so the
//! process's peak RSS is this test's.

mod support;

use durable_runtime::prelude::*;
use support::{TestStore, peak_rss_kib};

const BACKLOG: i64 = 200_000;

#[activity]
async fn noop(n: u64) -> u64 {
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_backlog_is_recovered_in_bounded_memory() {
    let store = TestStore::new();
    // The runtime creates the schema; then the backlog is written as an earlier process would
    // have left it: activities whose instance is gone (their results are consumed and dropped).
    let (runtime, client) = store.start().await;
    drop(client);
    runtime.shutdown().await;
    {
        let mut db = rusqlite::Connection::open(store.path()).expect("opens");
        let tx = db.transaction().expect("tx");
        {
            let mut insert = tx
                .prepare(
                    "INSERT INTO activities (instance_id, task_id, name, input) \
                     VALUES ('gone', ?1, 'noop', ?1)",
                )
                .expect("prepares");
            for task_id in 0..BACKLOG {
                insert.execute([task_id]).expect("inserts");
            }
        }
        tx.commit().expect("commits");
    }
    let before = peak_rss_kib();
    // Few activity slots, so a recovery without back-pressure would queue most of the backlog.
    let (runtime, _client) = store.start_with(|b| b.activity_concurrency(16)).await;
    let db = durable_runtime::store::sqlite::open_read_only(store.path()).expect("opens");
    tokio::time::timeout(std::time::Duration::from_secs(300), async {
        loop {
            let left: i64 = db
                .query_row("SELECT COUNT(*) FROM activities", [], |row| row.get(0))
                .expect("counts");
            if left == 0 {
                break;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the whole backlog runs");
    runtime.shutdown().await;
    let grown_mib = peak_rss_kib().saturating_sub(before) / 1024;
    println!("peak RSS grew by {grown_mib} MiB recovering {BACKLOG} activities");
    // Loading the backlog whole took about 0.75 KiB an item: 146 MiB here.
    assert!(
        grown_mib < 24,
        "peak RSS grew by {grown_mib} MiB for a backlog of {BACKLOG}"
    );
}
