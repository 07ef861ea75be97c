use durable_runtime::prelude::*;

#[orchestrator]
async fn workflow(ctx: OrchestrationContext) -> Result<(), OrchestrationError> {
    let _ = &ctx;
    let mut a = futures::FutureExt::fuse(ctx.sleep(Duration::from_secs(1)));
    let mut b = futures::FutureExt::fuse(ctx.sleep(Duration::from_secs(2)));
    futures::select! {
        _ = a => {}
        _ = b => {}
    }
    Ok(())
}

fn main() {}
