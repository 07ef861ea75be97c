use durable_runtime::prelude::*;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

#[orchestrator]
async fn workflow(ctx: OrchestrationContext) -> Result<u64, OrchestrationError> {
    let _ = &ctx;
    let state = RandomState::new();
    let _other = std::hash::RandomState::default();
    Ok(state.hash_one("key"))
}

fn main() {}
