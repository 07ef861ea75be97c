use tokio::time::sleep as nap;
use durable_runtime::prelude::*;

#[orchestrator]
async fn workflow(ctx: OrchestrationContext) -> Result<(), OrchestrationError> {
    let _ = &ctx;
    nap(Duration::from_millis(10)).await;
    Ok(())
}

fn main() {}
