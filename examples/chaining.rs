//! Function chaining: three activities in sequence, each result durable before the next runs.
//!
//! Run: `cargo run --release --example chaining` (the store is `durable.db` in the working
//! directory; kill the program midway and run it again: finished steps are not repeated).
//! `tests/chaining.rs` replays a recorded history against this code, to catch a change that
//! would break instances in flight.

use durable_runtime::prelude::*;

/// Greets a city.
#[activity]
pub async fn say_hello(city: String) -> Result<String, ActivityError> {
    Ok(format!("Hello {city}!"))
}

/// Greets three cities, one after another.
#[orchestrator]
pub async fn hello_sequence(ctx: OrchestrationContext) -> Result<Vec<String>, OrchestrationError> {
    let mut out = Vec::new();
    for city in ["Tokyo", "Seattle", "London"] {
        out.push(ctx.call_activity(say_hello, city.to_string()).await?);
    }
    Ok(out)
}

#[tokio::main]
async fn main() -> Result<(), durable_runtime::Error> {
    // Every #[orchestrator] / #[activity] in the binary is found through `inventory`.
    let runtime = Runtime::builder().sqlite("durable.db").start().await?;
    let client = runtime.client();
    let id = client.start(hello_sequence, ()).await?;
    let status = client
        .wait_for_completion(&id, Duration::from_secs(30))
        .await?;
    println!("instance {id}: {}", status.runtime_status);
    for greeting in status.output_as::<Vec<String>>()? {
        println!("{greeting}");
    }
    runtime.shutdown().await;
    Ok(())
}
