// A stand-in for the reqwest crate: the check matches the path, not the crate.
mod reqwest {
    pub async fn get(_url: &str) {}
}

use durable_runtime::prelude::*;

#[orchestrator]
async fn workflow(ctx: OrchestrationContext) -> Result<(), OrchestrationError> {
    let _ = &ctx;
    reqwest::get("https://example.com").await;
    Ok(())
}

fn main() {}
