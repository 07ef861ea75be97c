//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod entities;
pub mod hooked;

use durable_runtime::{Client, Runtime, RuntimeBuilder};
use std::path::PathBuf;
use tempfile::TempDir;

/// The two engine paths a test runs on: the hot cache (the default) and none (every step
/// replays the instance's history).
pub const CACHES: [Option<usize>; 2] = [None, Some(0)];

/// The builder settings of one of [`CACHES`].
pub fn cache_settings(cache: Option<usize>) -> impl Fn(RuntimeBuilder) -> RuntimeBuilder {
    move |builder| match cache {
        Some(capacity) => builder.cache_capacity(capacity),
        None => builder,
    }
}

/// How many rows of `instance_id` the store file's `table` holds.
pub fn count_rows(store: &TestStore, table: &str, instance_id: &str) -> i64 {
    #[cfg(feature = "postgres")]
    if let Some((url, schema)) = &store.postgres {
        return postgres_count(url, schema, table, instance_id);
    }
    let conn = durable_runtime::store::sqlite::open_read_only(store.path()).expect("opens");
    conn.query_row(
        &format!("SELECT COUNT(*) FROM {table} WHERE instance_id = ?1"),
        [instance_id],
        |row| row.get(0),
    )
    .expect("counts")
}

/// [`count_rows`] on PostgreSQL: on a connection of its own, in a thread of its own (the
/// caller may be on the test's runtime, which must not block).
#[cfg(feature = "postgres")]
fn postgres_count(url: &str, schema: &str, table: &str, instance_id: &str) -> i64 {
    let (url, sql, id) = (
        url.to_string(),
        format!("SELECT COUNT(*) FROM {schema}.{table} WHERE instance_id = $1"),
        instance_id.to_string(),
    );
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async {
            let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .expect("connects");
            tokio::spawn(connection);
            let row = client.query_one(&sql, &[&id]).await.expect("counts");
            row.get::<_, i64>(0)
        })
    })
    .join()
    .expect("counts")
}

/// Runs `sql` (SQL both stores understand, unqualified table names) on the test's store
/// behind the runtime's back: corrupting rows. Call it while no runtime runs on the store.
pub fn exec_sql(store: &TestStore, sql: &str) {
    #[cfg(feature = "postgres")]
    if let Some((url, schema)) = &store.postgres {
        let sql = format!("SET search_path TO {schema}; {sql}");
        return on_postgres(url, move |client| async move {
            client.batch_execute(&sql).await.expect("runs");
        });
    }
    let conn = rusqlite::Connection::open(store.path()).expect("opens");
    conn.execute_batch(sql).expect("runs");
}

/// The first column of the first row `sql` answers, as text (`None`: NULL or no row).
pub fn query_text(store: &TestStore, sql: &str) -> Option<String> {
    #[cfg(feature = "postgres")]
    if let Some((url, schema)) = &store.postgres {
        let (schema, sql) = (schema.clone(), sql.to_string());
        return on_postgres(url, move |client| async move {
            client
                .batch_execute(&format!("SET search_path TO {schema}"))
                .await
                .expect("sets the schema");
            let row = client.query_opt(&sql, &[]).await.expect("runs");
            row.and_then(|row| row.get::<_, Option<String>>(0))
        });
    }
    let conn = durable_runtime::store::sqlite::open_read_only(store.path()).expect("opens");
    use rusqlite::OptionalExtension;
    conn.query_row(sql, [], |row| row.get::<_, Option<String>>(0))
        .optional()
        .expect("runs")
        .flatten()
}

/// Runs `work` on a PostgreSQL connection of its own, in a thread of its own (the caller may
/// be on the test's runtime, which must not block).
#[cfg(feature = "postgres")]
fn on_postgres<T: Send + 'static, F: std::future::Future<Output = T>>(
    url: &str,
    work: impl FnOnce(tokio_postgres::Client) -> F + Send + 'static,
) -> T {
    let url = url.to_string();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async {
            let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .expect("connects");
            tokio::spawn(connection);
            work(client).await
        })
    })
    .join()
    .expect("runs on PostgreSQL")
}

/// Asserts that a client call was refused as not applicable to an instance in `status` (and,
/// if given, that the refused operation was `operation`).
pub fn assert_not_applicable<T: std::fmt::Debug>(
    result: &Result<T, durable_runtime::Error>,
    operation: Option<&str>,
    status: durable_runtime::RuntimeStatus,
) {
    match result {
        Err(durable_runtime::Error::NotApplicable {
            operation: refused,
            status: found,
            ..
        }) if *found == status && operation.is_none_or(|op| op == *refused) => {}
        other => panic!("expected {operation:?} to be refused as {status}: {other:?}"),
    }
}

/// Asserts that a client call was refused because no instance has its id.
pub fn assert_not_found<T: std::fmt::Debug>(result: &Result<T, durable_runtime::Error>) {
    assert!(
        matches!(result, Err(durable_runtime::Error::InstanceNotFound(_))),
        "{result:?}"
    );
}

/// A fresh store in its own temporary directory (removed on drop): an SQLite file, or, when
/// `DURABLE_TEST_BACKEND=postgres` (feature `postgres`), a PostgreSQL schema of its own in the
/// database at `DURABLE_TEST_POSTGRES_URL` (the runtime-level conformance run: see
/// `.ci/run`).
pub struct TestStore {
    pub dir: TempDir,
    /// `(url, schema)` when the runtimes of this test run on PostgreSQL.
    pub postgres: Option<(String, String)>,
}

impl TestStore {
    pub fn new() -> Self {
        TestStore {
            dir: tempfile::tempdir().expect("create a temporary directory"),
            postgres: postgres_schema(),
        }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().join("durable.db")
    }

    pub fn builder(&self) -> RuntimeBuilder {
        #[cfg(feature = "postgres")]
        if let Some((url, schema)) = &self.postgres {
            let builder = Runtime::builder().postgres(url).postgres_schema(schema);
            if shared_postgres() {
                return builder.lease_ttl(SHARED_LEASE_TTL);
            }
            return builder;
        }
        Runtime::builder().sqlite(self.path())
    }

    /// [`hooked_builder_with`](Self::hooked_builder_with) on whichever store the test runs on:
    /// on PostgreSQL (`DURABLE_TEST_BACKEND=postgres`) the store behind `hook` is a
    /// PostgreSQL store, and `faults` (the SQLite writer's own) are not injected.
    pub async fn hooked_builder_on_backend(
        &self,
        hook: hooked::Hook,
        faults: Option<durable_runtime::store::sqlite::FaultHook>,
    ) -> RuntimeBuilder {
        #[cfg(feature = "postgres")]
        if let Some((url, schema)) = &self.postgres {
            use durable_runtime::store::postgres::{PostgresStore, SharedOptions};
            let inner = match shared_postgres() {
                false => PostgresStore::connect(url, schema).await,
                true => {
                    let options = SharedOptions {
                        lease_ttl: SHARED_LEASE_TTL,
                        worker_id: None,
                    };
                    PostgresStore::connect_shared(url, schema, options).await
                }
            }
            .expect("store opens");
            let store = hooked::HookedStore {
                inner: std::sync::Arc::new(inner),
                hook,
                page_delay: std::time::Duration::ZERO,
                pages_open: None,
                leases: None,
            };
            return Runtime::builder().store(std::sync::Arc::new(store));
        }
        self.hooked_builder_with(hook, faults)
    }

    /// A builder on this store behind `hook` (see [`hooked::HookedStore`]).
    pub fn hooked_builder(&self, hook: hooked::Hook) -> RuntimeBuilder {
        self.hooked_builder_with(hook, None)
    }

    /// [`hooked_builder`](Self::hooked_builder), with `faults` injected inside the SQLite
    /// writer's transactions too.
    pub fn hooked_builder_with(
        &self,
        hook: hooked::Hook,
        faults: Option<durable_runtime::store::sqlite::FaultHook>,
    ) -> RuntimeBuilder {
        let inner =
            durable_runtime::store::sqlite::SqliteStore::open(self.path()).expect("store opens");
        inner.inject_faults(faults);
        let store = hooked::HookedStore {
            inner: std::sync::Arc::new(inner),
            hook,
            page_delay: std::time::Duration::ZERO,
            pages_open: None,
            leases: None,
        };
        Runtime::builder().store(std::sync::Arc::new(store))
    }

    /// [`hooked_builder`](Self::hooked_builder), with startup recovery's reads of pending
    /// messages held until `pages_open` says true.
    pub fn hooked_builder_held_recovery(
        &self,
        hook: hooked::Hook,
        pages_open: tokio::sync::watch::Receiver<bool>,
    ) -> RuntimeBuilder {
        let inner =
            durable_runtime::store::sqlite::SqliteStore::open(self.path()).expect("store opens");
        let store = hooked::HookedStore {
            inner: std::sync::Arc::new(inner),
            hook,
            page_delay: std::time::Duration::ZERO,
            pages_open: Some(pages_open),
            leases: None,
        };
        Runtime::builder().store(std::sync::Arc::new(store))
    }

    /// Starts a runtime on this store again, once the previous runtime's store is released
    /// (its last tasks may still hold it for a moment after `shutdown`).
    pub async fn restart(
        &self,
        settings: impl Fn(RuntimeBuilder) -> RuntimeBuilder,
    ) -> (Runtime, Client) {
        let started = async {
            loop {
                match settings(self.builder()).start().await {
                    Ok(runtime) => {
                        let client = runtime.client();
                        return (runtime, client);
                    }
                    Err(durable_runtime::Error::Store(
                        durable_runtime::store::StoreError::Locked { .. },
                    )) => tokio::task::yield_now().await,
                    Err(err) => panic!("runtime does not start again: {err}"),
                }
            }
        };
        tokio::time::timeout(WAIT, started)
            .await
            .expect("the previous runtime releases the store")
    }

    /// Opens the embedded store again, once the previous runtime released it.
    pub async fn reopen(&self) -> std::sync::Arc<durable_runtime::store::sqlite::SqliteStore> {
        let opened = async {
            loop {
                match durable_runtime::store::sqlite::SqliteStore::open(self.path()) {
                    Ok(store) => return std::sync::Arc::new(store),
                    Err(durable_runtime::store::StoreError::Locked { .. }) => {
                        tokio::task::yield_now().await
                    }
                    Err(err) => panic!("store does not open again: {err}"),
                }
            }
        };
        tokio::time::timeout(WAIT, opened)
            .await
            .expect("the previous runtime releases the store")
    }

    /// A builder on this store (once released by the previous runtime) whose recovery reads
    /// each page of pending messages slowly, as from a slow disk or a big table.
    pub async fn slow_recovery_builder(&self, page_delay: std::time::Duration) -> RuntimeBuilder {
        let inner = self.reopen().await;
        Runtime::builder().store(std::sync::Arc::new(hooked::HookedStore::slow_pages(
            inner, page_delay,
        )))
    }

    pub async fn start(&self) -> (Runtime, Client) {
        self.start_with(|builder| builder).await
    }

    /// Starts a runtime on this store with adjusted settings.
    pub async fn start_with(
        &self,
        settings: impl FnOnce(RuntimeBuilder) -> RuntimeBuilder,
    ) -> (Runtime, Client) {
        let runtime = settings(self.builder())
            .start()
            .await
            .expect("runtime starts");
        let client = runtime.client();
        (runtime, client)
    }
}

/// Whether runtime tests run on PostgreSQL in shared mode (`DURABLE_TEST_BACKEND=
/// postgres-shared`): each runtime leases its work as one of many workers would.
pub fn shared_postgres() -> bool {
    std::env::var("DURABLE_TEST_BACKEND").as_deref() == Ok("postgres-shared")
}

/// The lease TTL of the runtimes of `postgres-shared` test runs.
#[cfg(feature = "postgres")]
const SHARED_LEASE_TTL: std::time::Duration = std::time::Duration::from_secs(5);

/// A schema of its own for a test, when runtime tests run on PostgreSQL
/// (`DURABLE_TEST_BACKEND=postgres`, or `postgres-shared`: see [`shared_postgres`]); the run
/// fails loudly if the database is not configured.
pub fn postgres_schema() -> Option<(String, String)> {
    if !matches!(
        std::env::var("DURABLE_TEST_BACKEND").as_deref(),
        Ok("postgres" | "postgres-shared")
    ) {
        return None;
    }
    if !cfg!(feature = "postgres") {
        panic!("DURABLE_TEST_BACKEND=postgres needs --features postgres");
    }
    let url = std::env::var("DURABLE_TEST_POSTGRES_URL")
        .expect("DURABLE_TEST_BACKEND=postgres needs DURABLE_TEST_POSTGRES_URL");
    Some((url, unique_schema()))
}

/// A schema name no other test (of this or another process) uses.
pub fn unique_schema() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "t_{}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        nanos % 1_000_000_000
    )
}

/// The instance's full history (the instance must exist).
pub async fn history(client: &Client, id: &str) -> Vec<durable_runtime::HistoryRecord> {
    client
        .get_status_with_history(id)
        .await
        .expect("reads the store")
        .expect("the instance exists")
        .history
        .expect("history was asked for")
}

/// Waits (up to [`WAIT`]) until the instance's history holds `count` events that `matches`
/// picks; `what` names the wait in the failure message.
pub async fn until_recorded(
    client: &Client,
    id: &str,
    what: &str,
    count: usize,
    matches: impl Fn(&durable_runtime::HistoryEvent) -> bool,
) {
    let recorded = async {
        loop {
            let history = history(client, id).await;
            if history.iter().filter(|r| matches(&r.event)).count() >= count {
                return;
            }
            tokio::task::yield_now().await;
        }
    };
    if tokio::time::timeout(WAIT, recorded).await.is_err() {
        panic!("{what}: not recorded within {WAIT:?}");
    }
}

/// Waits (up to [`WAIT`]) until the instance has `status`.
pub async fn until_status(client: &Client, id: &str, status: durable_runtime::RuntimeStatus) {
    let reached = async {
        loop {
            let current = client.get_status(id).await.expect("reads");
            if current.is_some_and(|s| s.runtime_status == status) {
                return;
            }
            tokio::task::yield_now().await;
        }
    };
    if tokio::time::timeout(WAIT, reached).await.is_err() {
        panic!("instance {id} did not become {status} within {WAIT:?}");
    }
}

/// Re-runs this test binary as a worker process executing only the ignored test `test`, with
/// `env` set and its stdout piped back (for kill -9 tests).
pub fn spawn_worker(test: &str, env: &[(&str, &std::ffi::OsStr)]) -> std::process::Child {
    let exe = std::env::current_exe().expect("test binary path");
    let mut command = std::process::Command::new(exe);
    command
        .args([
            "--ignored",
            "--exact",
            test,
            "--nocapture",
            "--test-threads=1",
            // Quiet: otherwise libtest prints `test NAME ... ` without a newline before the
            // test's own output, and the worker's first line would not start with what it printed.
            "--quiet",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit());
    for (key, value) in env {
        command.env(key, value);
    }
    command.spawn().expect("spawn worker process")
}

/// What one run of a worker process did.
pub struct Incarnation {
    /// Lines starting with `ran ` it printed (one per execution it reports).
    pub ran: u64,
    /// Whether it was killed (SIGKILL) rather than left to exit.
    pub killed: bool,
    /// Whether it printed `all done`.
    pub finished: bool,
    /// How it ended.
    pub exit: std::process::ExitStatus,
}

/// Reads a worker's output until it ends, counting its `ran ` lines, and kills it with SIGKILL
/// right after the `kill_after`-th, if given.
pub fn watch_worker(worker: &mut std::process::Child, kill_after: Option<u64>) -> Incarnation {
    use std::io::BufRead;
    let stdout = worker.stdout.take().expect("piped stdout");
    let (mut ran, mut killed, mut finished) = (0, false, false);
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line.expect("read worker output");
        if line.starts_with("ran ") {
            ran += 1;
            if Some(ran) == kill_after {
                worker.kill().expect("kill -9");
                killed = true;
                break;
            }
        }
        if line == "all done" {
            finished = true;
        }
    }
    let exit = worker.wait().expect("reap worker");
    Incarnation {
        ran,
        killed,
        finished,
        exit,
    }
}

/// Runs the worker test `test` (see [`spawn_worker`]) again and again on one store: `kills`
/// times it is killed with SIGKILL after a random number of its `ran ` lines in
/// `kill_after` (low inclusive, high exclusive: keep it below the lines one incarnation
/// prints, so every kill lands mid-way), then one incarnation runs to its end. Asserts that
/// the last one printed `all done` and that every kill happened.
pub fn kill_repeatedly(
    test: &str,
    env: &[(&str, &std::ffi::OsStr)],
    kills: usize,
    kill_after: (u64, u64),
) {
    let mut rng = Lcg::from_clock();
    let mut killed = 0;
    for incarnation in 0..=kills {
        let mut worker = spawn_worker(test, env);
        let kill_at = (incarnation < kills).then(|| rng.next_in(kill_after.0, kill_after.1));
        let run = watch_worker(&mut worker, kill_at);
        println!(
            "incarnation {incarnation}: {} lines, killed: {}",
            run.ran, run.killed
        );
        if run.killed {
            killed += 1;
            continue;
        }
        assert!(run.exit.success(), "worker failed: {}", run.exit);
        assert!(run.finished, "the last incarnation must finish everything");
        break;
    }
    assert_eq!(
        killed, kills,
        "a worker ended before its kill; the test proves little"
    );
}

/// Peak resident memory of this process so far, in KiB.
pub fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM line")
}

/// A small deterministic generator, seeded from the clock; the seed is printed so a failing
/// run can be told apart.
pub struct Lcg(u64);

impl Lcg {
    pub fn from_clock() -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(7);
        println!("seed {seed}");
        Lcg(seed)
    }

    /// A number in `low..high`.
    pub fn next_in(&mut self, low: u64, high: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        low + (self.0 >> 33) % (high - low)
    }
}

pub const WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Appends `instance task pid` to the file named by the environment variable `log_var`, and
/// prints `ran instance task` (the line [`watch_worker`] counts): the record of one execution
/// of an activity, which the kill tests compare with the history. One write(2) per line on an
/// O_APPEND file: lines never interleave, and a killed process loses nothing it wrote (the
/// page cache belongs to the kernel).
pub fn log_activity_run(
    log_var: &str,
    ctx: &durable_runtime::ActivityContext,
) -> Result<(), durable_runtime::ActivityError> {
    use std::io::Write;
    let log_path =
        std::env::var(log_var).map_err(|_| durable_runtime::ActivityError::new("no log path"))?;
    let line = format!(
        "{} {} {}\n",
        ctx.instance_id(),
        ctx.task_id(),
        std::process::id()
    );
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)?;
    log.write_all(line.as_bytes())?;
    println!("ran {} {}", ctx.instance_id(), ctx.task_id());
    Ok(())
}
