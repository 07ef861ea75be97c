use durable_runtime::prelude::*;

#[orchestrator]
async fn workflow(ctx: OrchestrationContext) -> Result<(), OrchestrationError> {
    // A biased select is deterministic in which branch it takes, not in what its branches do.
    tokio::select! {
        biased;
        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        _ = ctx.sleep(Duration::from_secs(2)) => {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    Ok(())
}

fn main() {}
