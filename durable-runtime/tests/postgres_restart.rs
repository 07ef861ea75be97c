//! A PostgreSQL restart (`pg_ctl restart -m immediate`: the server is killed, then recovers
//! from its WAL) in the middle of a run: the runtime's connections break, its writes fail as
//! transient and are retried, the pool reconnects, and every instance finishes with the right
//! output; every event acknowledged before the crash is recorded, and no activity result is
//! recorded twice. Needs the cluster `.ci/postgres` starts (`DURABLE_TEST_PG_DIR`,
//! `DURABLE_TEST_PG_BIN`); says it was skipped otherwise.
#![cfg(feature = "postgres")]

mod support;

use durable_runtime::prelude::*;
use durable_runtime::{Client, HistoryEvent, InstanceStatus, Runtime};
use std::time::Duration;

const STEPS: u64 = 6;

#[activity]
async fn add(n: u64) -> u64 {
    n + 1
}

#[orchestrator]
async fn counted(ctx: OrchestrationContext, start: u64) -> Result<u64, OrchestrationError> {
    let mut value = start;
    for _ in 0..STEPS {
        value = ctx.call_activity(add, value).await?;
    }
    let bonus: u64 = ctx.wait_for_event("bonus").await?;
    Ok(value + bonus)
}

/// Restarts the cluster the way a crash does, as the user that owns it.
fn crash_restart(dir: &str, bin: &str) {
    let pg_ctl = format!("{bin}/pg_ctl");
    let (data, log) = (format!("{dir}/data"), format!("{dir}/log"));
    let args = ["-D", &data, "-l", &log, "-m", "immediate", "-w", "restart"];
    let status = if running_as_root() {
        std::process::Command::new("runuser")
            .args(["-u", "durable-pg", "--", pg_ctl.as_str()])
            .args(args)
            .stdout(std::process::Stdio::null())
            .status()
    } else {
        std::process::Command::new(&pg_ctl)
            .args(args)
            .stdout(std::process::Stdio::null())
            .status()
    };
    assert!(
        status.expect("pg_ctl runs").success(),
        "pg_ctl restart failed"
    );
}

fn running_as_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|out| out.stdout.starts_with(b"0\n"))
        .unwrap_or(false)
}

/// Status reads retried while the database is down (a client sees transient errors then).
async fn completed(client: &Client, id: &str) -> InstanceStatus {
    let done = async {
        loop {
            match client.wait_for_completion(id, support::WAIT).await {
                Ok(status) => return status,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    };
    tokio::time::timeout(support::WAIT * 2, done)
        .await
        .expect("finishes after the restart")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_crash_mid_run_loses_nothing_acknowledged() {
    let (Ok(url), Ok(dir), Ok(bin)) = (
        std::env::var("DURABLE_TEST_POSTGRES_URL"),
        std::env::var("DURABLE_TEST_PG_DIR"),
        std::env::var("DURABLE_TEST_PG_BIN"),
    ) else {
        eprintln!(
            "SKIPPED a_database_crash_mid_run_loses_nothing_acknowledged: needs the cluster of \
             .ci/postgres (DURABLE_TEST_POSTGRES_URL, DURABLE_TEST_PG_DIR, DURABLE_TEST_PG_BIN)"
        );
        return;
    };
    let runtime = Runtime::builder()
        .postgres(&url)
        .postgres_schema(support::unique_schema())
        .write_retry_interval(Duration::from_millis(100))
        .start()
        .await
        .expect("starts");
    let client = runtime.client();
    let mut ids = Vec::new();
    for n in 0..30u64 {
        ids.push(client.start(counted, n * 100).await.expect("started"));
    }
    // Half the events are acknowledged before the crash.
    for id in &ids[..15] {
        client
            .raise_event(id, "bonus", 7u64)
            .await
            .expect("acknowledged");
    }
    // Crash once some of the work is recorded and some is not.
    loop {
        let history = client
            .get_status_with_history(&ids[0])
            .await
            .expect("reads");
        let recorded = history
            .and_then(|status| status.history)
            .map(|h| {
                h.iter()
                    .filter(|r| matches!(r.event, HistoryEvent::TaskCompleted { .. }))
                    .count()
            })
            .unwrap_or(0);
        if recorded >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::task::spawn_blocking(move || crash_restart(&dir, &bin))
        .await
        .expect("restarts");
    // The rest after it, retried until the database takes them.
    for id in &ids[15..] {
        loop {
            match client.raise_event(id, "bonus", 7u64).await {
                Ok(()) => break,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }
    for (n, id) in ids.iter().enumerate() {
        let status = completed(&client, id).await;
        assert_eq!(
            status.runtime_status,
            RuntimeStatus::Completed,
            "{status:?}"
        );
        assert_eq!(
            status.output_as::<u64>().expect("output"),
            n as u64 * 100 + STEPS + 7
        );
        let history = client
            .get_status_with_history(id)
            .await
            .expect("reads")
            .and_then(|status| status.history)
            .expect("history");
        let results = history
            .iter()
            .filter(|r| matches!(r.event, HistoryEvent::TaskCompleted { .. }))
            .count();
        assert_eq!(
            results as u64, STEPS,
            "each activity result recorded once in {id}"
        );
        let events = history
            .iter()
            .filter(|r| matches!(r.event, HistoryEvent::EventRaised { .. }))
            .count();
        assert_eq!(events, 1, "the acknowledged event recorded once in {id}");
    }
    runtime.shutdown().await;
}
