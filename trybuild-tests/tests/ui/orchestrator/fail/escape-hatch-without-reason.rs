use durable_runtime::prelude::*;

#[orchestrator]
async fn workflow(ctx: OrchestrationContext) -> Result<(), OrchestrationError> {
    let _ = &ctx;
    #[durable::allow_nondeterministic]
    let _t = std::time::Instant::now();
    Ok(())
}

fn main() {}
