use durable_runtime::prelude::*;

#[orchestrator]
async fn workflow<T: Default>(ctx: OrchestrationContext) -> Result<(), OrchestrationError> {
    let _ = (ctx, T::default());
    Ok(())
}

fn main() {}
