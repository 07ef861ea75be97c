use std::collections::HashSet;
use durable_runtime::prelude::*;

#[orchestrator]
async fn workflow(ctx: OrchestrationContext) -> Result<(), OrchestrationError> {
    let _ = &ctx;
    let seen: HashSet<u32> = HashSet::new();
    let _first = seen.iter().next();
    Ok(())
}

fn main() {}
