use durable_runtime::prelude::*;

#[orchestrator]
async fn workflow(ctx: OrchestrationContext) -> Result<(), OrchestrationError> {
    let _ = &ctx;
    std::thread::sleep(Duration::from_millis(10));
    Ok(())
}

fn main() {}
