//! Stateful singleton: an eternal counter fed by events, which continues as new every few
//! events so that its history stays short however long it lives.
//!
//! Run: `cargo run --release --example stateful_singleton -- 500` (the number of events sent;
//! the store is `durable.db` in the working directory). The client raises `add` events, then
//! `stop`; the counter publishes its value as its custom status while it runs, and returns its
//! final state. The program prints the value and the length of the history the store holds:
//! only the last generation's, a few dozen events, instead of one per event ever received.

use durable_runtime::prelude::*;
use serde::{Deserialize, Serialize};

/// How many events one generation takes before it continues as new.
const EVENTS_PER_GENERATION: u32 = 10;

/// What the counter carries from one generation to the next.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Counter {
    value: i64,
    events: u64,
    generation: u64,
}

/// An operation on the counter, raised as the event `op`.
#[derive(Debug, Serialize, Deserialize)]
enum Op {
    Add(i64),
    Stop,
}

#[orchestrator]
async fn counter(ctx: OrchestrationContext, state: Counter) -> Result<Counter, OrchestrationError> {
    let mut state = state;
    durable_runtime::debug!(ctx, generation = state.generation, "generation starts");
    for _ in 0..EVENTS_PER_GENERATION {
        match ctx.wait_for_event::<Op>("op").await? {
            Op::Add(amount) => {
                state.value += amount;
                state.events += 1;
                ctx.set_custom_status(state.value)?;
            }
            Op::Stop => return Ok(state),
        }
    }
    state.generation += 1;
    // Events already raised and not taken yet are carried into the next generation.
    ctx.continue_as_new(counter, state).await
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let events: i64 = match std::env::args().nth(1) {
        Some(arg) => arg
            .parse()
            .map_err(|err| format!("the number of events must be a number ({arg}): {err}"))?,
        None => 500,
    };
    let runtime = Runtime::builder().sqlite("durable.db").start().await?;
    let client = runtime.client();
    let id = client.start(counter, Counter::default()).await?;
    let started = std::time::Instant::now();
    for amount in 1..=events {
        // Each raise is durable when it returns; the counter may be between generations.
        client.raise_event(&id, "op", Op::Add(amount)).await?;
        if amount % 100 == 0 {
            let status = client.get_status(&id).await?.ok_or("the counter is gone")?;
            println!(
                "sent {amount} events; the counter shows {} ({})",
                status
                    .custom_status
                    .map_or("nothing yet".into(), |s| s.as_str().to_string()),
                status.runtime_status
            );
        }
    }
    client.raise_event(&id, "op", Op::Stop).await?;
    let status = client
        .wait_for_completion(&id, Duration::from_secs(30))
        .await?;
    let state: Counter = status.output_as()?;
    let history = client
        .get_status_with_history(&id)
        .await?
        .and_then(|status| status.history)
        .map_or(0, |history| history.len());
    println!(
        "counter {id}: {} with value {} after {} events in {} generations ({:.1?})",
        status.runtime_status,
        state.value,
        state.events,
        state.generation + 1,
        started.elapsed()
    );
    println!(
        "expected value {}; the store holds {history} history events (the last generation's), \
         not one per event received",
        events * (events + 1) / 2
    );
    runtime.shutdown().await;
    Ok(())
}
