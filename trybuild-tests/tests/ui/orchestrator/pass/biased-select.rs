//! A biased tokio::select! polls in the written order, which is deterministic.
#![deny(warnings)]
use durable_runtime::prelude::*;

#[orchestrator]
async fn workflow(ctx: OrchestrationContext) -> Result<(), OrchestrationError> {
    tokio::select! {
        biased;
        _ = ctx.sleep(Duration::from_secs(1)) => {}
        _ = ctx.sleep(Duration::from_secs(2)) => {}
    }
    Ok(())
}

fn main() {}
