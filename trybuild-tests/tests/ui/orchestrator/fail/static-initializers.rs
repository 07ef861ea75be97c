use durable_runtime::prelude::*;
use std::sync::LazyLock;
use std::time::SystemTime;

static BOOTED: LazyLock<SystemTime> = LazyLock::new(SystemTime::now);

#[orchestrator]
async fn workflow(ctx: OrchestrationContext) -> Result<(), OrchestrationError> {
    let _ = &ctx;
    static STARTED: LazyLock<SystemTime> = LazyLock::new(SystemTime::now);
    let _first = *STARTED;
    let _boot = *BOOTED;
    Ok(())
}

fn main() {}
