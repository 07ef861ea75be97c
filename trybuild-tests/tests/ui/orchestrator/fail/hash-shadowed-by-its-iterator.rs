use durable_runtime::prelude::*;
use std::collections::HashMap;

#[orchestrator]
async fn workflow(ctx: OrchestrationContext) -> Result<Vec<(u32, u32)>, OrchestrationError> {
    let _ = &ctx;
    let pairs = HashMap::from([(1, 2), (3, 4)]);
    // The initializer is checked before the new `pairs` takes the name.
    let pairs = pairs.into_iter();
    Ok(pairs.collect())
}

fn main() {}
