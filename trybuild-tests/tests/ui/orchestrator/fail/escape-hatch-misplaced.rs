use durable_runtime::prelude::*;

#[orchestrator]
async fn workflow(ctx: OrchestrationContext) -> Result<u32, OrchestrationError> {
    let _ = &ctx;
    let double = |#[durable::allow_nondeterministic("not here")] n: u32| n * 2;
    Ok(double(2))
}

fn main() {}
