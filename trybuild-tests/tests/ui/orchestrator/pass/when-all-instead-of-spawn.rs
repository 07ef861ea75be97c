//! Instead of spawning: activities in parallel.
#![deny(warnings)]
use durable_runtime::prelude::*;

#[activity]
async fn work(n: u32) -> u32 {
    n + 1
}

#[orchestrator]
async fn workflow(ctx: OrchestrationContext) -> Result<u32, OrchestrationError> {
    let mut total = 0;
    for result in ctx.when_all((0..3).map(|i| ctx.call_activity(work, i))).await {
        total += result?;
    }
    Ok(total)
}

fn main() {}
