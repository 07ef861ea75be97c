use durable_runtime::prelude::*;

#[orchestrator]
async fn workflow(ctx: OrchestrationContext, name: &str) -> Result<(), OrchestrationError> {
    let _ = (ctx, name);
    Ok(())
}

fn main() {}
