//! The escape hatch skips the check for one statement, and needs a reason.
use durable_runtime::prelude::*;

#[orchestrator]
async fn workflow(ctx: OrchestrationContext) -> Result<(), OrchestrationError> {
    #[durable::allow_nondeterministic("only measures how long this step took, for a log line")]
    let started = std::time::Instant::now();
    if !ctx.is_replaying() {
        #[durable::allow_nondeterministic("the log line never influences a decision")]
        println!("step took {:?}", started.elapsed());
    }
    Ok(())
}

fn main() {}
