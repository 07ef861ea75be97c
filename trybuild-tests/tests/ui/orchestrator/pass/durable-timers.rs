//! Instead of sleeping: durable timers.
#![deny(warnings)]
use durable_runtime::prelude::*;

#[orchestrator]
async fn workflow(ctx: OrchestrationContext) -> Result<(), OrchestrationError> {
    ctx.sleep(Duration::from_secs(1)).await;
    ctx.create_timer(ctx.current_utc_datetime() + Duration::from_secs(1)).await;
    Ok(())
}

fn main() {}
