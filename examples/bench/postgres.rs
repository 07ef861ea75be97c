//! The bench on PostgreSQL: `--store postgres://...` runs the workloads that use a fresh
//! runtime (W1, W2, W3, W4, ...) on a PostgreSQL database instead of a temporary SQLite file,
//! each in a schema of its own (never dropped: use a throwaway database). Needs
//! `--features postgres`.
//!
//! `--workers N` asks for N worker processes on one database. This backend runs one runtime
//! per schema (leased work items for many workers are not implemented yet), so only
//! `--workers 1` is accepted; anything else is refused with a clear error.

use durable_runtime::Runtime;
use std::sync::OnceLock;

type BoxError = Box<dyn std::error::Error>;

/// The PostgreSQL URL, when `--store` named one.
static URL: OnceLock<Option<String>> = OnceLock::new();

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
    if workers != 1 {
        return Err(format!(
            "--workers {workers}: one worker per store for now (many workers on one PostgreSQL \
             schema need leased work items, not implemented yet)"
        )
        .into());
    }
    let _ = URL.set(url);
    Ok(())
}

/// A runtime on a fresh schema of the `--store` database; `None` on SQLite.
pub async fn fresh_runtime() -> Result<Option<Runtime>, BoxError> {
    let Some(Some(url)) = URL.get() else {
        return Ok(None);
    };
    start(url).await.map(Some)
}

#[cfg(feature = "postgres")]
async fn start(url: &str) -> Result<Runtime, BoxError> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos();
    let schema = format!("bench_{}_{}", std::process::id(), nanos % 1_000_000_000_000);
    Ok(Runtime::builder()
        .postgres(url)
        .postgres_schema(schema)
        .start()
        .await?)
}

#[cfg(not(feature = "postgres"))]
async fn start(_url: &str) -> Result<Runtime, BoxError> {
    Err("built without --features postgres".into())
}
