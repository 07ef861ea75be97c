//! Poison work on the embedded store: an orchestration step or an activity that stops the
//! process every time it runs (here, `std::process::abort`) is retried `poison_after` times
//! after restarts, then set aside, with the reason recorded: the instance fails, or the
//! activity's task fails and its orchestration goes on. A worker process is started again
//! each time it dies, as a supervisor would; without the limit it would die forever.
//! (That a clean stop counts nothing is tested on the store: `store::sqlite::tests_open`.)

mod support;

use durable_runtime::prelude::*;
use std::ffi::OsStr;

const RETRIES: u32 = 2;

#[activity]
async fn abort_the_process(_: ()) -> u32 {
    std::process::abort()
}

#[orchestrator]
async fn calls_an_aborting_activity(
    ctx: OrchestrationContext,
) -> Result<String, OrchestrationError> {
    match ctx.call_activity(abort_the_process, ()).await {
        Ok(n) => Ok(format!("returned {n}")),
        Err(failed) => Ok(format!("task failed: {}", failed.message)),
    }
}

#[orchestrator]
async fn aborts_in_its_step(_ctx: OrchestrationContext) -> Result<(), OrchestrationError> {
    stop_the_process()
}

/// What a stack overflow or a crash in native code does to an orchestrator's process (the
/// determinism check refuses `abort` written in the orchestrator itself; a helper hides it,
/// as a bug deep in a library would be hidden).
fn stop_the_process() -> ! {
    std::process::abort()
}

/// Starts the instance named by `DURABLE_POISON_CASE` (once), waits for it and prints its
/// outcome; dies on the way while the poison runs.
#[test]
#[ignore = "run as a child process by the tests below"]
fn poison_worker_process() {
    let (Ok(store), Ok(case)) = (
        std::env::var("DURABLE_POISON_STORE"),
        std::env::var("DURABLE_POISON_CASE"),
    ) else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().expect("tokio");
    rt.block_on(async {
        let runtime = Runtime::builder()
            .sqlite(store)
            .poison_after(RETRIES)
            .start()
            .await
            .expect("runtime");
        let client = runtime.client();
        let started = match case.as_str() {
            "activity" => {
                client
                    .start_with_id(calls_an_aborting_activity, "poison", ())
                    .await
            }
            _ => client.start_with_id(aborts_in_its_step, "poison", ()).await,
        };
        match started {
            Ok(_) | Err(durable_runtime::Error::InstanceAlreadyExists(_)) => {}
            Err(err) => panic!("start failed: {err}"),
        }
        let status = client
            .wait_for_completion("poison", Duration::from_secs(60))
            .await
            .expect("finishes");
        println!("status {:?}", status.runtime_status);
        if let Some(output) = &status.output {
            println!("output {output}");
        }
        if let Some(failure) = &status.failure {
            println!("failure {}", failure.message);
        }
        println!("all done");
        runtime.shutdown().await;
    });
}

/// Runs the worker until it finishes, starting it again each time it dies; returns how many
/// times it died and what the last one printed.
fn supervise(case: &str) -> (u32, Vec<String>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = dir.path().join("poison.db");
    let env = [
        ("DURABLE_POISON_STORE", store.as_os_str()),
        ("DURABLE_POISON_CASE", OsStr::new(case)),
    ];
    for deaths in 0..=RETRIES + 3 {
        let mut worker = support::spawn_worker("poison_worker_process", &env);
        let output = worker.stdout.take().expect("piped");
        let lines: Vec<String> = std::io::BufRead::lines(std::io::BufReader::new(output))
            .map(|line| line.expect("reads"))
            .collect();
        let exit = worker.wait().expect("reaps");
        if exit.success() {
            assert!(lines.iter().any(|l| l == "all done"), "{lines:?}");
            return (deaths, lines);
        }
    }
    panic!("the worker died more than {} times", RETRIES + 3);
}

#[test]
fn an_activity_that_stops_the_process_fails_its_task_after_the_retries() {
    let (deaths, lines) = supervise("activity");
    // Its first run, then each retry.
    assert_eq!(deaths, RETRIES + 1, "{lines:?}");
    assert!(lines.contains(&"status Completed".to_string()), "{lines:?}");
    let output = lines
        .iter()
        .find_map(|l| l.strip_prefix("output "))
        .expect("an output");
    assert!(
        output.contains("task failed: activity 'abort_the_process' set aside as poison"),
        "the orchestration saw the task fail, with the reason: {output}"
    );
    assert!(output.contains("each of the 2 times"), "{output}");
}

#[test]
fn a_step_that_stops_the_process_fails_its_instance_after_the_retries() {
    let (deaths, lines) = supervise("step");
    assert_eq!(deaths, RETRIES + 1, "{lines:?}");
    assert!(lines.contains(&"status Failed".to_string()), "{lines:?}");
    let failure = lines
        .iter()
        .find_map(|l| l.strip_prefix("failure "))
        .expect("a failure");
    assert!(failure.contains("set aside as poison"), "{failure}");
}
