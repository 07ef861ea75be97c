//! The bench on PostgreSQL: `--store postgres://...` runs the workloads that use a fresh
//! runtime (W1, W2, W3, W4, ...) on a PostgreSQL database instead of a temporary SQLite file,
//! each in a schema of its own (never dropped: use a throwaway database). Needs
//! `--features postgres`.
//!
//! `--workers N` runs N worker processes on the workload's schema: this process (whose client
//! starts the instances and waits for them) and N - 1 helpers (this program again, with
//! `--pg-worker SCHEMA`), all in shared mode (`RuntimeBuilder::postgres_shared`). The timing
//! starts once the N workers have balanced the leases between them; the helpers stop when
//! this process exits (their stdin closes). With `--workers 1` (the default) the runtime owns
//! its schema alone, as before shared mode existed.
//!
//! After each workload, the round trips this process sent to PostgreSQL are printed on
//! stderr (`PostgresStore::round_trips`; the helpers' are not counted): divided by the steps
//! of the workload, the round trips per step.

use durable_runtime::Runtime;
use std::sync::{Mutex, OnceLock};

type BoxError = Box<dyn std::error::Error>;

/// The PostgreSQL URL, when `--store` named one, and the worker processes.
static CONFIG: OnceLock<Option<(String, u32)>> = OnceLock::new();

/// The helper worker processes of the current workload (they stop when their stdin closes,
/// at the latest when this process exits).
static HELPERS: Mutex<Vec<std::process::Child>> = Mutex::new(Vec::new());

/// Reads `--store` and `--workers`.
pub fn configure(store: &str, workers: u32) -> Result<(), BoxError> {
    let url = match store {
        "sqlite" => None,
        url if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            if !cfg!(feature = "postgres") {
                return Err(
                    "--store postgres://... needs the bench built with --features postgres".into(),
                );
            }
            Some(url.to_string())
        }
        other => {
            return Err(format!("--store {other}: expected sqlite or a postgres:// URL").into());
        }
    };
    if workers == 0 || workers > 16 {
        return Err(format!("--workers {workers}: 1 to 16 (a schema has 16 partitions)").into());
    }
    if workers > 1 && url.is_none() {
        return Err(format!(
            "--workers {workers}: many worker processes need a shared store (--store postgres://...)"
        )
        .into());
    }
    let _ = CONFIG.set(url.map(|url| (url, workers)));
    Ok(())
}

/// A runtime on a fresh schema of the `--store` database, with its helper workers running
/// and balanced; `None` on SQLite.
pub async fn fresh_runtime() -> Result<Option<Runtime>, BoxError> {
    let Some(Some((url, workers))) = CONFIG.get() else {
        return Ok(None);
    };
    start(url, *workers).await.map(Some)
}

/// Prints the round trips this process sent to PostgreSQL so far (stderr), on PostgreSQL.
pub fn report_round_trips() {
    #[cfg(feature = "postgres")]
    if let Some(Some(_)) = CONFIG.get() {
        eprintln!(
            "postgres: {} round trips from this process so far",
            durable_runtime::store::postgres::PostgresStore::round_trips()
        );
    }
}

/// Stops the helper workers of the last workload (closing their stdin) and waits for them.
pub fn stop_helpers() {
    let helpers = std::mem::take(&mut *HELPERS.lock().unwrap_or_else(|e| e.into_inner()));
    for mut helper in helpers {
        drop(helper.stdin.take());
        let _ = helper.wait();
    }
}

#[cfg(feature = "postgres")]
fn fresh_schema() -> Result<String, BoxError> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos();
    Ok(format!(
        "bench_{}_{}",
        std::process::id(),
        nanos % 1_000_000_000_000
    ))
}

#[cfg(feature = "postgres")]
async fn start(url: &str, workers: u32) -> Result<Runtime, BoxError> {
    use durable_runtime::store::postgres::{PostgresStore, SharedOptions};
    let schema = fresh_schema()?;
    if workers == 1 {
        return Ok(Runtime::builder()
            .postgres(url)
            .postgres_schema(schema)
            .start()
            .await?);
    }
    let store = std::sync::Arc::new(
        PostgresStore::connect_shared(url, &schema, SharedOptions::default()).await?,
    );
    let runtime = Runtime::builder().store(store.clone()).start().await?;
    let program = std::env::current_exe()?;
    for _ in 1..workers {
        let helper = std::process::Command::new(&program)
            .args(["--store", url, "--pg-worker", &schema])
            .stdin(std::process::Stdio::piped())
            .spawn()?;
        HELPERS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(helper);
    }
    // The measurement starts once every worker holds its share of the partitions.
    let share = 16_i64.div_euclid(i64::from(workers));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let owners = store
            .query_i64(
                "SELECT count(*) FROM (SELECT owner FROM partitions
                     WHERE owner IS NOT NULL AND expires_at > now()
                     GROUP BY owner HAVING count(*) >= 1) o",
            )
            .await?;
        let smallest = store
            .query_i64(
                "SELECT coalesce(min(n), 0) FROM (SELECT count(*) AS n FROM partitions
                     WHERE owner IS NOT NULL AND expires_at > now() GROUP BY owner) o",
            )
            .await?;
        if owners == i64::from(workers) && smallest >= share {
            break;
        }
        if std::time::Instant::now() > deadline {
            return Err(format!("the {workers} workers did not balance the leases in 60 s").into());
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    Ok(runtime)
}

#[cfg(not(feature = "postgres"))]
async fn start(_url: &str, _workers: u32) -> Result<Runtime, BoxError> {
    Err("built without --features postgres".into())
}

/// A helper worker (`--pg-worker SCHEMA`): a shared runtime on the schema until stdin closes.
#[cfg(feature = "postgres")]
pub async fn run_worker(url: &str, schema: &str) -> Result<(), BoxError> {
    let runtime = Runtime::builder()
        .postgres(url)
        .postgres_schema(schema)
        .postgres_shared()
        .start()
        .await?;
    let _ = tokio::task::spawn_blocking(|| {
        let mut sink = String::new();
        while std::io::stdin()
            .read_line(&mut sink)
            .map(|n| n > 0)
            .unwrap_or(false)
        {
            sink.clear();
        }
    })
    .await;
    runtime.shutdown().await;
    Ok(())
}

#[cfg(not(feature = "postgres"))]
pub async fn run_worker(_url: &str, _schema: &str) -> Result<(), BoxError> {
    Err("built without --features postgres".into())
}
