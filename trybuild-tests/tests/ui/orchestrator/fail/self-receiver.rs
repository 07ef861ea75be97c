use durable_runtime::prelude::*;

struct Service;

impl Service {
    #[orchestrator]
    async fn workflow(&self, ctx: OrchestrationContext) -> Result<(), OrchestrationError> {
        let _ = ctx;
        Ok(())
    }
}

fn main() {}
