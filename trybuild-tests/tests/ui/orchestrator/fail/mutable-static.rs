static mut COUNTER: u32 = 0;

use durable_runtime::prelude::*;

#[orchestrator]
async fn workflow(ctx: OrchestrationContext) -> Result<(), OrchestrationError> {
    let _ = &ctx;
    unsafe { COUNTER += 1 };
    Ok(())
}

fn main() {}
