use durable_runtime::prelude::*;

#[orchestrator]
async fn workflow(ctx: OrchestrationContext) -> Result<(), OrchestrationError> {
    let _ = &ctx;
    use std::time::SystemTime as Clock;
    let _t = Clock::now();
    Ok(())
}

fn main() {}
