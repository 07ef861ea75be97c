// A glob of a forbidden module refuses its known items where they are used, once each, and
// nothing else: `ctx`, `Ok` and `Duration` are not reported.
use durable_runtime::prelude::*;
use rand::prelude::*;

#[orchestrator]
async fn workflow(ctx: OrchestrationContext) -> Result<u32, OrchestrationError> {
    ctx.sleep(Duration::from_secs(1)).await;
    let roll = thread_rng().gen_range(0..6);
    let coin: u32 = random();
    Ok(roll + coin)
}

fn main() {}
