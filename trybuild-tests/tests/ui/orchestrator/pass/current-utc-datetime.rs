//! Instead of the wall clock: the step's recorded time.
#![deny(warnings)]
use durable_runtime::prelude::*;

#[orchestrator]
async fn workflow(ctx: OrchestrationContext) -> Result<(), OrchestrationError> {
    let now = ctx.current_utc_datetime();
    let _deadline = now + Duration::from_secs(3600);
    Ok(())
}

fn main() {}
