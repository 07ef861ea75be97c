use durable_runtime::prelude::*;

#[orchestrator]
async fn workflow(ctx: OrchestrationContext) -> Result<(), OrchestrationError> {
    let _ = &ctx;
    let _home = std::env::var("HOME");
    Ok(())
}

fn main() {}
