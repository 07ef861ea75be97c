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

mod support;

use durable_runtime::prelude::*;
use durable_runtime::{Client, HistoryEvent};
use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};

const STEPS: u32 = 5;

/// One test at a time: each runs several processes on a machine that may have two cores.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[activity]
async fn shared_step(
    ctx: ActivityContext,
    instance: u32,
    step: u32,
) -> Result<String, ActivityError> {
    let log_path =
        std::env::var("DURABLE_SH_LOG").map_err(|_| ActivityError::new("no log path"))?;
    let line = format!(
        "{} {} {}\n",
        ctx.instance_id(),
        ctx.task_id(),
        std::process::id()
    );
    // One write(2) per line on an O_APPEND file: lines never interleave, and a killed process
    // loses nothing it wrote.
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)?;
    log.write_all(line.as_bytes())?;
    println!("ran {} {}", ctx.instance_id(), ctx.task_id());
    // Work that takes a while (the stall test wants activities in flight).
    if let Some(ms) = std::env::var("DURABLE_SH_ACTIVITY_MS")
        .ok()
        .and_then(|ms| ms.parse().ok())
    {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    Ok(format!("{instance}.{step}"))
}

#[orchestrator]
async fn shared_steps(
    ctx: OrchestrationContext,
    instance: u32,
) -> Result<Vec<String>, OrchestrationError> {
    let mut out = Vec::new();
    for step in 0..STEPS {
        out.push(ctx.call_activity(shared_step, (instance, step)).await?);
    }
    Ok(out)
}

/// Waits for an event, then runs one activity: driven by a client of another process.
#[orchestrator]
async fn waits_for_go(
    ctx: OrchestrationContext,
    instance: u32,
) -> Result<String, OrchestrationError> {
    let go: u32 = ctx.wait_for_event("go").await?;
    let done = ctx.call_activity(shared_step, (instance, go)).await?;
    Ok(done)
}

fn expected_output(instance: u32) -> Vec<String> {
    (0..STEPS)
        .map(|step| format!("{instance}.{step}"))
        .collect()
}

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

/// A shared runtime whose steps each wait `delay` before they reach the store: a worker that
/// always has steps on their way to a commit (what a stall must catch).
async fn slow_steps_builder(
    url: &str,
    schema: &str,
    lease_ttl: Duration,
    delay: Duration,
) -> durable_runtime::RuntimeBuilder {
    use durable_runtime::store::postgres::{PostgresStore, SharedOptions};
    use support::hooked::{BoxFut, HookedStore, Phase};
    let options = SharedOptions {
        lease_ttl,
        worker_id: None,
    };
    let store = PostgresStore::connect_shared(url, schema, options)
        .await
        .expect("store opens");
    let hook = Arc::new(
        move |phase: Phase, write: &durable_runtime::store::Write| -> BoxFut {
            let step = matches!(write, durable_runtime::store::Write::Step(_));
            Box::pin(async move {
                if step && phase == Phase::Before {
                    tokio::time::sleep(delay).await;
                }
                None
            })
        },
    );
    let hooked = HookedStore {
        inner: Arc::new(store),
        hook,
        page_delay: Duration::ZERO,
        pages_open: None,
        leases: None,
    };
    Runtime::builder().store(Arc::new(hooked))
}

/// A worker process and what it printed so far.
struct Worker {
    child: Child,
    stdin: Option<ChildStdin>,
    ran: Arc<Mutex<u64>>,
    lines: std::thread::JoinHandle<Vec<String>>,
}

impl Worker {
    fn spawn(
        url: &str,
        schema: &str,
        log: &std::path::Path,
        ttl_ms: u64,
        activity_ms: u64,
        step_delay_ms: Option<u64>,
    ) -> Worker {
        let exe = std::env::current_exe().expect("test binary path");
        let mut child = Command::new(exe)
            .args([
                "--ignored",
                "--exact",
                "shared_worker_process",
                "--nocapture",
                "--test-threads=1",
                "--quiet",
            ])
            .env("DURABLE_SH_URL", url)
            .env("DURABLE_SH_SCHEMA", schema)
            .env("DURABLE_SH_LOG", log)
            .env("DURABLE_SH_TTL_MS", ttl_ms.to_string())
            .env("DURABLE_SH_ACTIVITY_MS", activity_ms.to_string())
            .env(
                "DURABLE_SH_STEP_DELAY_MS",
                step_delay_ms.map(|ms| ms.to_string()).unwrap_or_default(),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn worker process");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped stdout");
        let ran = Arc::new(Mutex::new(0));
        let counter = ran.clone();
        let lines = std::thread::spawn(move || {
            let mut lines = Vec::new();
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.starts_with("ran ") {
                    *counter.lock().expect("counter") += 1;
                }
                lines.push(line);
            }
            lines
        });
        Worker {
            child,
            stdin,
            ran,
            lines,
        }
    }

    fn ran(&self) -> u64 {
        *self.ran.lock().expect("counter")
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill {signal} failed");
    }

    /// Closes its stdin (it shuts down) and returns what it printed.
    fn stop(mut self) -> Vec<String> {
        drop(self.stdin.take());
        let status = self.child.wait().expect("reap worker");
        let lines = self.lines.join().expect("reader thread");
        assert!(
            status.success(),
            "worker failed: {status}; printed {lines:?}"
        );
        assert!(lines.iter().any(|l| l == "all done"), "{lines:?}");
        lines
    }

    /// Kills it with SIGKILL.
    fn kill(mut self) {
        self.child.kill().expect("kill -9");
        let _ = self.child.wait();
        let _ = self.lines.join();
    }
}

/// Runs `sql` on the test's schema, on a connection of its own.
async fn query(url: &str, schema: &str, sql: &str) -> Vec<tokio_postgres::Row> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connects");
    tokio::spawn(connection);
    client
        .batch_execute(&format!("SET search_path = {schema}"))
        .await
        .expect("sets the schema");
    client.query(sql, &[]).await.expect("queries")
}

/// Waits (reading the leases table) until `owners` distinct live workers hold the partitions
/// between them, none more than its fair share.
async fn until_balanced(url: &str, schema: &str, owners: i64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let rows = query(
            url,
            schema,
            "SELECT count(DISTINCT owner), coalesce(max(n), 0), coalesce(sum(n), 0)::bigint FROM (
                 SELECT owner, count(*) AS n FROM partitions
                 WHERE owner IS NOT NULL AND expires_at > now() GROUP BY owner) held",
        )
        .await;
        let (count, most, total): (i64, i64, i64) =
            (rows[0].get(0), rows[0].get(1), rows[0].get(2));
        if count == owners && total == 16 && most <= (16 + owners - 1) / owners {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the workers did not balance the leases: {count} owners, {total} partitions held"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sum of the partitions' epochs: it moves whenever a lease changes hands.
async fn epochs(url: &str, schema: &str) -> i64 {
    query(url, schema, "SELECT sum(epoch)::bigint FROM partitions").await[0].get(0)
}

async fn shared_client(url: &str, schema: &str) -> Client {
    Runtime::builder()
        .postgres(url)
        .postgres_schema(schema)
        .postgres_shared()
        .open_client()
        .await
        .expect("a client on the shared schema")
}

fn instance_id(i: u32) -> String {
    format!("sh-{i:03}")
}

async fn start_all(client: &Client, instances: u32) {
    for i in 0..instances {
        client
            .start_with_id(shared_steps, instance_id(i), i)
            .await
            .expect("starts");
    }
}

/// Waits for every instance and checks its output and history (see [`check_all`]), reading
/// again while the database is down.
async fn check_all_retrying(client: &Client, instances: u32) {
    for i in 0..instances {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        while let Err(err) = client
            .wait_for_completion(&instance_id(i), Duration::from_secs(120))
            .await
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{}: {err}",
                instance_id(i)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    check_all(client, instances).await;
}

/// Waits for every instance and checks its output and history: one `TaskScheduled` and one
/// result per activity, history positions without gap.
async fn check_all(client: &Client, instances: u32) {
    for i in 0..instances {
        let status = client
            .wait_for_completion(&instance_id(i), Duration::from_secs(120))
            .await
            .expect("completes");
        assert_eq!(
            status.runtime_status,
            RuntimeStatus::Completed,
            "{}",
            instance_id(i)
        );
        let output: Vec<String> = status.output_as().expect("output decodes");
        assert_eq!(output, expected_output(i));
        let history = support::history(client, &instance_id(i)).await;
        for (n, record) in history.iter().enumerate() {
            assert_eq!(
                record.seq,
                n as u64,
                "a gap in the history of {}",
                instance_id(i)
            );
        }
        let mut scheduled = HashSet::new();
        let mut results = HashSet::new();
        for record in &history {
            match &record.event {
                HistoryEvent::TaskScheduled { task_id, .. } => {
                    assert!(scheduled.insert(*task_id), "task {task_id} scheduled twice")
                }
                HistoryEvent::TaskCompleted { task_id, .. } => {
                    assert!(results.insert(*task_id), "task {task_id} recorded twice")
                }
                HistoryEvent::TaskFailed { task_id, .. } => panic!("task {task_id} failed"),
                _ => {}
            }
        }
        assert_eq!(results.len(), STEPS as usize);
    }
}

/// Executions per (instance, task id): the pids that ran it, in order.
fn executions(log: &std::path::Path) -> BTreeMap<(String, u64), Vec<u32>> {
    let mut runs: BTreeMap<(String, u64), Vec<u32>> = BTreeMap::new();
    for line in std::fs::read_to_string(log).unwrap_or_default().lines() {
        let parts: Vec<&str> = line.split(' ').collect();
        let [id, task, pid] = parts[..] else {
            panic!("malformed log line {line:?}");
        };
        runs.entry((id.to_string(), task.parse().expect("task id")))
            .or_default()
            .push(pid.parse().expect("pid"));
    }
    runs
}

/// Activities whose work item is still in the store (their completion is not recorded).
async fn pending_activities(url: &str, schema: &str) -> HashSet<(String, u64)> {
    query(url, schema, "SELECT instance_id, task_id FROM activities")
        .await
        .iter()
        .map(|row| (row.get::<_, String>(0), row.get::<_, i64>(1) as u64))
        .collect()
}

fn setup(test: &str) -> Option<(String, String, tempfile::TempDir)> {
    let Ok(url) = std::env::var("DURABLE_TEST_POSTGRES_URL") else {
        eprintln!("SKIPPED {test}: DURABLE_TEST_POSTGRES_URL is not set");
        return None;
    };
    Some((
        url,
        support::unique_schema(),
        tempfile::tempdir().expect("temp dir"),
    ))
}

/// Creates the schema before the workers race to (they would migrate it once anyway).
async fn create_schema(url: &str, schema: &str) {
    drop(shared_client(url, schema).await);
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

/// Restarts the cluster the way a crash does, as the user that owns it.
fn crash_restart(dir: &str, bin: &str) {
    let pg_ctl = format!("{bin}/pg_ctl");
    let (data, log) = (format!("{dir}/data"), format!("{dir}/log"));
    let args = ["-D", &data, "-l", &log, "-m", "immediate", "-w", "restart"];
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|out| out.stdout.starts_with(b"0\n"))
        .unwrap_or(false);
    let status = if root {
        Command::new("runuser")
            .args(["-u", "durable-pg", "--", pg_ctl.as_str()])
            .args(args)
            .stdout(Stdio::null())
            .status()
    } else {
        Command::new(&pg_ctl)
            .args(args)
            .stdout(Stdio::null())
            .status()
    };
    assert!(
        status.expect("pg_ctl runs").success(),
        "pg_ctl restart failed"
    );
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
