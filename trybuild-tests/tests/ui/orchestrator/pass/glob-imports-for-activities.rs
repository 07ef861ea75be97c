//! Glob imports of forbidden modules, written at the top of the file for an activity, bring
//! only their known items into the orchestrator's scope: `ctx`, `Ok`, `Duration` and the
//! activity's name are not refused.
#![deny(warnings)]
use durable_runtime::prelude::*;
use rand::prelude::*;
use std::fs::*;
use tokio::time::*;

#[activity]
async fn roll() -> u32 {
    sleep(Duration::from_millis(1)).await;
    let _ = read_to_string("seed.txt");
    let _ = random::<u8>();
    thread_rng().gen_range(0..6)
}

#[orchestrator]
async fn workflow(ctx: OrchestrationContext) -> Result<u32, OrchestrationError> {
    let first = ctx.call_activity(roll, ()).await?;
    ctx.sleep(Duration::from_secs(1)).await;
    let second = ctx.call_activity(roll, ()).await?;
    Ok(first + second)
}

fn main() {}
