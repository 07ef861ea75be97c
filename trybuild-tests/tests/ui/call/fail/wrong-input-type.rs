use durable_runtime::prelude::*;

#[activity]
async fn say_hello(city: String) -> String {
    format!("Hello {city}!")
}

#[orchestrator]
async fn workflow(ctx: OrchestrationContext) -> Result<String, OrchestrationError> {
    Ok(ctx.call_activity(say_hello, 42).await?)
}

fn main() {}
