//! The `durable` CLI, run as a process: every command against a real server (`--url`) and
//! against a real store file no runtime runs on (`--store`); errors are one line and a
//! non-zero exit.
#![cfg(feature = "cli")]

#[path = "support/http.rs"]
mod http_support;
mod support;

use durable_runtime::http::HttpOptions;
use durable_runtime::{HistoryRecord, RuntimeStatus};
use http_support::Served;
use serde_json::{Value, json};
use support::{TestStore, WAIT};

/// What a run of the CLI printed, and how it exited.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn ok(self) -> String {
        assert_eq!(self.code, 0, "stderr: {}", self.stderr);
        self.stdout
    }

    fn json(self) -> Value {
        let out = self.ok();
        serde_json::from_str(&out).unwrap_or_else(|err| panic!("not JSON ({err}): {out}"))
    }

    /// A failure: exit code 1, one line on stderr containing `expected`.
    fn fails_with(self, expected: &str) {
        assert_eq!(
            self.code, 1,
            "stdout: {} stderr: {}",
            self.stdout, self.stderr
        );
        assert_eq!(self.stderr.lines().count(), 1, "{}", self.stderr);
        assert!(self.stderr.starts_with("error: "), "{}", self.stderr);
        assert!(self.stderr.contains(expected), "{}", self.stderr);
    }

    /// The command line was refused before anything ran (clap's exit code 2).
    fn does_not_parse(self, expected: &str) {
        assert_eq!(
            self.code, 2,
            "stdout: {} stderr: {}",
            self.stdout, self.stderr
        );
        assert!(self.stderr.starts_with("error: "), "{}", self.stderr);
        assert!(self.stderr.contains(expected), "{}", self.stderr);
    }
}

/// Runs `durable` with `target` (`--url ..` or `--store ..`) and `args`.
async fn durable(target: &[String], args: &[&str]) -> Run {
    let mut all: Vec<String> = target.to_vec();
    all.extend(args.iter().map(|a| a.to_string()));
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_durable"))
            .args(&all)
            .env_remove("DURABLE_KEY")
            .env_remove("DURABLE_URL")
            .output()
            .expect("the CLI runs")
    })
    .await
    .expect("joins");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn url_of(served: &Served) -> Vec<String> {
    vec![
        "--url".into(),
        format!("http://{}", served.server.local_addr()),
    ]
}

fn store_of(store: &TestStore) -> Vec<String> {
    vec!["--store".into(), store.path().display().to_string()]
}

/// `start`, `status` and `history` against a server (`runs`: its runtime runs what starts).
async fn start_status_history(
    target: &[String],
    client_check: &durable_runtime::Client,
    runs: bool,
) {
    let id = durable(
        target,
        &["start", "hello", "--id", "c1", "--input", "\"Oslo\""],
    )
    .await
    .ok();
    assert_eq!(id.trim(), "c1");
    let fresh = durable(target, &["--json", "start", "noop", "--input", "1"])
        .await
        .json();
    assert_eq!(fresh["id"].as_str().expect("an id").len(), 32);
    if runs {
        client_check
            .wait_for_completion("c1", WAIT)
            .await
            .expect("completes");
    }
    let table = durable(target, &["status", "c1"]).await.ok();
    assert!(table.contains("c1"), "{table}");
    let expected = if runs { "Completed" } else { "Pending" };
    assert!(table.contains(expected), "{table}");
    let status = durable(target, &["status", "c1", "--json"]).await.json();
    assert_eq!(status["runtimeStatus"], expected);
    assert_eq!(status["input"], "Oslo");
    if runs {
        assert_eq!(status["output"], "Hello Oslo!");
        let timeline = durable(target, &["history", "c1"]).await.ok();
        for expected in [
            "ExecutionStarted",
            "TaskScheduled #0",
            "TaskCompleted #0",
            "took",
            "ExecutionCompleted",
        ] {
            assert!(timeline.contains(expected), "{expected}: {timeline}");
        }
    }
    let records: Vec<HistoryRecord> =
        serde_json::from_value(durable(target, &["history", "c1", "--json"]).await.json())
            .expect("history records");
    let direct = support::history(client_check, "c1").await;
    assert_eq!(records, direct);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_against_a_server() {
    let served = Served::start(|b| b, HttpOptions::new()).await;
    let target = url_of(&served);
    start_status_history(&target, &served.client, true).await;

    // Events, suspend, resume, terminate.
    durable(&target, &["start", "approval", "--id", "a"])
        .await
        .ok();
    durable(&target, &["suspend", "a", "--reason", "wait"])
        .await
        .ok();
    support::until_status(&served.client, "a", RuntimeStatus::Suspended).await;
    durable(&target, &["resume", "a"]).await.ok();
    durable(
        &target,
        &["raise-event", "a", "approve", "--data", "{\"ok\":true}"],
    )
    .await
    .ok();
    let done = served
        .client
        .wait_for_completion("a", WAIT)
        .await
        .expect("completes");
    assert_eq!(
        done.output_as::<Value>().expect("output"),
        json!({"ok": true})
    );
    durable(&target, &["start", "approval", "--id", "t"])
        .await
        .ok();
    durable(&target, &["terminate", "t", "--reason", "bye"])
        .await
        .ok();
    let terminated = served
        .client
        .get_status("t")
        .await
        .expect("reads")
        .expect("exists");
    assert_eq!(terminated.runtime_status, RuntimeStatus::Terminated);

    // Rewind and restart.
    durable(
        &target,
        &["start", "flaky", "--id", "f", "--input", "\"cli-server\""],
    )
    .await
    .ok();
    let failed = served
        .client
        .wait_for_completion("f", WAIT)
        .await
        .expect("finishes");
    assert_eq!(failed.runtime_status, RuntimeStatus::Failed);
    durable(&target, &["rewind", "f", "--reason", "again"])
        .await
        .ok();
    let rewound = served
        .client
        .wait_for_completion("f", WAIT)
        .await
        .expect("finishes");
    assert_eq!(rewound.runtime_status, RuntimeStatus::Completed);
    let new_id = durable(&target, &["restart", "c1", "--new-id"]).await.ok();
    let new_id = new_id.trim();
    assert_ne!(new_id, "c1");
    let restarted = served
        .client
        .wait_for_completion(new_id, WAIT)
        .await
        .expect("completes");
    assert_eq!(
        restarted.output_as::<String>().expect("output"),
        "Hello Oslo!"
    );
    assert_eq!(durable(&target, &["restart", "c1"]).await.ok().trim(), "c1");
    served
        .client
        .wait_for_completion("c1", WAIT)
        .await
        .expect("completes again");

    listing_and_purge(&target, &served.client).await;
    errors(&target, true).await;

    // A wrong key: refused, one line.
    let keyed = Served::start(|b| b, HttpOptions::new().key("k")).await;
    let mut with_wrong_key = url_of(&keyed);
    with_wrong_key.extend(["--key".to_string(), "nope".to_string()]);
    durable(&with_wrong_key, &["list"])
        .await
        .fails_with("HTTP 401");
    let mut with_key = url_of(&keyed);
    with_key.extend(["--key".to_string(), "k".to_string()]);
    assert!(
        durable(&with_key, &["list"])
            .await
            .ok()
            .contains("no instances")
    );
    keyed.stop().await;
    served.stop().await;
}

/// `list` pages through long listings; `purge` one and by filter.
async fn listing_and_purge(target: &[String], client: &durable_runtime::Client) {
    for i in 0..130 {
        client
            .start_by_name("noop", Some(format!("many-{i:03}")), i)
            .await
            .expect("starts");
    }
    let listed = durable(target, &["list", "--prefix", "many-", "--json"])
        .await
        .json();
    let ids: Vec<&str> = listed
        .as_array()
        .expect("an array")
        .iter()
        .map(|s| s["instanceId"].as_str().expect("an id"))
        .collect();
    let expected: Vec<String> = (0..130).map(|i| format!("many-{i:03}")).collect();
    assert_eq!(ids, expected, "every instance once, in order, across pages");
    let top = durable(target, &["list", "--prefix", "many-", "--top", "5"])
        .await
        .ok();
    assert!(
        top.lines().next().expect("a header").starts_with("ID"),
        "{top}"
    );
    assert!(
        top.contains("many-004") && !top.contains("many-005"),
        "{top}"
    );
    assert!(top.contains("5 instance(s)"), "{top}");

    for i in 0..130 {
        client
            .wait_for_completion(&format!("many-{i:03}"), WAIT)
            .await
            .expect("completes");
    }
    let one = durable(target, &["purge", "many-000"]).await.ok();
    assert!(one.contains("1 instance(s) purged"), "{one}");
    assert!(
        client
            .get_status("many-000")
            .await
            .expect("reads")
            .is_none()
    );
    let by_filter = durable(
        target,
        &[
            "--json",
            "purge",
            "--status",
            "Completed",
            "--from",
            "2000-01-01T00:00:00Z",
        ],
    )
    .await
    .json();
    assert!(by_filter["instancesDeleted"].as_u64().expect("a count") >= 129);
    assert!(
        client
            .get_status("many-129")
            .await
            .expect("reads")
            .is_none()
    );
    let none = durable(target, &["--json", "purge", "--status", "Completed"])
        .await
        .json();
    assert_eq!(none["instancesDeleted"], 0);
}

/// Errors: one line, exit 1. (`server`: an unknown orchestrator is refused by a server; on
/// a store file, the name is left to the runtime that will run the instance.)
async fn errors(target: &[String], server: bool) {
    durable(target, &["status", "nobody"])
        .await
        .fails_with("nobody");
    durable(target, &["terminate", "nobody"])
        .await
        .fails_with("nobody");
    if server {
        durable(target, &["start", "no_such_orchestrator"])
            .await
            .fails_with("no_such_orchestrator");
    }
    durable(target, &["start", "noop", "--input", "{bad"])
        .await
        .fails_with("--input is not valid JSON");
    durable(target, &["list", "--from", "yesterday"])
        .await
        .fails_with("--from");
    durable(target, &["purge", "x", "--status", "Completed"])
        .await
        .fails_with("not both");
    // Nothing that could become `instances/` and purge every finished instance.
    durable(target, &["purge"])
        .await
        .fails_with("an instance id or a filter");
    for id in ["", ".", ".."] {
        durable(target, &["purge", id])
            .await
            .does_not_parse("instance id");
        durable(target, &["status", id])
            .await
            .does_not_parse("instance id");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_against_a_store_file() {
    let store = TestStore::new();
    // A store where instances ran, then its runtime stopped.
    let (runtime, client) = store.start().await;
    client
        .start_by_name("flaky", Some("f".into()), "cli-store")
        .await
        .expect("starts");
    client
        .start_by_name("approval", Some("a".into()), ())
        .await
        .expect("starts");
    client
        .start_by_name("approval", Some("t".into()), ())
        .await
        .expect("starts");
    client.wait_for_completion("f", WAIT).await.expect("fails");
    support::until_status(&client, "a", RuntimeStatus::Running).await;
    support::until_status(&client, "t", RuntimeStatus::Running).await;
    drop(client);
    runtime.shutdown().await;
    let _ = store.reopen().await; // released
    let target = store_of(&store);

    // Reads and writes through the store, with no runtime: writes wait in the store.
    durable(
        &target,
        &["start", "hello", "--id", "c1", "--input", "\"Oslo\""],
    )
    .await
    .ok();
    durable(&target, &["raise-event", "a", "approve", "--data", "5"])
        .await
        .ok();
    durable(&target, &["terminate", "t", "--reason", "bye"])
        .await
        .ok();
    durable(&target, &["rewind", "f"]).await.ok();
    let status = durable(&target, &["--json", "status", "c1"]).await.json();
    assert_eq!(status["runtimeStatus"], "Pending", "nothing runs it yet");
    let status = durable(&target, &["--json", "status", "t"]).await.json();
    assert_eq!(status["runtimeStatus"], "Terminated");
    durable(&target, &["suspend", "t"])
        .await
        .fails_with("Terminated");
    durable(&target, &["restart", "t"]).await.ok();
    durable(&target, &["suspend", "t"]).await.ok();
    durable(&target, &["resume", "t"]).await.ok();
    durable(&target, &["purge", "t"]).await.fails_with("purge");
    errors(&target, false).await;
    durable(&target, &["list"]).await.ok();

    // A runtime on the store runs what the CLI wrote.
    let (runtime, client) = store.restart(|b| b).await;
    let c1 = client
        .wait_for_completion("c1", WAIT)
        .await
        .expect("completes");
    assert_eq!(c1.output_as::<String>().expect("output"), "Hello Oslo!");
    let a = client
        .wait_for_completion("a", WAIT)
        .await
        .expect("completes");
    assert_eq!(a.output_as::<i64>().expect("output"), 5);
    let f = client
        .wait_for_completion("f", WAIT)
        .await
        .expect("completes");
    assert_eq!(f.output_as::<String>().expect("output"), "cli-store");
    // While it runs, the store is locked: one clear line.
    durable(&target, &["list"])
        .await
        .fails_with("in use by a running runtime");
    let direct = support::history(&client, "c1").await;
    drop(client);
    runtime.shutdown().await;
    let _ = store.reopen().await;

    // The history, read back from the file: the timeline and the export format.
    let timeline = durable(&target, &["history", "c1"]).await.ok();
    assert!(timeline.contains("TaskCompleted #0"), "{timeline}");
    let records: Vec<HistoryRecord> =
        serde_json::from_value(durable(&target, &["history", "c1", "--json"]).await.json())
            .expect("history records");
    assert_eq!(records, direct);
    let listed = durable(&target, &["list", "--status", "Completed"])
        .await
        .ok();
    assert!(
        listed.contains("c1") && listed.contains("3 instance(s)"),
        "{listed}"
    );
    let purged = durable(&target, &["--json", "purge", "--status", "Completed"])
        .await
        .json();
    assert_eq!(purged["instancesDeleted"], 3);
    durable(&target, &["status", "c1"]).await.fails_with("c1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_target_is_one_clear_line() {
    durable(&[], &["list"]).await.fails_with("--url");
    let missing = TestStore::new();
    durable(&store_of(&missing), &["list"])
        .await
        .fails_with("no store at");
}
