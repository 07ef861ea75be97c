// A stand-in for the rand crate: the check matches the path, not the crate.
mod rand {
    pub fn random() -> u8 {
        4
    }
}

use durable_runtime::prelude::*;

#[orchestrator]
async fn workflow(ctx: OrchestrationContext) -> Result<(), OrchestrationError> {
    let _ = &ctx;
    let _n = rand::random();
    Ok(())
}

fn main() {}
