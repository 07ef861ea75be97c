use durable_runtime::prelude::*;

#[activity]
async fn work() -> u32 {
    1
}

#[orchestrator]
async fn workflow(ctx: OrchestrationContext) -> Result<(), OrchestrationError> {
    let _ = tokio::time::timeout(Duration::from_secs(5), ctx.call_activity(work, ())).await;
    Ok(())
}

fn main() {}
