//! Orchestrators in several modules of one file: each body is resolved in its own module, also
//! when another attribute (`#[tracing::instrument]`) has rewritten the body before
//! `#[orchestrator]` sees it, and for an orchestrator declared inside a function.
use durable_runtime::prelude::*;

#[orchestrator]
async fn at_the_root(ctx: OrchestrationContext) -> Result<u32, OrchestrationError> {
    let _ = &ctx;
    Ok(1)
}

mod flows {
    use durable_runtime::prelude::*;
    use rand::random as pick;

    #[tracing::instrument(skip(ctx))]
    #[orchestrator]
    pub async fn traced(ctx: OrchestrationContext) -> Result<u32, OrchestrationError> {
        let _ = &ctx;
        let n: u32 = pick();
        Ok(n)
    }

    pub fn nested() {
        #[orchestrator]
        async fn inner(ctx: OrchestrationContext) -> Result<u32, OrchestrationError> {
            let _ = &ctx;
            let n: u32 = pick();
            Ok(n + 1)
        }
    }
}

fn main() {}
