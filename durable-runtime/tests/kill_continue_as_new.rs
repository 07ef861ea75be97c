//! `kill -9` of a worker process running eternal counters that continue as new after every
//! activity: after several kills every counter completes with the right value, only its last
//! generation's history is in the store, and nothing of an old generation stays queued.
//!
//! The worker is this same test binary, re-run with `--ignored --exact crash_worker_process`.
//! It prints a line per activity execution; the parent kills it after a random number of them.

mod support;

use durable_runtime::prelude::*;
use support::TestStore;

const COUNTERS: u32 = 3;
const TARGET: u64 = 150;
const KILLS: usize = 5;

#[activity]
async fn tick(ctx: ActivityContext, n: u64) -> u64 {
    println!("ran {} {n}", ctx.instance_id());
    n + 1
}

/// Counts to `target`, one activity and one generation per unit; keeps a custom status.
#[orchestrator]
async fn eternal_counter(
    ctx: OrchestrationContext,
    n: u64,
    target: u64,
) -> Result<u64, OrchestrationError> {
    if n == target {
        return Ok(n);
    }
    let next = ctx.call_activity(tick, n).await?;
    ctx.set_custom_status(next)?;
    ctx.continue_as_new(eternal_counter, (next, target)).await
}

fn counter_id(c: u32) -> String {
    format!("counter-{c}")
}

/// The worker process: start every counter (ids are fixed, so restarts skip existing ones),
/// then wait for all of them.
#[test]
#[ignore = "run as a child process by kill_9_during_continue_as_new_loses_no_generation"]
fn crash_worker_process() {
    let Ok(store) = std::env::var("DURABLE_KCAN_STORE") else {
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
        for c in 0..COUNTERS {
            match client
                .start_with_id(eternal_counter, counter_id(c), (0, TARGET))
                .await
            {
                Ok(_) | Err(durable_runtime::Error::InstanceAlreadyExists(_)) => {}
                Err(err) => panic!("start failed: {err}"),
            }
        }
        for c in 0..COUNTERS {
            let status = client
                .wait_for_completion(&counter_id(c), Duration::from_secs(120))
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
fn kill_9_during_continue_as_new_loses_no_generation() {
    let store = TestStore::new();
    // Fewer lines than the counters need in all, so every kill lands mid-way.
    support::kill_repeatedly(
        "crash_worker_process",
        &[("DURABLE_KCAN_STORE", store.path().as_os_str())],
        KILLS,
        (10, 60),
    );

    let conn = durable_runtime::store::sqlite::open_read_only(store.path()).expect("open");
    for c in 0..COUNTERS {
        let id = counter_id(c);
        let (status, input, output, custom): (String, String, Option<String>, Option<String>) =
            conn.query_row(
                "SELECT status, input, output, custom_status FROM instance_rows
                 WHERE instance_id = ?1",
                [&id],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
            )
            .expect("the counter exists");
        assert_eq!(status, "Completed", "{id}");
        assert_eq!(output.as_deref(), Some(TARGET.to_string().as_str()), "{id}");
        assert_eq!(input, format!("[{TARGET},{TARGET}]"), "{id}");
        assert_eq!(custom.as_deref(), Some(TARGET.to_string().as_str()), "{id}");
        let rows: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM history WHERE instance_id = ?1",
                [&id],
                |row| row.get(0),
            )
            .expect("counts");
        assert!(
            rows <= 4,
            "{id}: only the last generation's history, got {rows} rows"
        );
    }
    let leftovers: i64 = conn
        .query_row(
            "SELECT (SELECT COUNT(*) FROM activities) + (SELECT COUNT(*) FROM timers)
                  + (SELECT COUNT(*) FROM messages)",
            [],
            |row| row.get(0),
        )
        .expect("counts");
    assert_eq!(leftovers, 0, "no work of any generation stays behind");
}
