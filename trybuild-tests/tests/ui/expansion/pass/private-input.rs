//! A `pub(crate)` activity may take a type private to its module, as a plain function may (at
//! most the `private_interfaces` warning a plain function gets).
use durable_runtime::prelude::*;

mod orders {
    use durable_runtime::prelude::*;
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize)]
    struct Draft {
        lines: u32,
    }

    #[activity]
    pub(crate) async fn submit(draft: Draft) -> u32 {
        draft.lines
    }

    #[orchestrator]
    pub(crate) async fn ordering(
        ctx: OrchestrationContext,
        lines: u32,
    ) -> Result<u32, OrchestrationError> {
        Ok(ctx.call_activity(submit, Draft { lines }).await?)
    }
}

#[allow(dead_code)]
async fn start(client: Client) -> Result<String, durable_runtime::Error> {
    client.start(orders::ordering, 3).await
}

fn main() {}
