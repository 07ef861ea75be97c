use durable_runtime::prelude::*;

fn say_hello(city: String) -> String {
    format!("Hello {city}!")
}

#[orchestrator]
async fn workflow(ctx: OrchestrationContext) -> Result<String, OrchestrationError> {
    Ok(ctx.call_activity(say_hello, "Oslo".to_string()).await?)
}

fn main() {}
