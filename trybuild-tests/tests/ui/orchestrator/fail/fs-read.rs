use durable_runtime::prelude::*;

#[orchestrator]
async fn workflow(ctx: OrchestrationContext) -> Result<(), OrchestrationError> {
    let _ = &ctx;
    let _config = std::fs::read_to_string("config.toml");
    Ok(())
}

fn main() {}
