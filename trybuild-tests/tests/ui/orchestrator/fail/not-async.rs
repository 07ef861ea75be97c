use durable_runtime::prelude::*;

#[orchestrator]
fn workflow(ctx: OrchestrationContext) -> Result<(), OrchestrationError> {
    let _ = ctx;
    Ok(())
}

fn main() {}
