use std::collections::HashMap;
use durable_runtime::prelude::*;

#[orchestrator]
async fn workflow(ctx: OrchestrationContext) -> Result<(), OrchestrationError> {
    let _ = &ctx;
    let mut totals = HashMap::new();
    totals.insert("a", 1);
    for (name, total) in &totals {
        let _ = (name, total);
    }
    Ok(())
}

fn main() {}
