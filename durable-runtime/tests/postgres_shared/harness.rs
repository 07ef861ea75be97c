//! The harness of the multi-process tests: worker processes (this test binary re-run as
//! `shared_worker_process`), and reads and changes of the test's schema and cluster.

use crate::support;
use durable_runtime::Client;
use durable_runtime::prelude::*;
use std::collections::{BTreeMap, HashSet};
use std::io::BufRead;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};

/// A shared runtime whose steps each wait `delay` before they reach the store: a worker that
/// always has steps on their way to a commit (what a stall must catch).
pub(crate) async fn slow_steps_builder(
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
pub(crate) struct Worker {
    pub(crate) child: Child,
    stdin: Option<ChildStdin>,
    ran: Arc<Mutex<u64>>,
    lines: std::thread::JoinHandle<Vec<String>>,
}

impl Worker {
    pub(crate) fn spawn(
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

    pub(crate) fn ran(&self) -> u64 {
        *self.ran.lock().expect("counter")
    }

    pub(crate) fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill {signal} failed");
    }

    /// Closes its stdin (it shuts down) and returns what it printed.
    pub(crate) fn stop(mut self) -> Vec<String> {
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
    pub(crate) fn kill(mut self) {
        self.child.kill().expect("kill -9");
        let _ = self.child.wait();
        let _ = self.lines.join();
    }
}

/// Runs `sql` on the test's schema, on a connection of its own.
pub(crate) async fn query(url: &str, schema: &str, sql: &str) -> Vec<tokio_postgres::Row> {
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
pub(crate) async fn until_balanced(url: &str, schema: &str, owners: i64) {
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
pub(crate) async fn epochs(url: &str, schema: &str) -> i64 {
    query(url, schema, "SELECT sum(epoch)::bigint FROM partitions").await[0].get(0)
}

pub(crate) async fn shared_client(url: &str, schema: &str) -> Client {
    Runtime::builder()
        .postgres(url)
        .postgres_schema(schema)
        .postgres_shared()
        .open_client()
        .await
        .expect("a client on the shared schema")
}

/// Executions per (instance, task id): the pids that ran it, in order.
pub(crate) fn executions(log: &std::path::Path) -> BTreeMap<(String, u64), Vec<u32>> {
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
pub(crate) async fn pending_activities(url: &str, schema: &str) -> HashSet<(String, u64)> {
    query(url, schema, "SELECT instance_id, task_id FROM activities")
        .await
        .iter()
        .map(|row| (row.get::<_, String>(0), row.get::<_, i64>(1) as u64))
        .collect()
}

pub(crate) fn setup(test: &str) -> Option<(String, String, tempfile::TempDir)> {
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
pub(crate) async fn create_schema(url: &str, schema: &str) {
    drop(shared_client(url, schema).await);
}

/// Restarts the cluster the way a crash does, as the user that owns it.
pub(crate) fn crash_restart(dir: &str, bin: &str) {
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
