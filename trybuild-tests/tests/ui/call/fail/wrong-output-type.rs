use durable_runtime::prelude::*;

#[activity]
async fn say_hello(city: String) -> String {
    format!("Hello {city}!")
}

#[orchestrator]
async fn workflow(ctx: OrchestrationContext) -> Result<u32, OrchestrationError> {
    let count: u32 = ctx.call_activity(say_hello, "Oslo".to_string()).await?;
    Ok(count)
}

fn main() {}
