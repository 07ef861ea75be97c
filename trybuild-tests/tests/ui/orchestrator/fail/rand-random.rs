// `rand` is the extern crate (a stand-in with the same paths, see trybuild-tests/stubs): the
// check resolves the path through the crate name. A `mod rand` in this file would be the user's
// own module, and allowed.
use durable_runtime::prelude::*;

#[orchestrator]
async fn workflow(ctx: OrchestrationContext) -> Result<(), OrchestrationError> {
    let _ = &ctx;
    let _n: u8 = rand::random();
    Ok(())
}

fn main() {}
