// Through the extern crate's name, absolute or renamed.
use durable_runtime::prelude::*;
use rand as dice;

#[orchestrator]
async fn workflow(ctx: OrchestrationContext) -> Result<(), OrchestrationError> {
    let _ = &ctx;
    let _a: u8 = ::rand::random();
    let _b: u8 = dice::random();
    let _c = ::std::process::id();
    Ok(())
}

fn main() {}
