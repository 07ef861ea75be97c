use std::time::Instant;
use durable_runtime::prelude::*;

#[orchestrator]
async fn workflow(ctx: OrchestrationContext) -> Result<(), OrchestrationError> {
    let _ = &ctx;
    let _t = Instant::now();
    Ok(())
}

fn main() {}
