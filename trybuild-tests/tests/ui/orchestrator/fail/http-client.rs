// `reqwest` is the extern crate (a stand-in with the same paths, see trybuild-tests/stubs): the
// check resolves the path through the crate name. A `mod reqwest` in this file would be the user's
// own module, and allowed.
use durable_runtime::prelude::*;

#[orchestrator]
async fn workflow(ctx: OrchestrationContext) -> Result<(), OrchestrationError> {
    let _ = &ctx;
    reqwest::get("https://example.com").await;
    Ok(())
}

fn main() {}
