//! Instead of random numbers and ids: values derived from the instance id.
#![deny(warnings)]
use durable_runtime::prelude::*;

#[orchestrator]
async fn workflow(ctx: OrchestrationContext) -> Result<(), OrchestrationError> {
    let _id: durable_runtime::Uuid = ctx.new_guid();
    let _roll = ctx.random_u64() % 6;
    Ok(())
}

fn main() {}
