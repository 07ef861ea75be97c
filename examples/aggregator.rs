//! Aggregator: a counter entity fed by signals from several concurrent tasks, plus one
//! orchestration that calls it.
//!
//! Run: `cargo run --release --example aggregator` (the store is `durable.db` in the working
//! directory; each run counts under a key of its own). Eight tasks send 250 `add(1)` signals
//! each; each returns once durable, and the entity applies every one exactly once, batching
//! what queues up into one commit. An orchestration adds 10 more with `call_entity` (waiting
//! for each) and reads the total back. The program prints the final state, which equals the
//! number of signals sent, and exits.

use durable_runtime::prelude::*;
use serde::{Deserialize, Serialize};

/// The aggregate: a count, stored as JSON (`{"total":2010}`).
#[derive(Default, Serialize, Deserialize)]
struct Counter {
    total: u64,
}

#[entity]
impl Counter {
    /// Adds `n`.
    pub fn add(&mut self, n: u64) {
        self.total += n;
    }

    /// The count so far.
    pub fn get(&self) -> u64 {
        self.total
    }
}

const TASKS: u64 = 8;
const SIGNALS_PER_TASK: u64 = 250;
const CALLS: u64 = 10;

/// Adds `CALLS` times one, each call waiting for the entity's answer, then reads the count.
#[orchestrator]
async fn tally(ctx: OrchestrationContext, key: String) -> Result<u64, OrchestrationError> {
    let id = Counter::entity_id(key);
    for _ in 0..CALLS {
        ctx.call_entity(&id, Counter::add_op(1)).await?;
    }
    Ok(ctx.call_entity(&id, Counter::get_op()).await?)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runtime = Runtime::builder().sqlite("durable.db").start().await?;
    let client = runtime.client();
    let key = durable_runtime::Uuid::new_v4().simple().to_string();
    let id = Counter::entity_id(key.clone());

    let orchestration = client.start(tally, key).await?;
    let senders = (0..TASKS).map(|_| {
        let client = client.clone();
        let id = id.clone();
        tokio::spawn(async move {
            for _ in 0..SIGNALS_PER_TASK {
                client.signal_entity(&id, Counter::add_op(1)).await?;
            }
            Ok::<(), durable_runtime::Error>(())
        })
    });
    for sender in futures::future::join_all(senders).await {
        sender??;
    }
    let seen_by_orchestration: u64 = client
        .wait_for_completion(&orchestration, Duration::from_secs(60))
        .await?
        .output_as()?;

    let sent = TASKS * SIGNALS_PER_TASK + CALLS;
    // Every signal is durable; wait until the entity has applied them all.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let total = loop {
        let state = client.read_entity_state::<Counter>(&id).await?;
        let total = state.map_or(0, |counter| counter.total);
        if total == sent || tokio::time::Instant::now() > deadline {
            break total;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    println!(
        "entity {id}: total {total} (sent {sent}; the orchestration read {seen_by_orchestration})"
    );
    runtime.shutdown().await;
    if total != sent {
        return Err(format!("the counter shows {total}, not the {sent} operations sent").into());
    }
    Ok(())
}
