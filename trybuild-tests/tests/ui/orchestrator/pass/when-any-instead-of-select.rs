//! Instead of an unbiased select: a race decided by history order.
#![deny(warnings)]
use durable_runtime::prelude::*;

#[activity]
async fn work(n: u32) -> u32 {
    n + 1
}

#[orchestrator]
async fn workflow(ctx: OrchestrationContext) -> Result<u32, OrchestrationError> {
    let (_index, first) = ctx
        .when_any(vec![ctx.call_activity(work, 1), ctx.call_activity(work, 2)])
        .await;
    match ctx.when_any2(ctx.call_activity(work, 3), ctx.sleep(Duration::from_secs(5))).await {
        Either::Left(result) => Ok(first? + result?),
        Either::Right(()) => Ok(first?),
    }
}

fn main() {}
