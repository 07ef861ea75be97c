//! `kill -9` of a worker process while parents fan out to sub-orchestrations whose activities
//! fail once and are retried: after restarts every parent completes with the right output, and
//! no child is created twice (checked in the store).
//!
//! The worker is this same test binary, re-run with `--ignored --exact crash_worker_process`.
//! It prints a line per activity execution; the parent kills it after a random number of them.

mod support;

use durable_runtime::prelude::*;
use std::collections::BTreeSet;
use support::TestStore;

const PARENTS: u32 = 2;
const CHILDREN: u32 = 50;
/// Activities per child, each failing its first attempt.
const STEPS: u32 = 2;
const KILLS: usize = 6;

/// Fails its first attempt: in a child, step `s`'s first attempt is task `3 * s` (attempt,
/// backoff timer, attempt), whichever process runs it.
#[activity]
async fn flaky_step(
    ctx: ActivityContext,
    parent: u32,
    child: u32,
    step: u32,
) -> Result<String, ActivityError> {
    println!("ran {} {}", ctx.instance_id(), ctx.task_id());
    if ctx.task_id() == u64::from(3 * step) {
        return Err(ActivityError::new("first attempts fail"));
    }
    Ok(format!("{parent}.{child}.{step}"))
}

#[orchestrator]
async fn child(
    ctx: OrchestrationContext,
    parent: u32,
    child: u32,
) -> Result<String, OrchestrationError> {
    let policy = RetryPolicy::new(3, Duration::from_millis(30));
    let mut parts = Vec::new();
    for step in 0..STEPS {
        parts.push(
            ctx.call_activity_with_retry(&policy, flaky_step, (parent, child, step))
                .await?,
        );
    }
    Ok(parts.join("+"))
}

#[orchestrator]
async fn fan_out(
    ctx: OrchestrationContext,
    parent: u32,
) -> Result<Vec<String>, OrchestrationError> {
    let policy = RetryPolicy::new(2, Duration::from_millis(30));
    let children =
        (0..CHILDREN).map(|c| ctx.call_sub_orchestrator_with_retry(&policy, child, (parent, c)));
    let mut out = Vec::new();
    for result in ctx.when_all(children).await {
        out.push(result?);
    }
    Ok(out)
}

fn expected_output(parent: u32) -> Vec<String> {
    (0..CHILDREN)
        .map(|c| {
            (0..STEPS)
                .map(|s| format!("{parent}.{c}.{s}"))
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect()
}

fn parent_id(parent: u32) -> String {
    format!("fan-{parent}")
}

/// The worker process: start every parent (ids are fixed, so restarts skip existing ones), then
/// wait for all of them.
#[test]
#[ignore = "run as a child process by kill_9_during_sub_orchestrations_creates_no_child_twice"]
fn crash_worker_process() {
    let Ok(store) = std::env::var("DURABLE_KSUB_STORE") else {
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
        for p in 0..PARENTS {
            match client.start_with_id(fan_out, parent_id(p), p).await {
                Ok(_) | Err(durable_runtime::Error::InstanceAlreadyExists(_)) => {}
                Err(err) => panic!("start failed: {err}"),
            }
        }
        for p in 0..PARENTS {
            let status = client
                .wait_for_completion(&parent_id(p), Duration::from_secs(120))
                .await
                .expect("completes");
            assert_eq!(
                status.runtime_status,
                RuntimeStatus::Completed,
                "{status:?}"
            );
        }
        println!("all done");
        runtime.shutdown().await;
    });
}

#[test]
fn kill_9_during_sub_orchestrations_creates_no_child_twice() {
    let store = TestStore::new();
    support::kill_repeatedly(
        "crash_worker_process",
        &[("DURABLE_KSUB_STORE", store.path().as_os_str())],
        KILLS,
        (15, 70),
    );

    let conn = durable_runtime::store::sqlite::open_read_only(store.path()).expect("open");
    let history_of = |id: &str| -> Vec<durable_runtime::HistoryEvent> {
        let mut stmt = conn
            .prepare("SELECT event FROM history WHERE instance_id = ?1 ORDER BY seq")
            .expect("query");
        stmt.query_map([id], |row| row.get::<_, String>(0))
            .expect("rows")
            .map(|json| serde_json::from_str(&json.expect("row")).expect("event decodes"))
            .collect()
    };
    let count = |events: &[durable_runtime::HistoryEvent], event_type: &str| {
        events
            .iter()
            .filter(|e| e.event_type() == event_type)
            .count()
    };
    for p in 0..PARENTS {
        let id = parent_id(p);
        let (status, output): (String, Option<String>) = conn
            .query_row(
                "SELECT status, output FROM instance_rows WHERE instance_id = ?1",
                [&id],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .expect("the parent exists");
        assert_eq!(status, "Completed", "{id}");
        let output: Vec<String> = serde_json::from_str(&output.expect("output")).expect("decodes");
        assert_eq!(output, expected_output(p), "{id}");

        // Each child was created once: once in the parent's history, once in the store.
        let history = history_of(&id);
        let created: Vec<String> = history
            .iter()
            .filter_map(|e| match e {
                durable_runtime::HistoryEvent::SubOrchestrationInstanceCreated(created) => {
                    Some(created.instance_id.clone())
                }
                _ => None,
            })
            .collect();
        assert_eq!(created.len(), CHILDREN as usize, "{id}: {created:?}");
        let distinct: BTreeSet<String> = created.iter().cloned().collect();
        assert_eq!(distinct.len(), created.len(), "{id}");
        let mut stmt = conn
            .prepare("SELECT instance_id, status FROM instances WHERE parent_instance_id = ?1")
            .expect("query");
        let rows: Vec<(String, String)> = stmt
            .query_map([&id], |row| Ok((row.get(0)?, row.get(1)?)))
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("decode");
        let linked: BTreeSet<String> = rows.iter().map(|(c, _)| c.clone()).collect();
        assert_eq!(
            linked, distinct,
            "{id}: the store holds exactly the recorded children"
        );
        for (child, status) in &rows {
            assert_eq!(status, "Completed", "{child}");
            let events = history_of(child);
            assert_eq!(count(&events, "ExecutionStarted"), 1, "{child}");
            // Every first attempt failed and was retried once, after one backoff.
            assert_eq!(
                count(&events, "TaskScheduled"),
                2 * STEPS as usize,
                "{child}"
            );
            assert_eq!(count(&events, "TaskFailed"), STEPS as usize, "{child}");
            assert_eq!(count(&events, "TimerCreated"), STEPS as usize, "{child}");
        }
        assert_eq!(
            count(&history, "SubOrchestrationInstanceCompleted"),
            CHILDREN as usize
        );
    }
    let instances: i64 = conn
        .query_row("SELECT COUNT(*) FROM instances", [], |r| r.get(0))
        .expect("count");
    assert_eq!(instances, i64::from(PARENTS * (CHILDREN + 1)));
    let leftover: i64 = conn
        .query_row(
            "SELECT (SELECT COUNT(*) FROM activities) + (SELECT COUNT(*) FROM messages)
                  + (SELECT COUNT(*) FROM timers)",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(leftover, 0);
    println!("{KILLS} kills");
}
