// The user's own module is followed: what it re-exports from std is std's.
use durable_runtime::prelude::*;

mod clock {
    pub use std::time::Instant;
}

#[orchestrator]
async fn workflow(ctx: OrchestrationContext) -> Result<(), OrchestrationError> {
    let _ = &ctx;
    let _t = clock::Instant::now();
    Ok(())
}

fn main() {}
