//! R1 on PostgreSQL (feature `postgres`, `DURABLE_TEST_POSTGRES_URL`): `kill -9` a real worker
//! process on a PostgreSQL store at random moments while it runs a hundred 5-step sequences;
//! after restarts every instance completes with the right output, the queues are empty, and no
//! activity whose completion was recorded ever runs again. (`kill_restart.rs` is the same on
//! SQLite.)
//!
//! The worker is this same test binary, re-run with `--ignored --exact crash_worker_process`.
//! It prints a line per activity execution; the parent kills it after a random number of them,
//! so kills land in the middle of real work without timing guesses.
#![cfg(feature = "postgres")]

mod support;

use durable_runtime::prelude::*;
use std::collections::{BTreeMap, BTreeSet, HashSet};

const INSTANCES: u32 = 100;
const STEPS: u32 = 5;
const KILLS: usize = 8;

#[activity]
async fn logged_step(
    ctx: ActivityContext,
    instance: u32,
    step: u32,
) -> Result<String, ActivityError> {
    support::log_activity_run("DURABLE_R1_LOG", &ctx)?;
    Ok(format!("{instance}.{step}"))
}

#[orchestrator]
async fn five_steps(
    ctx: OrchestrationContext,
    instance: u32,
) -> Result<Vec<String>, OrchestrationError> {
    let mut out = Vec::new();
    for step in 0..STEPS {
        out.push(ctx.call_activity(logged_step, (instance, step)).await?);
    }
    Ok(out)
}

fn expected_output(instance: u32) -> Vec<String> {
    (0..STEPS)
        .map(|step| format!("{instance}.{step}"))
        .collect()
}

/// The worker process: start every instance (ids are fixed, so restarts skip existing ones),
/// then wait for all of them.
#[test]
#[ignore = "run as a child process by kill_9_at_random_moments_loses_nothing"]
fn crash_worker_process() {
    let (Ok(url), Ok(schema)) = (
        std::env::var("DURABLE_R1_PG_URL"),
        std::env::var("DURABLE_R1_PG_SCHEMA"),
    ) else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().expect("tokio");
    rt.block_on(async {
        // The killed incarnation's schema lock goes when the server sees its connection close.
        let started = async {
            loop {
                match Runtime::builder()
                    .postgres(&url)
                    .postgres_schema(&schema)
                    .start()
                    .await
                {
                    Ok(runtime) => return runtime,
                    Err(durable_runtime::Error::Store(
                        durable_runtime::store::StoreError::Locked { .. },
                    )) => tokio::time::sleep(Duration::from_millis(20)).await,
                    Err(err) => panic!("runtime: {err}"),
                }
            }
        };
        let runtime = tokio::time::timeout(Duration::from_secs(30), started)
            .await
            .expect("the killed incarnation's lock is released");
        let client = runtime.client();
        for i in 0..INSTANCES {
            match client
                .start_with_id(five_steps, format!("r1-{i:03}"), i)
                .await
            {
                Ok(_) | Err(durable_runtime::Error::InstanceAlreadyExists(_)) => {}
                Err(err) => panic!("start failed: {err}"),
            }
        }
        for i in 0..INSTANCES {
            let status = client
                .wait_for_completion(&format!("r1-{i:03}"), Duration::from_secs(120))
                .await
                .expect("completes");
            assert_eq!(status.runtime_status, RuntimeStatus::Completed);
        }
        println!("all done");
        runtime.shutdown().await;
    });
}

/// Runs `sql` on the test's schema, on a connection of its own; every row.
fn query(url: &str, schema: &str, sql: &str) -> Vec<tokio_postgres::Row> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio");
    rt.block_on(async {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .expect("connects");
        tokio::spawn(connection);
        client
            .batch_execute(&format!("SET search_path = {schema}"))
            .await
            .expect("sets the schema");
        client.query(sql, &[]).await.expect("queries")
    })
}

/// Activities whose work item is still in the store: the only ones allowed to run again.
fn pending_activities(url: &str, schema: &str) -> HashSet<(String, u64)> {
    query(url, schema, "SELECT instance_id, task_id FROM activities")
        .iter()
        .map(|row| (row.get::<_, String>(0), row.get::<_, i64>(1) as u64))
        .collect()
}

#[test]
fn kill_9_at_random_moments_loses_nothing() {
    let Ok(url) = std::env::var("DURABLE_TEST_POSTGRES_URL") else {
        eprintln!(
            "SKIPPED kill_9_at_random_moments_loses_nothing: DURABLE_TEST_POSTGRES_URL is not set"
        );
        return;
    };
    let schema = support::unique_schema();
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("executions.log");
    let mut rng = support::Lcg::from_clock();
    // Executions per incarnation, and the activities pending at the kill that ended it.
    let mut incarnations: Vec<(u32, HashSet<(String, u64)>)> = Vec::new();
    let mut kills = 0;
    let mut finished = false;
    for incarnation in 0..KILLS + 1 {
        let mut child = support::spawn_worker(
            "crash_worker_process",
            &[
                ("DURABLE_R1_PG_URL", std::ffi::OsStr::new(&url)),
                ("DURABLE_R1_PG_SCHEMA", std::ffi::OsStr::new(&schema)),
                ("DURABLE_R1_LOG", log.as_os_str()),
            ],
        );
        let pid = child.id();
        let kill_after = if incarnation < KILLS {
            Some(rng.next_in(10, 70))
        } else {
            None
        };
        let support::Incarnation {
            ran,
            killed,
            finished: done,
            exit,
        } = support::watch_worker(&mut child, kill_after);
        finished |= done;
        if killed {
            kills += 1;
            println!("incarnation {incarnation} (pid {pid}): killed after {ran} executions");
            incarnations.push((pid, pending_activities(&url, &schema)));
        } else {
            assert!(exit.success(), "worker failed: {exit}");
            incarnations.push((pid, HashSet::new()));
            if finished {
                break;
            }
        }
    }
    assert!(finished, "the last incarnation must finish every instance");
    assert!(
        kills >= KILLS,
        "only {kills} kills happened; the test proves little"
    );

    // Every instance completed with the right output; the queues are empty.
    for i in 0..INSTANCES {
        let rows = query(
            &url,
            &schema,
            &format!("SELECT status, output FROM instance_rows WHERE instance_id = 'r1-{i:03}'"),
        );
        let row = rows.first().expect("instance exists");
        let (status, output): (String, Option<String>) = (row.get(0), row.get(1));
        assert_eq!(status, "Completed", "r1-{i:03}");
        let output: Vec<String> = serde_json::from_str(&output.expect("output")).expect("decodes");
        assert_eq!(output, expected_output(i));
    }
    let leftover: i64 = query(
        &url,
        &schema,
        "SELECT (SELECT count(*) FROM activities) + (SELECT count(*) FROM messages)",
    )[0]
    .get(0);
    assert_eq!(leftover, 0);

    // No activity ran again after its completion was recorded: a re-execution in incarnation
    // k+1 must have been pending (not recorded) when incarnation k was killed.
    let pid_incarnation: BTreeMap<u32, usize> = incarnations
        .iter()
        .enumerate()
        .map(|(i, (pid, _))| (*pid, i))
        .collect();
    let mut executions: BTreeMap<(String, u64), Vec<usize>> = BTreeMap::new();
    for line in std::fs::read_to_string(&log).expect("read log").lines() {
        let mut parts = line.split(' ');
        let (Some(id), Some(task), Some(pid)) = (parts.next(), parts.next(), parts.next()) else {
            panic!("malformed log line {line:?}");
        };
        let pid: u32 = pid.parse().expect("pid");
        let incarnation = pid_incarnation[&pid];
        executions
            .entry((id.to_string(), task.parse().expect("task id")))
            .or_default()
            .push(incarnation);
    }
    assert_eq!(
        executions.len(),
        (INSTANCES * STEPS) as usize,
        "every activity ran"
    );
    let mut reruns = 0;
    for (key, runs) in &executions {
        let distinct: BTreeSet<usize> = runs.iter().copied().collect();
        assert_eq!(
            distinct.len(),
            runs.len(),
            "{key:?} ran twice in one process: {runs:?}"
        );
        for pair in runs.windows(2) {
            let (earlier, later) = (pair[0], pair[1]);
            // Everything between the two runs was killed with the activity still pending.
            for (killed, incarnation) in incarnations.iter().enumerate().take(later).skip(earlier) {
                assert!(
                    incarnation.1.contains(key),
                    "{key:?} ran in incarnation {later} although its completion was recorded before incarnation {killed} was killed"
                );
            }
            reruns += 1;
        }
    }
    println!("{kills} kills, {reruns} activities re-ran because they were in flight at a kill");
}
