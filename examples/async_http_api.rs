//! The async HTTP API pattern: a long-running orchestration started over HTTP answers at once
//! with `202 Accepted` and a `Location` to poll, which answers `202` while it runs and `200`
//! with the output once it is done. The server is the Durable Functions HTTP API
//! (`durable_runtime::http`), so its clients and scripts work against it unchanged.
//!
//! Run: `cargo run --example async_http_api` (serves on 127.0.0.1:7071 until Ctrl-C; the
//! store is `async_http_api.db` in the working directory: the instance ids below can be used
//! once per store, so delete it to run the session again). Then, in another terminal:
//!
//! ```sh
//! BASE=http://127.0.0.1:7071/runtime/webhooks/durabletask
//!
//! # Start: 202, with Location (the status URL), Retry-After and the management URLs.
//! curl -si -X POST $BASE/orchestrators/hello_cities/demo-1 \
//!      -H 'Content-Type: application/json' -d '["Tokyo", "Seattle", "London"]'
//!
//! # Poll the Location until it answers 200 (202 while running), then show the output.
//! until [ "$(curl -s -o /dev/null -w '%{http_code}' $BASE/instances/demo-1)" = 200 ]; do sleep 1; done
//! curl -s "$BASE/instances/demo-1?showHistory=true&showHistoryOutput=true"
//!
//! # An approval waits for the event `approved`: raise it (202), and it completes.
//! curl -s -X POST $BASE/orchestrators/approval/demo-2 \
//!      -H 'Content-Type: application/json' -d '"a new laptop"'
//! curl -si -X POST $BASE/instances/demo-2/raiseEvent/approved \
//!      -H 'Content-Type: application/json' -d 'true'
//! until [ "$(curl -s -o /dev/null -w '%{http_code}' $BASE/instances/demo-2)" = 200 ]; do sleep 1; done
//! curl -s $BASE/instances/demo-2
//!
//! # Another one is terminated instead (202), and shows as Terminated with the reason.
//! curl -s -X POST $BASE/orchestrators/approval/demo-3 \
//!      -H 'Content-Type: application/json' -d '"a yacht"'
//! curl -si -X POST "$BASE/instances/demo-3/terminate?reason=too%20expensive"
//! curl -s $BASE/instances/demo-3
//!
//! # Everything, listed.
//! curl -s "$BASE/instances?top=10"
//!
//! # Entities: signal the counter `visits` (202), read its state (200; 404 before it exists),
//! # list the counters with their states.
//! curl -si -X POST "$BASE/entities/counter/visits?op=add" \
//!      -H 'Content-Type: application/json' -d '5'
//! curl -s $BASE/entities/counter/visits
//! curl -s "$BASE/entities/counter?fetchState=true"
//! ```
//!
//! The `durable` CLI drives the same API: `durable --url http://127.0.0.1:7071 list`.

use durable_runtime::http::HttpOptions;
use durable_runtime::prelude::*;

#[activity]
async fn greet(city: String) -> String {
    // Slow on purpose, so that polling sees the instance running for a while.
    tokio::time::sleep(Duration::from_secs(1)).await;
    format!("Hello {city}!")
}

/// Greets each city in turn (a second each).
#[orchestrator]
async fn hello_cities(
    ctx: OrchestrationContext,
    cities: Vec<String>,
) -> Result<Vec<String>, OrchestrationError> {
    let mut greetings = Vec::new();
    for city in cities {
        greetings.push(ctx.call_activity(greet, city).await?);
    }
    Ok(greetings)
}

/// Waits for a person's answer, the event `approved` (`true` or `false`).
#[orchestrator]
async fn approval(ctx: OrchestrationContext, what: String) -> Result<String, OrchestrationError> {
    let approved: bool = ctx.wait_for_event("approved").await?;
    Ok(if approved {
        format!("{what}: approved")
    } else {
        format!("{what}: rejected")
    })
}

/// A counter entity: `add` adds its input, `reset` sets it back to zero.
#[entity]
async fn counter(ctx: &mut EntityContext<i64>) -> Result<(), EntityError> {
    match ctx.operation_name() {
        "add" => {
            let amount: i64 = ctx.input()?;
            *ctx.state_mut() += amount;
        }
        "reset" => *ctx.state_mut() = 0,
        other => return Err(EntityError::new(format!("no operation '{other}'"))),
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let runtime = Runtime::builder()
        .sqlite("async_http_api.db")
        .start()
        .await?;
    let server = runtime
        .serve_http("127.0.0.1:7071", HttpOptions::new())
        .await?;
    println!(
        "serving the Durable Functions HTTP API on http://{}/runtime/webhooks/durabletask \
         (Ctrl-C to stop)",
        server.local_addr()
    );
    tokio::signal::ctrl_c().await?;
    println!("stopping");
    server.shutdown().await;
    runtime.shutdown().await;
    Ok(())
}
