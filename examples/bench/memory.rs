//! Memory: RSS read from `/proc/self/status`, and the workloads that measure it (`mem`: idle
//! instances in memory; `payload`: one large payload's round trip).

use super::{Bench, BoxError, fresh_runtime, idle, round_trip, start_all};
use durable_runtime::prelude::*;
use serde_json::json;
use std::time::Instant;

pub(crate) async fn mem(bench: &Bench) -> Result<(), BoxError> {
    let instances = bench.scale(10_000, 1_000);
    let (_dir, runtime) = fresh_runtime().await?;
    let client = runtime.client();
    let before = current_rss_mib();
    // Started 500 at a time, as a steady stream of callers would.
    for _ in 0..instances / 500 {
        start_all(&client, idle, (), 500).await?;
    }
    // Wait until every instance has run its first step and is idle, waiting on its event.
    loop {
        let page = client
            .list(&durable_runtime::InstanceQuery {
                statuses: vec![RuntimeStatus::Pending],
                page_size: 1,
                ..Default::default()
            })
            .await?;
        if page.instances.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rss = current_rss_mib();
    bench.report(
        json!({"workload": "mem", "idle_instances": instances, "rss_mib": rss, "rss_before_mib": before,
               "waiting_on": "wait_for_event"}),
        format!("| mem | {instances} idle instances on wait_for_event | | RSS {rss:.1} MiB (runtime alone {before:.1} MiB) |"),
    );
    runtime.shutdown().await;
    Ok(())
}

/// One large payload through start, an activity's input and result, and the output: the peak
/// memory it costs, as a multiple of its size.
pub(crate) async fn payload(bench: &Bench) -> Result<(), BoxError> {
    let mib = bench.scale(64, 8) as usize;
    let size = mib * 1024 * 1024;
    let dir = tempfile::tempdir()?;
    let runtime = Runtime::builder()
        .sqlite(dir.path().join("bench.db"))
        .max_payload_size(2 * size)
        .start()
        .await?;
    let client = runtime.client();
    let text = "x".repeat(size);
    reset_peak_rss();
    let before = current_rss_mib();
    let started = Instant::now();
    let id = client.start(round_trip, text).await?;
    let status = client
        .wait_for_completion(&id, Duration::from_secs(600))
        .await?;
    let back: String = status.output_as()?;
    let elapsed = started.elapsed();
    if back.len() != size {
        return Err(format!("the round trip returned {} bytes, not {size}", back.len()).into());
    }
    drop((back, status));
    let peak = peak_rss_mib() - before;
    let multiple = peak / mib as f64;
    bench.report(
        json!({"workload": "payload", "payload_mib": mib, "peak_rss_over_payload": multiple,
               "peak_rss_growth_mib": peak, "seconds": elapsed.as_secs_f64()}),
        format!(
            "| payload | one {mib} MiB round trip (start, activity in and out, output) | {:.2} s | peak RSS +{peak:.0} MiB = {multiple:.1}x the payload |",
            elapsed.as_secs_f64()
        ),
    );
    runtime.shutdown().await;
    Ok(())
}

pub(crate) fn status_field_kib(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse::<f64>().ok()
}

pub(crate) fn current_rss_mib() -> f64 {
    status_field_kib("VmRSS:").unwrap_or(0.0) / 1024.0
}

pub(crate) fn peak_rss_mib() -> f64 {
    status_field_kib("VmHWM:").unwrap_or(0.0) / 1024.0
}

/// Resets the kernel's peak-RSS mark so each workload's peak is its own.
pub(crate) fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}
