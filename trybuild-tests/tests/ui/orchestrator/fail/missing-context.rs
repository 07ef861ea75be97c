use durable_runtime::prelude::*;

#[orchestrator]
async fn workflow(order: u32) -> Result<(), OrchestrationError> {
    let _ = order;
    Ok(())
}

fn main() {}
