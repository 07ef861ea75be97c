//! continue_as_new, set_custom_status and the replay-safe logging macros are deterministic:
//! the checker accepts them, whatever the orchestrator's return type.
#![deny(warnings)]
use durable_runtime::prelude::*;

#[orchestrator]
async fn eternal(ctx: OrchestrationContext, round: u64) -> Result<u64, OrchestrationError> {
    durable_runtime::info!(ctx, round, "round {round} starts");
    durable_runtime::warn!(ctx, "plain message");
    durable_runtime::debug!(ctx, value = %round, "with a display field");
    ctx.set_custom_status(format!("round {round}"))?;
    ctx.sleep(Duration::from_secs(60)).await;
    if round == 10 {
        return Ok(round);
    }
    ctx.continue_as_new(eternal, round + 1).await
}

#[orchestrator]
async fn plain_output(ctx: OrchestrationContext, n: u32) -> String {
    if ctx.is_replaying() {
        durable_runtime::trace!(ctx, "never printed on replay");
    }
    ctx.continue_as_new(plain_output, n + 1)
        .discard_unprocessed_events()
        .await
}

fn main() {}
