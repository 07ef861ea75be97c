use durable_runtime::prelude::*;

#[orchestrator]
async fn workflow(ctx: OrchestrationContext) -> Result<(), OrchestrationError> {
    let _ = &ctx;
    thread_local! { static SEEN: std::cell::Cell<u32> = const { std::cell::Cell::new(0) }; }
    Ok(())
}

fn main() {}
