use durable_runtime::prelude::*;

#[orchestrator(nmae = "renamed")]
async fn workflow(ctx: OrchestrationContext) -> Result<(), OrchestrationError> {
    let _ = ctx;
    Ok(())
}

fn main() {}
