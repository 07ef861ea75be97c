//! Fan-out/fan-in: schedule N activities at once, wait for all, sum the results.
//!
//! Run: `cargo run --release --example fan_out_fan_in -- 1000` (N defaults to 100).

use durable_runtime::prelude::*;

#[activity]
async fn double(n: u64) -> u64 {
    n * 2
}

#[orchestrator]
async fn sum_of_doubles(ctx: OrchestrationContext, n: u64) -> Result<u64, OrchestrationError> {
    let tasks = (0..n).map(|i| ctx.call_activity(double, i));
    let mut sum = 0;
    for result in ctx.when_all(tasks).await {
        sum += result?;
    }
    Ok(sum)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: u64 = match std::env::args().nth(1) {
        Some(arg) => arg
            .parse()
            .map_err(|err| format!("N must be a whole number, got {arg:?}: {err}"))?,
        None => 100,
    };
    let runtime = Runtime::builder().sqlite("durable.db").start().await?;
    let client = runtime.client();
    let started = std::time::Instant::now();
    let id = client.start(sum_of_doubles, n).await?;
    let status = client
        .wait_for_completion(&id, Duration::from_secs(300))
        .await?;
    let elapsed = started.elapsed();
    let sum: u64 = status.output_as()?;
    println!("sum of 2*i for i < {n} = {sum} ({n} activities in {elapsed:.2?}, instance {id})");
    runtime.shutdown().await;
    Ok(())
}
