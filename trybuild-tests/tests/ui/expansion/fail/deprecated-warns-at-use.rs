//! A deprecated activity warns where it is used, naming it, and nowhere else.
#![deny(deprecated)]
use durable_runtime::prelude::*;

#[deprecated(note = "use `greeting`")]
#[activity]
async fn old_greeting(name: String) -> String {
    name
}

#[orchestrator]
async fn workflow(ctx: OrchestrationContext) -> Result<String, OrchestrationError> {
    Ok(ctx.call_activity(old_greeting, "Ada".to_string()).await?)
}

fn main() {}
