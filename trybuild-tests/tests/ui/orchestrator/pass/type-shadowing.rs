//! Generated code uses absolute paths: user items named like std's do not break it.
#![deny(warnings)]
use durable_runtime::prelude::*;

#[allow(dead_code)]
type Result<T> = std::result::Result<T, String>;
#[allow(dead_code)]
struct Box;
#[allow(dead_code)]
struct Option;
#[allow(dead_code)]
struct Vec;

#[activity]
async fn shadowed(n: u32) -> Result<u32> {
    Ok(n)
}

#[orchestrator]
async fn workflow(ctx: OrchestrationContext) -> Result<u32> {
    ctx.call_activity(shadowed, 1).await.map_err(|e| e.to_string())
}

fn main() {}
