//! Monitor: polls a condition with durable timers until it holds or an expiry passes.
//!
//! Two jobs are watched: one finishes after a few checks, the other never does and the
//! monitor gives up when its expiry passes. Each wait between checks is a durable timer: kill
//! the program midway and run it again, and the monitors carry on where they were.
//!
//! Run: `cargo run --example monitor` (the store is `durable.db` in the working directory).
//! `tests/monitor.rs` runs it with hours between checks, in virtual time.

use durable_runtime::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Mutex;

/// Checks so far, per job: stands in for an external system the activity asks.
static CHECKS: Mutex<Option<HashMap<String, u32>>> = Mutex::new(None);

/// Asks whether the job is done. The "quick" job is done at its third check; others never.
#[activity]
pub async fn job_is_done(job: String) -> bool {
    let mut checks = CHECKS.lock().unwrap_or_else(|e| e.into_inner());
    let count = checks
        .get_or_insert_with(HashMap::new)
        .entry(job.clone())
        .or_insert(0);
    *count += 1;
    job == "quick" && *count >= 3
}

/// What to watch, how often, and for how long.
#[derive(Serialize, Deserialize)]
pub struct Watch {
    /// The job to ask about.
    pub job: String,
    /// Time between checks.
    pub poll_every_ms: u64,
    /// When to give up, from the start.
    pub expire_after_ms: u64,
}

/// Checks the job until it is done or the watch expires.
#[orchestrator]
pub async fn monitor(
    ctx: OrchestrationContext,
    watch: Watch,
) -> Result<String, OrchestrationError> {
    // The expiry is fixed once, from the orchestration's (replay-safe) clock.
    let expiry = ctx.current_utc_datetime() + Duration::from_millis(watch.expire_after_ms);
    let every = Duration::from_millis(watch.poll_every_ms);
    let mut checks = 0;
    loop {
        checks += 1;
        if ctx.call_activity(job_is_done, watch.job.clone()).await? {
            return Ok(format!("job '{}' done after {checks} checks", watch.job));
        }
        let next = ctx.current_utc_datetime() + every;
        if next > expiry {
            return Ok(format!(
                "job '{}' still not done after {checks} checks: monitor expired",
                watch.job
            ));
        }
        ctx.create_timer(next).await;
    }
}

#[tokio::main]
async fn main() -> Result<(), durable_runtime::Error> {
    let runtime = Runtime::builder().sqlite("durable.db").start().await?;
    let client = runtime.client();
    let mut ids = Vec::new();
    for job in ["quick", "stuck"] {
        let watch = Watch {
            job: job.to_string(),
            poll_every_ms: 500,
            expire_after_ms: 3_000,
        };
        ids.push(client.start(monitor, watch).await?);
    }
    for id in ids {
        let status = client
            .wait_for_completion(&id, Duration::from_secs(25))
            .await?;
        println!(
            "{id}: {}: {}",
            status.runtime_status,
            status.output_as::<String>()?
        );
    }
    runtime.shutdown().await;
    Ok(())
}
