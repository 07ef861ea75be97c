//! `Client::purge` / `purge_by` and the retention option: finished instances go with every row
//! stored about them, running ones are refused (or never match), the file gives the space back,
//! and retention follows the runtime's clock.

mod support;

use durable_runtime::clock::{Clock, SystemClock};
use durable_runtime::prelude::*;
use durable_runtime::{EventWaitError, PurgeFilter, RuntimeBuilder};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use support::{TestStore, WAIT};

#[orchestrator]
async fn approval(
    ctx: OrchestrationContext,
    timeout_ms: u64,
) -> Result<String, OrchestrationError> {
    match ctx
        .wait_for_event_with_timeout::<bool>("approved", Duration::from_millis(timeout_ms))
        .await
    {
        Ok(approved) => Ok(format!("approved: {approved}")),
        Err(EventWaitError::TimedOut { .. }) => Ok("timed out".into()),
        Err(other) => Err(other.into()),
    }
}

#[orchestrator]
async fn echo(_ctx: OrchestrationContext, text: String) -> String {
    text
}

#[orchestrator]
async fn fails(_ctx: OrchestrationContext) -> Result<u32, OrchestrationError> {
    Err(OrchestrationError::new("on purpose"))
}

/// Every table that holds rows of an instance.
const TABLES: [&str; 9] = [
    "instances",
    "instance_inputs",
    "instance_outputs",
    "history",
    "history_large",
    "messages",
    "activities",
    "timers",
    "event_keys",
];

fn count_rows(store: &TestStore, table: &str, instance_id: Option<&str>) -> i64 {
    let conn = durable_runtime::store::sqlite::open_read_only(store.path()).expect("opens");
    match instance_id {
        Some(id) => conn.query_row(
            &format!("SELECT COUNT(*) FROM {table} WHERE instance_id = ?1"),
            [id],
            |row| row.get(0),
        ),
        None => conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |row| {
            row.get(0)
        }),
    }
    .expect("counts")
}

/// The system clock plus an offset the test moves.
struct JumpingClock(AtomicI64);

impl Clock for JumpingClock {
    fn now_ms(&self) -> i64 {
        SystemClock.now_ms() + self.0.load(Ordering::SeqCst)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_instance_is_purged_with_every_row_and_a_running_one_is_refused() {
    for cache in [None, Some(0)] {
        let store = TestStore::new();
        let with = |b: RuntimeBuilder| match cache {
            Some(capacity) => b.cache_capacity(capacity),
            None => b,
        };
        let (runtime, client) = store.start_with(with).await;
        let id = client.start(approval, 3_600_000).await.expect("start");
        support::until_status(&client, &id, RuntimeStatus::Running).await;
        let refused = client.purge(&id).await;
        support::assert_not_applicable(&refused, Some("purge"), RuntimeStatus::Running);
        assert!(client.get_status(&id).await.expect("reads").is_some());
        client
            .raise_event_once(&id, "approved", true, "key-1")
            .await
            .expect("raised");
        client.wait_for_completion(&id, WAIT).await.expect("done");
        assert!(count_rows(&store, "event_keys", Some(&id)) > 0);
        assert!(count_rows(&store, "history", Some(&id)) > 0);

        client.purge(&id).await.expect("purged");
        assert!(client.get_status(&id).await.expect("reads").is_none());
        for table in TABLES {
            assert_eq!(count_rows(&store, table, Some(&id)), 0, "{table}");
        }
        let again = client.purge(&id).await;
        support::assert_not_found(&again);
        // The id is free again.
        let reused = client.start_with_id(echo, id.clone(), "again".into()).await;
        assert_eq!(reused.expect("the id is free"), id);
        runtime.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_by_filters_on_status_and_creation_time_and_never_takes_a_running_instance() {
    let store = TestStore::new();
    let clock = Arc::new(JumpingClock(AtomicI64::new(0)));
    let (runtime, client) = store.start_with(|b| b.clock(clock.clone())).await;
    let old_done = client.start(echo, "old".into()).await.expect("start");
    let old_failed = client.start(fails, ()).await.expect("start");
    let old_running = client.start(approval, 3_600_000).await.expect("start");
    for id in [&old_done, &old_failed] {
        client.wait_for_completion(id, WAIT).await.expect("done");
    }
    let boundary = clock.now_ms() + 1;
    clock.0.store(60_000, Ordering::SeqCst);
    let new_done = client.start(echo, "new".into()).await.expect("start");
    client
        .wait_for_completion(&new_done, WAIT)
        .await
        .expect("done");

    // Failed only.
    let failed = PurgeFilter {
        statuses: vec![RuntimeStatus::Failed],
        ..PurgeFilter::default()
    };
    assert_eq!(client.purge_by(&failed).await.expect("purges"), 1);
    assert!(
        client
            .get_status(&old_failed)
            .await
            .expect("reads")
            .is_none()
    );
    // Created before the boundary, any finished status: the old completed one only.
    let old = PurgeFilter {
        created_to_ms: Some(boundary),
        ..PurgeFilter::default()
    };
    assert_eq!(client.purge_by(&old).await.expect("purges"), 1);
    assert!(client.get_status(&old_done).await.expect("reads").is_none());
    assert!(client.get_status(&new_done).await.expect("reads").is_some());
    // Asking for running instances purges none.
    let running = PurgeFilter {
        statuses: vec![RuntimeStatus::Running, RuntimeStatus::Pending],
        ..PurgeFilter::default()
    };
    assert_eq!(client.purge_by(&running).await.expect("purges"), 0);
    assert_eq!(
        client
            .purge_by(&PurgeFilter::default())
            .await
            .expect("purges"),
        1
    );
    let status = client
        .get_status(&old_running)
        .await
        .expect("reads")
        .expect("kept");
    assert_eq!(status.runtime_status, RuntimeStatus::Running);
    runtime.shutdown().await;
}

fn file_size(store: &TestStore) -> u64 {
    std::fs::metadata(store.path()).expect("stat").len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_file_shrinks_after_purging_many_instances() {
    let store = TestStore::new();
    let (runtime, client) = store.start().await;
    let payload = "x".repeat(20_000);
    let mut ids = Vec::new();
    for _ in 0..300 {
        ids.push(client.start(echo, payload.clone()).await.expect("start"));
    }
    for id in &ids {
        client.wait_for_completion(id, WAIT).await.expect("done");
    }
    runtime.shutdown().await;
    drop(client);
    // Closing the store checkpoints the log into the file.
    let (runtime, client) = store.restart(|b| b).await;
    runtime.shutdown().await;
    drop(client);
    let full = file_size(&store);
    assert!(
        full > 10_000_000,
        "300 x (20 KB in + 20 KB out): {full} bytes"
    );

    let (runtime, client) = store.restart(|b| b).await;
    let purged = client
        .purge_by(&PurgeFilter::default())
        .await
        .expect("purges");
    assert_eq!(purged, 300);
    runtime.shutdown().await;
    drop(client);
    let (runtime, client) = store.restart(|b| b).await;
    runtime.shutdown().await;
    drop(client);
    let after = file_size(&store);
    assert!(
        after < full / 10,
        "the space is given back: {full} -> {after} bytes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_purges_finished_instances_older_than_the_age_by_the_runtimes_clock() {
    let store = TestStore::new();
    let clock = Arc::new(JumpingClock(AtomicI64::new(0)));
    let (runtime, client) = store
        .start_with(|b| b.clock(clock.clone()).retention(Duration::from_secs(3600)))
        .await;
    let done = client.start(echo, "done".into()).await.expect("start");
    let failed = client.start(fails, ()).await.expect("start");
    let running = client.start(approval, 86_400_000).await.expect("start");
    for id in [&done, &failed] {
        client.wait_for_completion(id, WAIT).await.expect("done");
    }
    support::until_status(&client, &running, RuntimeStatus::Running).await;
    // Younger than the age: kept (a sweep runs at start).
    let kept = client
        .wait_for_completion(&done, Duration::from_millis(1_500))
        .await;
    assert!(kept.is_ok(), "{kept:?}");
    // Two hours later by the runtime's clock.
    clock.0.store(2 * 3_600_000, Ordering::SeqCst);
    let gone = async {
        for id in [&done, &failed] {
            while client.get_status(id).await.expect("reads").is_some() {
                tokio::task::yield_now().await;
            }
        }
    };
    tokio::time::timeout(WAIT, gone)
        .await
        .expect("purged by retention");
    let status = client
        .get_status(&running)
        .await
        .expect("reads")
        .expect("kept");
    assert_eq!(status.runtime_status, RuntimeStatus::Running);
    runtime.shutdown().await;
}

/// Timer hygiene: 1,000 instances each race an event against a one-hour timeout; all get the
/// event and complete, and once purged no timer (or any other) row stays behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_event_waits_with_an_hour_timeout_leave_no_timer_behind() {
    let store = TestStore::new();
    let (runtime, client) = store.start().await;
    let mut ids = Vec::with_capacity(1_000);
    for _ in 0..1_000 {
        ids.push(client.start(approval, 3_600_000).await.expect("start"));
    }
    for id in &ids {
        support::until_status(&client, id, RuntimeStatus::Running).await;
    }
    assert_eq!(
        count_rows(&store, "timers", None),
        1_000,
        "each timeout is armed"
    );
    for id in &ids {
        client
            .raise_event(id, "approved", true)
            .await
            .expect("raised");
    }
    for id in &ids {
        let status = client.wait_for_completion(id, WAIT).await.expect("done");
        assert_eq!(
            status.output_as::<String>().expect("output"),
            "approved: true"
        );
    }
    let purged = client
        .purge_by(&PurgeFilter::default())
        .await
        .expect("purges");
    assert_eq!(purged, 1_000);
    for table in TABLES {
        assert_eq!(count_rows(&store, table, None), 0, "{table}");
    }
    runtime.shutdown().await;
}
