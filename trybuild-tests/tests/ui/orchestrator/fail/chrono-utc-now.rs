// A stand-in for the chrono crate: the check matches the path, not the crate.
mod chrono {
    pub struct Utc;
    impl Utc {
        pub fn now() {}
    }
}

use durable_runtime::prelude::*;

#[orchestrator]
async fn workflow(ctx: OrchestrationContext) -> Result<(), OrchestrationError> {
    let _ = &ctx;
    let _t = chrono::Utc::now();
    Ok(())
}

fn main() {}
