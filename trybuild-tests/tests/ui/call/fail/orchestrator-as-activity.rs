use durable_runtime::prelude::*;

#[orchestrator]
async fn child(ctx: OrchestrationContext, n: u32) -> u32 {
    let _ = ctx;
    n
}

#[orchestrator]
async fn parent(ctx: OrchestrationContext) -> Result<u32, OrchestrationError> {
    Ok(ctx.call_activity(child, 1).await?)
}

fn main() {}
