//! `durable entity get|signal|list`, run as a process: against a real server (`--url`) and
//! against a real store file no runtime runs on (`--store`); tables and `--json`; errors are
//! one line and a non-zero exit.
#![cfg(feature = "cli")]

#[path = "support/http.rs"]
mod http_support;
mod support;

use durable_runtime::http::HttpOptions;
use durable_runtime::prelude::*;
use http_support::Served;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use support::TestStore;
use support::entities::until_state;

/// A counter: `add` adds its input.
#[entity]
async fn counter(ctx: &mut EntityContext<i64>) -> Result<(), EntityError> {
    match ctx.operation_name() {
        "add" => {
            let amount: i64 = ctx.input()?;
            *ctx.state_mut() += amount;
            Ok(())
        }
        other => Err(EntityError::new(format!("no operation '{other}'"))),
    }
}

/// A name that starts with another entity's name.
#[entity(name = "counterpart")]
async fn counterpart(ctx: &mut EntityContext<i64>) {
    *ctx.state_mut() += 1;
}

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

fn counter_id(key: &str) -> EntityId {
    EntityId::new("counter", key)
}

/// Bad command lines, the same on both targets.
async fn refused(target: &[String]) {
    durable(
        target,
        &[
            "entity", "signal", "counter", "a", "--op", "add", "--input", "{bad",
        ],
    )
    .await
    .fails_with("--input");
    durable(target, &["entity", "signal", "counter", "", "--op", "add"])
        .await
        .fails_with("key is empty");
    durable(target, &["entity", "get", "co@unter", "a"])
        .await
        .fails_with("'@'");
    durable(target, &["entity", "list", "co@unter"])
        .await
        .fails_with("'@'");
    durable(target, &["entity", "list", "--from", "yesterday"])
        .await
        .fails_with("--from");
    durable(target, &["entity", "get", "counter", "nope"])
        .await
        .fails_with("no entity @counter@nope");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entity_commands_against_a_server() {
    let served = Served::start(|b| b, HttpOptions::new().key("k3y")).await;
    let target = vec![
        "--url".into(),
        format!("http://{}", served.server.local_addr()),
        "--key".into(),
        "k3y".into(),
    ];
    let said = durable(
        &target,
        &[
            "entity", "signal", "counter", "a", "--op", "add", "--input", "5",
        ],
    )
    .await
    .ok();
    assert_eq!(said.trim(), "signalled 'add' to @counter@a");
    let said = durable(
        &target,
        &[
            "--json", "entity", "signal", "counter", "a", "--op", "add", "--input", "3",
        ],
    )
    .await
    .json();
    assert_eq!(said, json!({"ok": true}));
    until_state::<i64>(&served.client, &counter_id("a"), |s| s == Some(&8)).await;
    let state = durable(&target, &["--json", "entity", "get", "counter", "a"])
        .await
        .json();
    assert_eq!(state, json!(8));
    let table = durable(&target, &["entity", "get", "counter", "a"])
        .await
        .ok();
    assert!(
        table.contains("@counter@a") && table.contains("state   8"),
        "{table}"
    );

    // Errors: the server's message, one line.
    durable(&target, &["entity", "signal", "ghost", "k", "--op", "add"])
        .await
        .fails_with("no entity named 'ghost' is registered");
    refused(&target).await;
    let keyless = vec![target[0].clone(), target[1].clone()];
    durable(&keyless, &["entity", "list"])
        .await
        .fails_with("HTTP 401");

    // A listing longer than a page (100): every entity once.
    for key in 0..104 {
        served
            .client
            .signal_entity_by_name(&counter_id(&format!("bulk{key:03}")), "add", key)
            .await
            .expect("durable");
    }
    served
        .client
        .signal_entity_by_name(&EntityId::new("counterpart", "p"), "", ())
        .await
        .expect("durable");
    for key in 0..104 {
        until_state::<i64>(&served.client, &counter_id(&format!("bulk{key:03}")), |s| {
            s == Some(&key)
        })
        .await;
    }
    until_state::<i64>(&served.client, &EntityId::new("counterpart", "p"), |s| {
        s == Some(&1)
    })
    .await;
    let listed = durable(&target, &["--json", "entity", "list", "counter", "--state"])
        .await
        .json();
    let listed = listed.as_array().expect("an array");
    assert_eq!(listed.len(), 105, "a, and the 104 bulk counters");
    let keys: BTreeSet<&str> = listed
        .iter()
        .map(|e| e["entityId"]["key"].as_str().expect("a key"))
        .collect();
    assert_eq!(keys.len(), 105, "no entity twice");
    assert!(listed.iter().all(|e| e["entityId"]["name"] == "counter"));
    assert_eq!(listed[0]["state"], 8);
    let table = durable(&target, &["entity", "list", "--top", "3"])
        .await
        .ok();
    assert!(table.starts_with("NAME"), "{table}");
    assert_eq!(
        table.lines().count(),
        5,
        "a header, 3 rows, a total: {table}"
    );
    assert!(table.trim_end().ends_with("3 entities"), "{table}");
    let all = durable(&target, &["entity", "list", "--state"]).await.ok();
    assert!(
        all.contains("counterpart") && all.contains("106 entities"),
        "{all}"
    );
    let none = durable(
        &target,
        &["entity", "list", "--from", "2999-01-01T00:00:00Z"],
    )
    .await
    .ok();
    assert_eq!(none.trim(), "no entities");
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entity_commands_against_a_store_file() {
    let store = TestStore::new();
    let (runtime, client) = store.start().await;
    client
        .signal_entity_by_name(&counter_id("a"), "add", 2)
        .await
        .expect("durable");
    until_state::<i64>(&client, &counter_id("a"), |s| s == Some(&2)).await;
    drop(client);
    runtime.shutdown().await;
    let _ = store.reopen().await; // released
    let target = vec!["--store".into(), store.path().display().to_string()];

    let state = durable(&target, &["--json", "entity", "get", "counter", "a"])
        .await
        .json();
    assert_eq!(state, json!(2));
    // Queued in the store: no runtime runs it yet, so the state does not change.
    durable(
        &target,
        &[
            "entity", "signal", "counter", "a", "--op", "add", "--input", "3",
        ],
    )
    .await
    .ok();
    let state = durable(&target, &["--json", "entity", "get", "counter", "a"])
        .await
        .json();
    assert_eq!(state, json!(2));
    let listed = durable(&target, &["--json", "entity", "list", "--state"])
        .await
        .json();
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(
        listed[0]["entityId"],
        json!({"name": "counter", "key": "a"})
    );
    assert_eq!(listed[0]["state"], 2);
    let table = durable(&target, &["entity", "list", "counter"]).await.ok();
    assert!(table.contains("a") && table.contains("1 entity"), "{table}");
    refused(&target).await;

    // The next runtime on the store runs the queued signal, once.
    let (runtime, client) = store.restart(|b| b).await;
    until_state::<i64>(&client, &counter_id("a"), |s| s == Some(&5)).await;
    let log = client
        .entity_log(&counter_id("a"))
        .await
        .expect("reads the log");
    assert_eq!(log.len(), 2, "the first add and the one the CLI queued");
    runtime.shutdown().await;
}
