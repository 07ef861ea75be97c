use durable_runtime::prelude::*;

#[orchestrator]
async fn workflow(ctx: OrchestrationContext) -> Result<(), OrchestrationError> {
    let _ = &ctx;
    let _id = durable_runtime::Uuid::new_v4();
    Ok(())
}

fn main() {}
