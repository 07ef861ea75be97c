//! Many worker processes on one PostgreSQL schema (feature `postgres`,
//! `DURABLE_TEST_POSTGRES_URL`; skipped, loudly, without it): real processes (this test binary
//! re-run as `shared_worker_process`) sharing the work by leases, while this process starts the
//! instances through a client of its own and waits for them (so every start reaches a worker
//! through the store's notifications).
//!
//! - Two workers: every instance completes once with the right output, both workers ran part
//!   of the work, no activity result is recorded twice, and (unless a lease changed hands)
//!   every activity ran exactly once.
//! - One worker `kill -9`ed mid-run: the other takes its partitions over once the leases
//!   expire and finishes everything; an activity ran again only if its completion was not
//!   recorded when the first worker died.
//! - One worker stalled past its leases (SIGSTOP): the other takes over and finishes; resumed
//!   (SIGCONT), the stale worker runs nothing again and commits nothing (histories have no
//!   duplicate or gap).
//! - A client of a third process raises events to, suspends and resumes instances the two
//!   workers hold: each is run by its holder, woken across processes.
//! - The database crashes and restarts (`pg_ctl restart -m immediate`) mid-run: the workers
//!   reconnect (their pools, and the listening connection) and finish every instance that was
//!   acknowledged, each activity result recorded once.
//!
//! The tests of this file run one at a time (each already runs three processes).
#![cfg(feature = "postgres")]

mod harness;
#[path = "../support/mod.rs"]
mod support;
mod workload;

use durable_runtime::prelude::*;
use harness::{
    Worker, crash_restart, create_schema, epochs, executions, pending_activities, query, setup,
    shared_client, slow_steps_builder, until_balanced,
};
use workload::{STEPS, check_all, check_all_retrying, start_all, waits_for_go};

/// One test at a time: each runs several processes on a machine that may have two cores.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A worker process: runs a shared runtime until its stdin closes, then says how many steps
/// its store refused for a lost lease and shuts down.
#[test]
#[ignore = "run as a child process by the tests of this file"]
fn shared_worker_process() {
    let (Ok(url), Ok(schema), Ok(ttl)) = (
        std::env::var("DURABLE_SH_URL"),
        std::env::var("DURABLE_SH_SCHEMA"),
        std::env::var("DURABLE_SH_TTL_MS"),
    ) else {
        return;
    };
    let ttl = Duration::from_millis(ttl.parse().expect("a TTL in ms"));
    let step_delay = std::env::var("DURABLE_SH_STEP_DELAY_MS")
        .ok()
        .and_then(|ms| ms.parse().ok())
        .map(Duration::from_millis);
    let rt = tokio::runtime::Runtime::new().expect("tokio");
    rt.block_on(async {
        let builder = match step_delay {
            None => Runtime::builder()
                .postgres(&url)
                .postgres_schema(&schema)
                .lease_ttl(ttl),
            Some(delay) => slow_steps_builder(&url, &schema, ttl, delay).await,
        };
        let runtime = builder
            .shutdown_timeout(Duration::from_secs(5))
            .start()
            .await
            .expect("a shared runtime starts");
        println!("ready");
        let _ = tokio::task::spawn_blocking(|| {
            let mut sink = String::new();
            while std::io::stdin()
                .read_line(&mut sink)
                .map(|n| n > 0)
                .unwrap_or(false)
            {}
        })
        .await;
        println!(
            "refused {}",
            durable_runtime::store::postgres::PostgresStore::lease_refusals()
        );
        runtime.shutdown().await;
        println!("all done");
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_share_the_work_and_run_each_instance_once() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some((url, schema, dir)) = setup("two_workers_share_the_work_and_run_each_instance_once")
    else {
        return;
    };
    const INSTANCES: u32 = 60;
    let log = dir.path().join("executions.log");
    create_schema(&url, &schema).await;
    let a = Worker::spawn(&url, &schema, &log, 3_000, 0, None);
    let b = Worker::spawn(&url, &schema, &log, 3_000, 0, None);
    until_balanced(&url, &schema, 2).await;
    let epochs_before = epochs(&url, &schema).await;
    let client = shared_client(&url, &schema).await;
    start_all(&client, INSTANCES).await;
    check_all(&client, INSTANCES).await;
    let handed_over = epochs(&url, &schema).await != epochs_before;
    let (ran_a, ran_b) = (a.ran(), b.ran());
    a.stop();
    b.stop();
    assert!(
        ran_a > 0 && ran_b > 0,
        "both workers ran activities: {ran_a} and {ran_b}"
    );
    let runs = executions(&log);
    assert_eq!(
        runs.len(),
        (INSTANCES * STEPS) as usize,
        "every activity ran"
    );
    if !handed_over {
        // No lease changed hands while the instances ran: nothing ran twice.
        for (key, pids) in &runs {
            assert_eq!(pids.len(), 1, "{key:?} ran {} times", pids.len());
        }
    }
    // Queues empty.
    let left: i64 = query(
        &url,
        &schema,
        "SELECT (SELECT count(*) FROM activities) + (SELECT count(*) FROM messages)",
    )
    .await[0]
        .get(0);
    assert_eq!(left, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_s_work_is_finished_by_the_other_after_its_leases_expire() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some((url, schema, dir)) =
        setup("a_killed_worker_s_work_is_finished_by_the_other_after_its_leases_expire")
    else {
        return;
    };
    const INSTANCES: u32 = 60;
    let log = dir.path().join("executions.log");
    create_schema(&url, &schema).await;
    let a = Worker::spawn(&url, &schema, &log, 1_000, 5, None);
    let b = Worker::spawn(&url, &schema, &log, 1_000, 5, None);
    until_balanced(&url, &schema, 2).await;
    let client = shared_client(&url, &schema).await;
    start_all(&client, INSTANCES).await;
    // Mid-run: A has run some of its activities, far from all of them.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while a.ran() < 20 {
        assert!(tokio::time::Instant::now() < deadline, "A ran nothing");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let a_pid = a.child.id();
    a.kill();
    let pending_at_kill = pending_activities(&url, &schema).await;
    check_all(&client, INSTANCES).await;
    let b_pid = b.child.id();
    b.stop();
    let runs = executions(&log);
    assert_eq!(
        runs.len(),
        (INSTANCES * STEPS) as usize,
        "every activity ran"
    );
    let mut reruns = 0;
    for (key, pids) in &runs {
        match pids.as_slice() {
            [_] => {}
            [first, second] => {
                // Run by A, whose completion was not recorded when it died, then by B.
                assert_eq!((*first, *second), (a_pid, b_pid), "{key:?}");
                assert!(
                    pending_at_kill.contains(key),
                    "{key:?} ran again although its completion was recorded before the kill"
                );
                reruns += 1;
            }
            more => panic!("{key:?} ran {} times", more.len()),
        }
    }
    let b_ran = runs.values().filter(|pids| pids.contains(&b_pid)).count();
    assert!(b_ran > 0);
    println!("{reruns} activities ran again (in flight at the kill)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_stalled_past_its_leases_commits_nothing_when_it_resumes() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some((url, schema, dir)) =
        setup("a_worker_stalled_past_its_leases_commits_nothing_when_it_resumes")
    else {
        return;
    };
    const INSTANCES: u32 = 40;
    let log = dir.path().join("executions.log");
    create_schema(&url, &schema).await;
    // Activities that take a while, and steps that take a while to reach the store: A is
    // stopped with some of each in flight, whenever it is stopped.
    let a = Worker::spawn(&url, &schema, &log, 1_000, 30, Some(40));
    let b = Worker::spawn(&url, &schema, &log, 1_000, 30, None);
    until_balanced(&url, &schema, 2).await;
    let client = shared_client(&url, &schema).await;
    start_all(&client, INSTANCES).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while a.ran() < 10 {
        assert!(tokio::time::Instant::now() < deadline, "A ran nothing");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    a.signal("-STOP");
    let pending_at_stop = pending_activities(&url, &schema).await;
    // B takes A's partitions over once their leases expire, and finishes everything.
    check_all(&client, INSTANCES).await;
    let b_id: String = query(
        &url,
        &schema,
        "SELECT owner FROM partitions GROUP BY owner ORDER BY count(*) DESC LIMIT 1",
    )
    .await[0]
        .get(0);
    let history_rows = |url: String, schema: String| async move {
        query(&url, &schema, "SELECT count(*) FROM history").await[0].get::<_, i64>(0)
    };
    let rows_before = history_rows(url.clone(), schema.clone()).await;
    let runs_before = executions(&log);
    a.signal("-CONT");
    // A resumes with leases it no longer holds: it renews, learns it lost them, and may get
    // some back (two live workers again). Once it holds its share again it has resumed
    // for good; nothing it had in flight may have been committed.
    until_balanced(&url, &schema, 2).await;
    let a_pid = a.child.id();
    let lines = a.stop();
    b.stop();
    assert_eq!(
        history_rows(url.clone(), schema.clone()).await,
        rows_before,
        "the resumed worker committed to a history"
    );
    check_all(&client, INSTANCES).await;
    let runs = executions(&log);
    // Nothing ran after the resume: every activity had completed, and what A held in its
    // queue belonged to partitions it had lost.
    assert_eq!(runs, runs_before, "the resumed worker ran activities again");
    for (key, pids) in &runs {
        if pids.len() > 1 {
            assert_eq!(pids.len(), 2, "{key:?}");
            assert_eq!(pids[0], a_pid, "{key:?}");
            assert!(
                pending_at_stop.contains(key),
                "{key:?} ran again although its completion was recorded before the stall"
            );
        }
    }
    // The steps it had computed before the stall were refused by the store (their
    // partitions' leases had gone to B), not merely skipped.
    let refused: u64 = lines
        .iter()
        .find_map(|l| l.strip_prefix("refused "))
        .expect("the worker reports its refusals")
        .parse()
        .expect("a count");
    assert!(refused > 0, "the stalled worker tried no stale step");
    println!("the stalled worker ({b_id} took over) had {refused} steps refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_crash_mid_run_is_survived_by_both_workers() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (Ok(dir), Ok(bin)) = (
        std::env::var("DURABLE_TEST_PG_DIR"),
        std::env::var("DURABLE_TEST_PG_BIN"),
    ) else {
        eprintln!(
            "SKIPPED a_database_crash_mid_run_is_survived_by_both_workers: needs the cluster of \
             .ci/postgres (DURABLE_TEST_POSTGRES_URL, DURABLE_TEST_PG_DIR, DURABLE_TEST_PG_BIN)"
        );
        return;
    };
    let Some((url, schema, tmp)) = setup("a_database_crash_mid_run_is_survived_by_both_workers")
    else {
        return;
    };
    const INSTANCES: u32 = 40;
    let log = tmp.path().join("executions.log");
    create_schema(&url, &schema).await;
    let a = Worker::spawn(&url, &schema, &log, 2_000, 5, None);
    let b = Worker::spawn(&url, &schema, &log, 2_000, 5, None);
    until_balanced(&url, &schema, 2).await;
    let client = shared_client(&url, &schema).await;
    // Every start is acknowledged before the crash.
    start_all(&client, INSTANCES).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while a.ran() + b.ran() < 30 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the workers ran nothing"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let ran_before = a.ran() + b.ran();
    tokio::task::spawn_blocking(move || crash_restart(&dir, &bin))
        .await
        .expect("restarts");
    check_all_retrying(&client, INSTANCES).await;
    let (ran_a, ran_b) = (a.ran(), b.ran());
    a.stop();
    b.stop();
    assert!(
        ran_a + ran_b > ran_before,
        "work went on after the restart: {ran_before} activities before, {} in all",
        ran_a + ran_b
    );
    assert_eq!(
        executions(&log).len(),
        (INSTANCES * STEPS) as usize,
        "every activity ran"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_of_another_process_suspends_resumes_and_signals_held_instances() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some((url, schema, dir)) =
        setup("a_client_of_another_process_suspends_resumes_and_signals_held_instances")
    else {
        return;
    };
    const INSTANCES: u32 = 16;
    let log = dir.path().join("executions.log");
    create_schema(&url, &schema).await;
    let a = Worker::spawn(&url, &schema, &log, 3_000, 0, None);
    let b = Worker::spawn(&url, &schema, &log, 3_000, 0, None);
    until_balanced(&url, &schema, 2).await;
    let client = shared_client(&url, &schema).await;
    let ids: Vec<String> = (0..INSTANCES).map(|i| format!("go-{i:02}")).collect();
    for (i, id) in ids.iter().enumerate() {
        client
            .start_with_id(waits_for_go, id.clone(), i as u32)
            .await
            .expect("starts");
    }
    // Each has run its first step (it waits for the event) on whichever worker holds it.
    for id in &ids {
        support::until_status(&client, id, RuntimeStatus::Running).await;
    }
    for id in &ids {
        client.suspend(id, "hold on").await.expect("suspends");
    }
    for id in &ids {
        support::until_status(&client, id, RuntimeStatus::Suspended).await;
    }
    // The event reaches a suspended instance's holder and waits there, parked.
    for id in &ids {
        client.raise_event(id, "go", 7u32).await.expect("raised");
    }
    for id in &ids {
        client.resume(id, "go on").await.expect("resumes");
    }
    for (i, id) in ids.iter().enumerate() {
        let status = client
            .wait_for_completion(id, Duration::from_secs(60))
            .await
            .expect("completes");
        assert_eq!(status.runtime_status, RuntimeStatus::Completed, "{id}");
        assert_eq!(
            status.output_as::<String>().expect("output"),
            format!("{i}.7")
        );
    }
    let (ran_a, ran_b) = (a.ran(), b.ran());
    a.stop();
    b.stop();
    assert_eq!(
        ran_a + ran_b,
        u64::from(INSTANCES),
        "one activity each, run once"
    );
    assert!(
        ran_a > 0 && ran_b > 0,
        "both workers held some: {ran_a} and {ran_b}"
    );
}

/// Returns its input at once: a start that needs nothing but its own message.
#[orchestrator]
async fn echoes(_ctx: OrchestrationContext, n: u32) -> Result<u32, OrchestrationError> {
    Ok(n)
}

/// Waits (reading `pg_stat_activity`) until a statement is blocked by the backend `blocker`.
/// From a connection of its own: inside a transaction the activity view is read once.
async fn until_blocked_by(url: &str, blocker: i32, what: &str) {
    let (monitor, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connects");
    tokio::spawn(connection);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let rows = monitor
            .query(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE $1 = ANY(pg_blocking_pids(pid)) AND query LIKE $2",
                &[&blocker, &format!("%{what}%")],
            )
            .await
            .expect("reads pg_stat_activity");
        if rows[0].get::<_, i64>(0) > 0 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no statement like {what:?} waited on the side transaction"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A worker's own start into a partition it is claiming (committed while the claim's statement
/// runs, after its snapshot) is run: the claim marks the partition's work unseen again once it
/// is held. Before, the start kept this worker as its origin, was left out of memory as not
/// held, and was never adopted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_committed_while_its_partition_is_being_claimed_is_run() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some((url, schema, _dir)) =
        setup("a_start_committed_while_its_partition_is_being_claimed_is_run")
    else {
        return;
    };
    // A stored start no worker holds yet: the claim updates its row, so a side transaction
    // holding that row makes the claim wait after its snapshot was taken.
    let client = shared_client(&url, &schema).await;
    client
        .start_with_id(echoes, "blocker".to_string(), 1u32)
        .await
        .expect("starts");
    let (side, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connects");
    tokio::spawn(connection);
    side.batch_execute(&format!("SET search_path = {schema}; BEGIN"))
        .await
        .expect("begins");
    let locked = side
        .query(
            "SELECT 1 FROM messages WHERE instance_id = 'blocker' FOR SHARE",
            &[],
        )
        .await
        .expect("locks the start");
    assert_eq!(locked.len(), 1, "the blocker's start is stored");
    let side_pid: i32 = side
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .expect("its pid")
        .get(0);
    // The only worker: it claims all sixteen partitions at its first renewal.
    let runtime = Runtime::builder()
        .postgres(&url)
        .postgres_schema(&schema)
        .postgres_shared()
        .shutdown_timeout(Duration::from_secs(5))
        .start()
        .await
        .expect("a shared runtime starts");
    until_blocked_by(&url, side_pid, "epoch = epoch + 1").await;
    runtime
        .client()
        .start_with_id(echoes, "victim".to_string(), 2u32)
        .await
        .expect("acknowledged");
    side.batch_execute("ROLLBACK").await.expect("rolls back");
    for (id, n) in [("victim", 2u32), ("blocker", 1)] {
        let status = client
            .wait_for_completion(id, Duration::from_secs(30))
            .await
            .expect("completes");
        assert_eq!(status.runtime_status, RuntimeStatus::Completed, "{id}");
        assert_eq!(status.output_as::<u32>().expect("output"), n, "{id}");
    }
    runtime.shutdown().await;
}

/// Shutdown keeps to its timeout while the database hangs the lease loop (its renewal waits on
/// a lock of the leases table): the loop is left to finish on its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_keeps_to_its_timeout_while_a_renewal_hangs() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some((url, schema, _dir)) = setup("shutdown_keeps_to_its_timeout_while_a_renewal_hangs")
    else {
        return;
    };
    create_schema(&url, &schema).await;
    let runtime = Runtime::builder()
        .postgres(&url)
        .postgres_schema(&schema)
        .lease_ttl(Duration::from_millis(300))
        .shutdown_timeout(Duration::from_secs(1))
        .start()
        .await
        .expect("a shared runtime starts");
    until_balanced(&url, &schema, 1).await;
    let (side, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connects");
    tokio::spawn(connection);
    side.batch_execute(&format!(
        "SET search_path = {schema}; BEGIN; LOCK TABLE partitions IN ACCESS EXCLUSIVE MODE"
    ))
    .await
    .expect("locks the leases");
    let side_pid: i32 = side
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .expect("its pid")
        .get(0);
    // The renewal every 100 ms: it waits on the lock.
    until_blocked_by(&url, side_pid, "INSERT INTO workers").await;
    let shutdown = tokio::time::timeout(Duration::from_secs(20), runtime.shutdown()).await;
    side.batch_execute("ROLLBACK").await.expect("rolls back");
    assert!(
        shutdown.is_ok(),
        "shutdown (timeout 1 s) still waited after 20 s for the hung renewal"
    );
}
