//! Poison work on the embedded store: an orchestration step or an activity that stops the
//! process every time it runs (here, `std::process::abort`) is retried `poison_after` times
//! after restarts, then set aside, with the reason recorded: the instance fails, or the
//! activity's task fails (and no retry policy retries it) and its orchestration goes on. A
//! worker process is started again each time it dies, as a supervisor would; without the limit
//! it would die forever. An activity that returns is not blamed for the step after it, and a
//! clean shutdown counts nothing.

mod support;

use durable_runtime::prelude::*;
use std::ffi::OsStr;
use tokio::sync::Notify;

const RETRIES: u32 = 2;

#[activity]
async fn abort_the_process(_: ()) -> u32 {
    std::process::abort()
}

#[activity]
async fn returns_one(_: ()) -> u32 {
    1
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
async fn retries_an_aborting_activity(
    ctx: OrchestrationContext,
) -> Result<String, OrchestrationError> {
    let policy = RetryPolicy::new(3, Duration::from_millis(1));
    match ctx
        .call_activity_with_retry(&policy, abort_the_process, ())
        .await
    {
        Ok(n) => Ok(format!("returned {n}")),
        Err(failed) => Ok(format!("task failed: {}", failed.message)),
    }
}

#[orchestrator]
async fn aborts_in_its_step(_ctx: OrchestrationContext) -> Result<(), OrchestrationError> {
    stop_the_process()
}

#[orchestrator]
async fn aborts_after_an_activity(ctx: OrchestrationContext) -> Result<(), OrchestrationError> {
    ctx.call_activity(returns_one, ()).await?;
    stop_the_process()
}

#[orchestrator]
async fn retries_an_aborting_child(
    ctx: OrchestrationContext,
) -> Result<String, OrchestrationError> {
    let policy = RetryPolicy::new(3, Duration::from_millis(1));
    match ctx
        .call_sub_orchestrator_with_retry(&policy, aborts_in_its_step, ())
        .await
    {
        Ok(()) => Ok("returned".to_string()),
        Err(failed) => Ok(format!("child failed: {}", failed.message)),
    }
}

#[activity]
async fn takes_a_while(n: u32) -> u32 {
    // Long enough to be running when the poison beside it stops the process.
    tokio::time::sleep(Duration::from_millis(50)).await;
    n * 2
}

#[orchestrator]
async fn innocent(ctx: OrchestrationContext, n: u32) -> Result<u32, OrchestrationError> {
    Ok(ctx.call_activity(takes_a_while, n).await?)
}

/// What a stack overflow or a crash in native code does to an orchestrator's process (the
/// determinism check refuses `abort` written in the orchestrator itself; a helper hides it,
/// as a bug deep in a library would be hidden).
fn stop_the_process() -> ! {
    std::process::abort()
}

/// Starts the instance of the case named by `DURABLE_POISON_CASE` (once), waits for it and
/// prints its outcome; dies on the way while the poison runs.
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
        let runtime = start_runtime(store, RETRIES).await;
        let client = runtime.client();
        let started = match case.as_str() {
            "activity" => {
                client
                    .start_with_id(calls_an_aborting_activity, "poison", ())
                    .await
            }
            "retried activity" => {
                client
                    .start_with_id(retries_an_aborting_activity, "poison", ())
                    .await
            }
            "step" => client.start_with_id(aborts_in_its_step, "poison", ()).await,
            "retried child" => {
                client
                    .start_with_id(retries_an_aborting_child, "poison", ())
                    .await
            }
            "activity beside innocents" => {
                for n in 0..INNOCENTS {
                    match client
                        .start_with_id(innocent, format!("innocent-{n}"), n)
                        .await
                    {
                        Ok(_) | Err(durable_runtime::Error::InstanceAlreadyExists(_)) => {}
                        Err(err) => panic!("start failed: {err}"),
                    }
                }
                client
                    .start_with_id(calls_an_aborting_activity, "poison", ())
                    .await
            }
            _ => {
                client
                    .start_with_id(aborts_after_an_activity, "poison", ())
                    .await
            }
        };
        match started {
            Ok(_) | Err(durable_runtime::Error::InstanceAlreadyExists(_)) => {}
            Err(err) => panic!("start failed: {err}"),
        }
        print_outcome_of(&client, "poison").await;
        if case == "activity beside innocents" {
            for n in 0..INNOCENTS {
                let status = client
                    .wait_for_completion(&format!("innocent-{n}"), Duration::from_secs(60))
                    .await
                    .expect("finishes");
                println!(
                    "innocent {n} {:?} {:?}",
                    status.runtime_status, status.output
                );
            }
        }
        println!("all done");
        runtime.shutdown().await;
    });
}

const INNOCENTS: u32 = 8;

/// A worker's runtime on `store`, setting aside what stops it more than `retries` times.
async fn start_runtime(store: String, retries: u32) -> Runtime {
    Runtime::builder()
        .sqlite(store)
        .poison_after(retries)
        .shutdown_timeout(Duration::from_millis(50))
        .start()
        .await
        .expect("runtime")
}

/// Waits for the instance `id` to finish and prints its outcome (see [`print_outcome`]).
async fn print_outcome_of(client: &Client, id: &str) {
    let status = client
        .wait_for_completion(id, Duration::from_secs(60))
        .await
        .expect("finishes");
    print_outcome(&status);
}

/// What a worker prints of a finished instance, for [`line`].
fn print_outcome(status: &durable_runtime::InstanceStatus) {
    println!("status {:?}", status.runtime_status);
    if let Some(output) = &status.output {
        println!("output {output}");
    }
    if let Some(failure) = &status.failure {
        println!("failure {}", failure.message);
    }
}

/// Runs the worker `test` until it finishes, starting it again each time it dies; returns how
/// many times it died and what the last one printed.
fn supervise(test: &str, env: &[(&str, &OsStr)], most_deaths: u32) -> (u32, Vec<String>) {
    for deaths in 0..=most_deaths {
        let mut worker = support::spawn_worker(test, env);
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
    panic!("the worker died more than {most_deaths} times");
}

/// [`supervise`]s the poison case `case` on a fresh store.
fn supervise_case(case: &str) -> (u32, Vec<String>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = dir.path().join("poison.db");
    let env = [
        ("DURABLE_POISON_STORE", store.as_os_str()),
        ("DURABLE_POISON_CASE", OsStr::new(case)),
    ];
    supervise("poison_worker_process", &env, 3 * (RETRIES + 1))
}

fn line<'a>(lines: &'a [String], prefix: &str) -> &'a str {
    lines
        .iter()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no line '{prefix}...' in {lines:?}"))
}

#[test]
fn an_activity_that_stops_the_process_fails_its_task_after_the_retries() {
    let (deaths, lines) = supervise_case("activity");
    // Its first run, then each retry.
    assert_eq!(deaths, RETRIES + 1, "{lines:?}");
    assert_eq!(line(&lines, "status "), "Completed");
    let output = line(&lines, "output ");
    assert!(
        output.contains("task failed: activity 'abort_the_process' set aside as poison"),
        "the orchestration saw the task fail, with the reason: {output}"
    );
    assert!(output.contains("each of the 2 times"), "{output}");
}

#[test]
fn a_retry_policy_does_not_retry_a_task_set_aside() {
    let (deaths, lines) = supervise_case("retried activity");
    assert_eq!(deaths, RETRIES + 1, "not once more per retry: {lines:?}");
    assert!(line(&lines, "output ").contains("set aside as poison"));
}

#[test]
fn a_step_that_stops_the_process_fails_its_instance_after_the_retries() {
    let (deaths, lines) = supervise_case("step");
    assert_eq!(deaths, RETRIES + 1, "{lines:?}");
    assert_eq!(line(&lines, "status "), "Failed");
    assert!(line(&lines, "failure ").contains("set aside as poison"));
}

#[test]
fn the_step_after_an_activity_is_blamed_not_the_activity() {
    // The step that stops the process is woken by the activity's result, which reaches it in
    // memory: the activity returned each time, so the step is what is set aside.
    let (deaths, lines) = supervise_case("step after activity");
    assert_eq!(deaths, RETRIES + 1, "{lines:?}");
    assert_eq!(line(&lines, "status "), "Failed");
    let failure = line(&lines, "failure ");
    assert!(
        failure
            .starts_with("set aside as poison: the process stopped while this instance's step ran"),
        "{failure}"
    );
}

#[test]
fn a_retry_policy_does_not_retry_a_child_set_aside() {
    let (deaths, lines) = supervise_case("retried child");
    assert_eq!(deaths, RETRIES + 1, "not once more per retry: {lines:?}");
    assert!(line(&lines, "output ").contains("child failed: set aside as poison"));
}

#[test]
fn work_running_beside_the_poison_is_not_set_aside() {
    // The innocent activities run when the poison stops the process, again and again; only
    // the poison is set aside, and they all finish.
    let (deaths, lines) = supervise_case("activity beside innocents");
    assert_eq!(deaths, RETRIES + 1, "{lines:?}");
    assert!(line(&lines, "output ").contains("set aside as poison"));
    for n in 0..INNOCENTS {
        assert_eq!(
            line(&lines, &format!("innocent {n} ")),
            format!("Completed Some({})", n * 2),
            "{lines:?}"
        );
    }
}

#[orchestrator]
async fn waits_then_replays_badly(ctx: OrchestrationContext) -> Result<(), OrchestrationError> {
    // A new release whose code stops the process on the histories of the old one: it runs
    // while the history is replayed, before anything new happens.
    stop_the_process_if_new_release();
    ctx.wait_for_event::<()>("go").await?;
    Ok(())
}

fn stop_the_process_if_new_release() {
    if std::env::var_os("DURABLE_POISON_NEW_RELEASE").is_some() {
        std::process::abort()
    }
}

/// The old release starts the instance and shuts down while it waits; the new one raises its
/// event, and dies replaying it, until the instance is set aside.
#[test]
#[ignore = "run as a child process by a_replay_that_stops_the_process_is_set_aside"]
fn replay_worker_process() {
    let Ok(store) = std::env::var("DURABLE_POISON_STORE") else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().expect("tokio");
    rt.block_on(async {
        let runtime = start_runtime(store, RETRIES).await;
        let client = runtime.client();
        if std::env::var_os("DURABLE_POISON_NEW_RELEASE").is_none() {
            client
                .start_with_id(waits_then_replays_badly, "replayed", ())
                .await
                .expect("starts");
            support::until_status(&client, "replayed", RuntimeStatus::Running).await;
        } else {
            match client.raise_event_once("replayed", "go", (), "go").await {
                Ok(()) | Err(durable_runtime::Error::InstanceFinished { .. }) => {}
                Err(err) => panic!("raise failed: {err}"),
            }
            print_outcome_of(&client, "replayed").await;
        }
        runtime.shutdown().await;
        println!("all done");
    });
}

#[test]
fn a_replay_that_stops_the_process_is_set_aside() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = dir.path().join("replay.db");
    let old = [("DURABLE_POISON_STORE", store.as_os_str())];
    let (deaths, lines) = supervise("replay_worker_process", &old, 0);
    assert_eq!(deaths, 0, "{lines:?}");
    let new = [
        ("DURABLE_POISON_STORE", store.as_os_str()),
        ("DURABLE_POISON_NEW_RELEASE", OsStr::new("1")),
    ];
    let (deaths, lines) = supervise("replay_worker_process", &new, 3 * (RETRIES + 1));
    assert_eq!(deaths, RETRIES + 1, "{lines:?}");
    assert_eq!(line(&lines, "status "), "Failed");
    assert!(line(&lines, "failure ").contains("set aside as poison"));
}

/// Told each time the activity below starts.
static ACTIVITY_STARTED: Notify = Notify::const_new();

#[activity]
async fn waits_unless_last(_: ()) -> String {
    ACTIVITY_STARTED.notify_one();
    if std::env::var_os("DURABLE_POISON_LAST").is_some() {
        "done".to_string()
    } else {
        // Shut down with it in hand.
        std::future::pending().await
    }
}

#[orchestrator]
async fn waits_for_an_activity(ctx: OrchestrationContext) -> Result<String, OrchestrationError> {
    Ok(ctx.call_activity(waits_unless_last, ()).await?)
}

/// Starts the instance (once), waits until its activity runs, and shuts down with it in hand;
/// in the last incarnation the activity returns and the instance's outcome is printed.
#[test]
#[ignore = "run as a child process by a_clean_shutdown_with_work_in_hand_counts_nothing"]
fn clean_shutdown_worker_process() {
    let Ok(store) = std::env::var("DURABLE_POISON_STORE") else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().expect("tokio");
    rt.block_on(async {
        let runtime = start_runtime(store, 1).await;
        let client = runtime.client();
        match client
            .start_with_id(waits_for_an_activity, "in-hand", ())
            .await
        {
            Ok(_) | Err(durable_runtime::Error::InstanceAlreadyExists(_)) => {}
            Err(err) => panic!("start failed: {err}"),
        }
        ACTIVITY_STARTED.notified().await;
        if std::env::var_os("DURABLE_POISON_LAST").is_some() {
            print_outcome_of(&client, "in-hand").await;
        }
        runtime.shutdown().await;
        println!("all done");
    });
}

#[test]
fn a_clean_shutdown_with_work_in_hand_counts_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = dir.path().join("clean.db");
    let env = [("DURABLE_POISON_STORE", store.as_os_str())];
    // Shut down with the activity in hand, more times than the limit (1) allows stops.
    for _ in 0..3 {
        let (deaths, lines) = supervise("clean_shutdown_worker_process", &env, 0);
        assert_eq!(deaths, 0, "{lines:?}");
    }
    let last = [
        ("DURABLE_POISON_STORE", store.as_os_str()),
        ("DURABLE_POISON_LAST", OsStr::new("1")),
    ];
    let (_, lines) = supervise("clean_shutdown_worker_process", &last, 0);
    assert_eq!(line(&lines, "status "), "Completed", "not set aside");
    assert_eq!(line(&lines, "output "), "\"done\"");
}
