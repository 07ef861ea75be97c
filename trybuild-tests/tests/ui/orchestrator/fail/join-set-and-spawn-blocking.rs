use durable_runtime::prelude::*;
use tokio::task::JoinSet;

#[orchestrator]
async fn workflow(ctx: OrchestrationContext) -> Result<(), OrchestrationError> {
    let _ = &ctx;
    let mut set = JoinSet::new();
    set.spawn(async { 1 });
    let _ = tokio::task::spawn_blocking(|| 2).await;
    Ok(())
}

fn main() {}
