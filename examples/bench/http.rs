//! W8, over HTTP: instances started and completed through the Durable Functions HTTP API.
//! Concurrent clients each take the next instance, start it (`POST /orchestrators/...`) and
//! poll its `Location` until it answers 200; a fresh runtime serves the API on an ephemeral
//! loopback port. Reported: instances/s, and p50/p99 of start → completed seen by the client.

use durable_runtime::http::HttpOptions;
use durable_runtime::prelude::*;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

type BoxError = Box<dyn std::error::Error>;

/// How long a client waits between two polls of a running instance. The API suggests 10 s
/// (`Retry-After`); a benchmark polls far more often, so the latency measured is the
/// runtime's, not the poll interval's.
const POLL_INTERVAL: Duration = Duration::from_millis(2);

#[activity]
async fn w8_greet(city: String) -> String {
    format!("Hello {city}!")
}

/// One activity.
#[orchestrator]
async fn w8_single(ctx: OrchestrationContext, city: String) -> Result<String, OrchestrationError> {
    Ok(ctx.call_activity(w8_greet, city).await?)
}

/// Runs W8: `instances` instances of one activity each, from `clients` concurrent clients;
/// `report` gets the JSON row and the table row.
pub async fn w8(
    instances: u64,
    clients: usize,
    report: impl Fn(Value, String),
) -> Result<(), BoxError> {
    let dir = tempfile::tempdir()?;
    let runtime = Runtime::builder()
        .sqlite(dir.path().join("bench.db"))
        .start()
        .await?;
    let server = runtime
        .serve_http("127.0.0.1:0", HttpOptions::new())
        .await?;
    let base = format!(
        "http://{}{}",
        server.local_addr(),
        durable_runtime::http::BASE_PATH
    );
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let (http, base, next) = (reqwest::Client::new(), base.clone(), next.clone());
        tasks.spawn(async move { client(http, base, next, instances).await });
    }
    let mut latencies = Vec::with_capacity(instances as usize);
    while let Some(result) = tasks.join_next().await {
        latencies.extend(result??);
    }
    let seconds = started.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    let percentile = |p: f64| {
        let index = ((latencies.len() as f64 - 1.0) * p).round() as usize;
        latencies.get(index).copied().unwrap_or(0.0)
    };
    let (p50, p99) = (percentile(0.50), percentile(0.99));
    let rate = instances as f64 / seconds;
    report(
        json!({"workload": "w8", "instances": instances, "clients": clients, "seconds": seconds,
               "instances_per_s": rate, "p50_ms": p50, "p99_ms": p99}),
        format!(
            "| W8 over HTTP | {instances} instances x 1 activity, {clients} HTTP clients | {seconds:.3} s | {rate:.0} instances/s, start → completed seen p50 {p50:.2} ms, p99 {p99:.2} ms |"
        ),
    );
    server.shutdown().await;
    runtime.shutdown().await;
    Ok(())
}

/// One client: takes instances until none is left; returns each one's start → completed
/// seen, in ms.
async fn client(
    http: reqwest::Client,
    base: String,
    next: Arc<AtomicU64>,
    instances: u64,
) -> Result<Vec<f64>, String> {
    let mut latencies = Vec::new();
    loop {
        let n = next.fetch_add(1, Ordering::Relaxed);
        if n >= instances {
            return Ok(latencies);
        }
        let started = Instant::now();
        let response = http
            .post(format!("{base}/orchestrators/w8_single"))
            .json(&format!("city-{n}"))
            .send()
            .await
            .map_err(|err| err.to_string())?;
        if response.status() != reqwest::StatusCode::ACCEPTED {
            return Err(format!("start answered {}", response.status()));
        }
        let location = response
            .headers()
            .get("location")
            .and_then(|value| value.to_str().ok())
            .ok_or("a start without Location")?
            .to_string();
        loop {
            let polled = http
                .get(&location)
                .send()
                .await
                .map_err(|err| err.to_string())?;
            match polled.status() {
                reqwest::StatusCode::OK => {
                    let body: Value = polled.json().await.map_err(|err| err.to_string())?;
                    if body["runtimeStatus"] != "Completed" {
                        return Err(format!("instance {n} ended {}", body["runtimeStatus"]));
                    }
                    break;
                }
                reqwest::StatusCode::ACCEPTED => tokio::time::sleep(POLL_INTERVAL).await,
                other => return Err(format!("polling answered {other}")),
            }
        }
        latencies.push(started.elapsed().as_secs_f64() * 1000.0);
    }
}
