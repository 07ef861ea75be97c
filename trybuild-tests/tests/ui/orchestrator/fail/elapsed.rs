use durable_runtime::prelude::*;
use std::time::SystemTime;

#[orchestrator]
async fn workflow(ctx: OrchestrationContext) -> Result<(), OrchestrationError> {
    let _since_epoch = SystemTime::UNIX_EPOCH.elapsed();
    let started = ctx.current_utc_datetime();
    let _took = started.elapsed();
    #[durable::allow_nondeterministic("only logged")]
    let measured = std::time::Instant::now();
    println!("{:?}", measured.elapsed());
    Ok(())
}

fn main() {}
