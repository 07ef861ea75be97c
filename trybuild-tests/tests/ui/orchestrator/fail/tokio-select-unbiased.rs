use durable_runtime::prelude::*;

#[orchestrator]
async fn workflow(ctx: OrchestrationContext) -> Result<(), OrchestrationError> {
    let _ = &ctx;
    let a = ctx.sleep(Duration::from_secs(1));
    let b = ctx.sleep(Duration::from_secs(2));
    tokio::select! {
        _ = a => {}
        _ = b => {}
    }
    Ok(())
}

fn main() {}
