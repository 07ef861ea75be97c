//! W4, durable entities: 10,000 signals from 10 concurrent clients to one counter, timed until
//! the final state is visible through `read_entity_state`.
//!
//! Two rows: each client sending one signal at a time (it waits for each to be durable before
//! the next: at most 10 signals per commit, so fsync bounds it), and each keeping 64 signals in
//! flight (a client sending a stream of signals; the group commit takes them together). Either
//! way every signal is acknowledged only once durable, and the entity batches what queued up
//! into one commit per batch.

use super::memory::{peak_rss_mib, reset_peak_rss};
use super::{Bench, BoxError, fresh_runtime};
use durable_runtime::prelude::*;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::time::Instant;

/// The counter the signals add to.
#[derive(Default, Serialize, Deserialize)]
struct Counter(u64);

#[entity(name = "bench_counter")]
impl Counter {
    pub fn add(&mut self, n: u64) {
        self.0 += n;
    }
}

/// Clients sending at once.
const CLIENTS: u64 = 10;

/// Signals each client keeps in flight in the second row.
const IN_FLIGHT: usize = 64;

pub async fn w4(bench: &Bench) -> Result<(), BoxError> {
    run(bench, 1).await?;
    run(bench, IN_FLIGHT).await
}

async fn run(bench: &Bench, in_flight: usize) -> Result<(), BoxError> {
    let signals = bench.scale(10_000, 1_000);
    let (_dir, runtime) = fresh_runtime().await?;
    let client = runtime.client();
    let id = Counter::entity_id("w4");
    reset_peak_rss();
    let started = Instant::now();
    let senders = (0..CLIENTS).map(|sender| {
        let client = client.clone();
        let id = id.clone();
        let count = signals / CLIENTS + u64::from(sender < signals % CLIENTS);
        tokio::spawn(async move {
            let sends = (0..count).map(|_| client.signal_entity(&id, Counter::add_op(1)));
            let mut acks = futures::stream::iter(sends).buffer_unordered(in_flight);
            while let Some(ack) = acks.next().await {
                ack?;
            }
            Ok::<(), durable_runtime::Error>(())
        })
    });
    for sender in futures::future::join_all(senders).await {
        sender??;
    }
    let acknowledged = started.elapsed().as_secs_f64();
    // Polled every millisecond: reading in a tight loop would take a core from the writer.
    while client.read_entity_state::<u64>(&id).await? != Some(signals) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let peak = peak_rss_mib();
    bench.report(
        json!({"workload": "w4", "signals": signals, "clients": CLIENTS, "in_flight_per_client": in_flight,
               "seconds": seconds,
               "acknowledged_s": acknowledged, "signals_per_s": signals as f64 / seconds,
               "peak_rss_mib": peak}),
        format!(
            "| W4 entity signals | {signals} signals from {CLIENTS} clients ({in_flight} in flight each) to 1 counter | {seconds:.3} s | {:.0} signals/s, peak RSS {peak:.1} MiB |",
            signals as f64 / seconds
        ),
    );
    runtime.shutdown().await;
    Ok(())
}
