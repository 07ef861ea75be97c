use durable_runtime::prelude::*;
use tokio::time::interval;

#[orchestrator]
async fn workflow(ctx: OrchestrationContext) -> Result<(), OrchestrationError> {
    let _ = &ctx;
    let mut ticks = interval(Duration::from_secs(60));
    ticks.tick().await;
    Ok(())
}

fn main() {}
