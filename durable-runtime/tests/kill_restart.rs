//! R1: `kill -9` a real worker process at random moments while it runs hundreds of 5-step
//! sequences; after restarts every instance completes with the right output, and no activity
//! whose completion was recorded ever runs again.
//!
//! The worker is this same test binary, re-run with `--ignored --exact crash_worker_process`.
//! It prints a line per activity execution; the parent kills it after a random number of them,
//! so kills land in the middle of real work without timing guesses.

mod support;

use durable_runtime::prelude::*;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;
use support::TestStore;

const INSTANCES: u32 = 300;
const STEPS: u32 = 5;
const KILLS: usize = 20;

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
    let Ok(store) = std::env::var("DURABLE_R1_STORE") else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().expect("tokio");
    rt.block_on(async {
        let runtime = Runtime::builder()
            .sqlite(store)
            .start()
            .await
            .expect("runtime");
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

/// Activities whose work item is still in the store: the only ones allowed to run again.
fn pending_activities(store: &Path) -> HashSet<(String, u64)> {
    let conn = durable_runtime::store::sqlite::open_read_only(store).expect("open store");
    let mut stmt = conn
        .prepare("SELECT instance_id, task_id FROM activities")
        .expect("query");
    stmt.query_map([], |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)? as u64))
    })
    .expect("rows")
    .collect::<Result<_, _>>()
    .expect("decode")
}

#[test]
fn kill_9_at_random_moments_loses_nothing() {
    let store = TestStore::new();
    let log = store.dir.path().join("executions.log");
    let mut rng = support::Lcg::from_clock();
    // Executions per incarnation, and the activities pending at the kill that ended it.
    let mut incarnations: Vec<(u32, HashSet<(String, u64)>)> = Vec::new();
    let mut kills = 0;
    let mut finished = false;
    for incarnation in 0..KILLS + 1 {
        let mut child = support::spawn_worker(
            "crash_worker_process",
            &[
                ("DURABLE_R1_STORE", store.path().as_os_str()),
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
            incarnations.push((pid, pending_activities(&store.path())));
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
    let conn = durable_runtime::store::sqlite::open_read_only(store.path()).expect("open");
    for i in 0..INSTANCES {
        let (status, output): (String, Option<String>) = conn
            .query_row(
                "SELECT status, output FROM instance_rows WHERE instance_id = ?1",
                [format!("r1-{i:03}")],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .expect("instance exists");
        assert_eq!(status, "Completed", "r1-{i:03}");
        let output: Vec<String> = serde_json::from_str(&output.expect("output")).expect("decodes");
        assert_eq!(output, expected_output(i));
    }
    let leftover: i64 = conn
        .query_row(
            "SELECT (SELECT count(*) FROM activities) + (SELECT count(*) FROM messages)",
            [],
            |r| r.get(0),
        )
        .expect("count");
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
