//! The escape hatch written on the function or a parameter, instead of inside the body: one
//! error each saying where it goes, never rustc's "cannot find module `durable`".
use durable_runtime::prelude::*;

#[orchestrator]
#[durable::allow_nondeterministic("the whole thing is fine")]
async fn whole(ctx: OrchestrationContext) -> Result<u32, OrchestrationError> {
    let _ = &ctx;
    Ok(1)
}

#[orchestrator]
async fn parameter(
    #[durable::allow_nondeterministic("the context")] ctx: OrchestrationContext,
) -> Result<u32, OrchestrationError> {
    let _ = &ctx;
    Ok(1)
}

#[activity]
#[durable::allow_nondeterministic("activities may do anything")]
async fn act(n: u32) -> u32 {
    n
}

fn main() {}
