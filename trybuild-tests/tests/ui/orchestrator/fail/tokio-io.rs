use durable_runtime::prelude::*;

#[orchestrator]
async fn workflow(ctx: OrchestrationContext) -> Result<(), OrchestrationError> {
    let _ = &ctx;
    let _input = tokio::io::stdin();
    {
        use tokio::io::*;
        let _output = stdout();
    }
    Ok(())
}

fn main() {}
