//! The benchmark program: SPEC §10's workloads on the embedded store, fsync on, default settings.
//!
//! ```sh
//! cargo run --release --example bench                       # every workload, as a table
//! cargo run --release --example bench -- --workload w1,w3   # some of them
//! cargo run --release --example bench -- --json             # one JSON object per line
//! cargo run --release --example bench -- --quick            # small sizes (CI smoke run)
//! ```
//!
//! Each workload runs on a fresh store file in a temporary directory.

use clap::Parser;
use durable_runtime::prelude::*;
use serde_json::json;
use std::time::Instant;

#[path = "bench/codec.rs"]
mod codec;
#[path = "bench/entities.rs"]
mod entities;
#[path = "bench/http.rs"]
mod http;
#[path = "bench/memory.rs"]
mod memory;
#[path = "bench/postgres.rs"]
mod postgres;

use memory::{peak_rss_mib, reset_peak_rss};

#[activity]
async fn say_hello(city: String) -> String {
    format!("Hello {city}!")
}

#[activity]
async fn double(i: u64) -> u64 {
    i * 2
}

#[orchestrator]
async fn hello_sequence(ctx: OrchestrationContext) -> Result<Vec<String>, OrchestrationError> {
    let mut out = Vec::with_capacity(5);
    for city in ["Tokyo", "Seattle", "London", "Paris", "Lima"] {
        out.push(ctx.call_activity(say_hello, city.to_string()).await?);
    }
    Ok(out)
}

#[orchestrator]
async fn fan_out(ctx: OrchestrationContext, n: u64) -> Result<u64, OrchestrationError> {
    let mut sum = 0;
    for result in ctx
        .when_all((0..n).map(|i| ctx.call_activity(double, i)))
        .await
    {
        sum += result?;
    }
    Ok(sum)
}

#[orchestrator]
async fn single(ctx: OrchestrationContext) -> Result<String, OrchestrationError> {
    Ok(ctx.call_activity(say_hello, "Oslo".to_string()).await?)
}

#[orchestrator]
async fn long_sequence(ctx: OrchestrationContext, n: u64) -> Result<u64, OrchestrationError> {
    let mut sum = 0;
    for i in 0..n {
        sum += ctx.call_activity(double, i).await?;
    }
    Ok(sum)
}

#[orchestrator]
async fn idle(ctx: OrchestrationContext) -> Result<(), OrchestrationError> {
    Ok(ctx.wait_for_event::<()>("never-sent").await?)
}

/// Sleeps on a durable timer; returns how late (ms) the step after the timer ran.
#[orchestrator]
async fn timed(ctx: OrchestrationContext, delay_ms: u64) -> Result<i64, OrchestrationError> {
    let due = ctx.current_utc_datetime() + Duration::from_millis(delay_ms);
    ctx.create_timer(due).await;
    let woke = ctx.current_utc_datetime();
    Ok(match woke.duration_since(due) {
        Ok(late) => late.as_millis() as i64,
        Err(early) => -(early.duration().as_millis() as i64),
    })
}

#[activity]
async fn echo_text(text: String) -> String {
    text
}

/// Calls one activity as a sub-orchestration: W7's child.
#[orchestrator]
async fn child_of_one(ctx: OrchestrationContext, i: u64) -> Result<u64, OrchestrationError> {
    Ok(ctx.call_activity(double, i).await?)
}

/// Fans out to `n` sub-orchestrations of one activity each.
#[orchestrator]
async fn parent_of_many(ctx: OrchestrationContext, n: u64) -> Result<u64, OrchestrationError> {
    let mut sum = 0;
    for result in ctx
        .when_all((0..n).map(|i| ctx.call_sub_orchestrator(child_of_one, i)))
        .await
    {
        sum += result?;
    }
    Ok(sum)
}

/// Builds a long history (`n` sequential activities), then waits for the event `go` and runs
/// one more activity: the cold-replay workload's instance.
#[orchestrator]
async fn long_then_wait(ctx: OrchestrationContext, n: u64) -> Result<u64, OrchestrationError> {
    let mut sum = 0;
    for i in 0..n {
        sum += ctx.call_activity(double, i).await?;
    }
    ctx.call_activity(history_built, ()).await?;
    ctx.wait_for_event::<()>("go").await?;
    Ok(sum + ctx.call_activity(double, 1).await?)
}

/// Tells the cold-replay workload that its instance has built its history.
static HISTORY_BUILT: tokio::sync::Notify = tokio::sync::Notify::const_new();

#[activity]
async fn history_built(_: ()) {
    HISTORY_BUILT.notify_one();
}

/// Hands its input to an activity and returns what comes back: one payload round trip.
#[orchestrator]
async fn round_trip(ctx: OrchestrationContext, text: String) -> Result<String, OrchestrationError> {
    Ok(ctx.call_activity(echo_text, text).await?)
}

#[derive(Parser)]
#[command(about = "durable benchmark workloads (SPEC §10)")]
struct Args {
    /// Workloads to run, comma-separated: w1, w2, w3, w4, w5, w6, w7, w8, cold, mem, payload.
    /// Each runs in a process of its own (see `--in-process`).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "mem,w1,w2,w3,w4,w5,w6,w7,w8,cold,payload"
    )]
    workload: Vec<String>,
    /// Print one JSON object per workload line instead of a table.
    #[arg(long)]
    json: bool,
    /// Small sizes, for a quick smoke run.
    #[arg(long)]
    quick: bool,
    /// Run every workload in this process. By default each runs in a child process of its
    /// own: the memory one workload frees stays with the allocator and would count in the
    /// peak RSS of the next.
    #[arg(long)]
    in_process: bool,
    /// Set on the child processes: no table header.
    #[arg(long, hide = true)]
    no_header: bool,
    /// The store: `sqlite` (a temporary file, the default) or a `postgres://` URL (built with
    /// `--features postgres`; each workload gets a schema of its own). See `bench/postgres.rs`.
    #[arg(long, default_value = "sqlite")]
    store: String,
    /// Worker processes on the store (PostgreSQL only; see `bench/postgres.rs`).
    #[arg(long, default_value_t = 1)]
    workers: u32,
    /// Set on the helper worker processes of `--workers N`: the schema to work on.
    #[arg(long, hide = true)]
    pg_worker: Option<String>,
    /// Give tokio its I/O driver even where no workload needs it (see [`tokio_runtime`]), to
    /// measure what it costs.
    #[arg(long)]
    io_driver: bool,
}

type BoxError = Box<dyn std::error::Error>;

struct Bench {
    json: bool,
    quick: bool,
}

impl Bench {
    fn report(&self, row: serde_json::Value, text: String) {
        if self.json {
            println!("{row}");
        } else {
            println!("{text}");
        }
    }

    fn scale(&self, full: u64, quick: u64) -> u64 {
        if self.quick { quick } else { full }
    }
}

/// A fresh store in a temporary directory (or a fresh PostgreSQL schema with `--store`), with
/// the runtime's defaults.
async fn fresh_runtime() -> Result<(tempfile::TempDir, Runtime), BoxError> {
    let dir = tempfile::tempdir()?;
    if let Some(runtime) = postgres::fresh_runtime().await? {
        return Ok((dir, runtime));
    }
    let runtime = Runtime::builder()
        .sqlite(dir.path().join("bench.db"))
        .start()
        .await?;
    Ok((dir, runtime))
}

/// Starts `count` instances of `orchestrator` concurrently, as from many callers; each start
/// returns once durable.
async fn start_all<F: OrchestratorFn<M>, M>(
    client: &Client,
    orchestrator: F,
    input: F::Input,
    count: u64,
) -> Result<Vec<String>, BoxError>
where
    F::Input: Clone,
{
    let starts = (0..count).map(|_| client.start(orchestrator, input.clone()));
    let mut ids = Vec::with_capacity(count as usize);
    for id in futures::future::join_all(starts).await {
        ids.push(id?);
    }
    Ok(ids)
}

async fn wait_all(client: &Client, ids: &[String]) -> Result<(), BoxError> {
    for id in ids {
        let status = client
            .wait_for_completion(id, Duration::from_secs(600))
            .await?;
        if status.runtime_status != RuntimeStatus::Completed {
            return Err(format!(
                "instance {id} ended {}: {:?}",
                status.runtime_status, status.failure
            )
            .into());
        }
    }
    Ok(())
}

async fn w1(bench: &Bench) -> Result<(), BoxError> {
    let instances = bench.scale(5_000, 50);
    let (_dir, runtime) = fresh_runtime().await?;
    let client = runtime.client();
    let started = Instant::now();
    let ids = start_all(&client, hello_sequence, (), instances).await?;
    wait_all(&client, &ids).await?;
    let seconds = started.elapsed().as_secs_f64();
    let activities = instances * 5;
    bench.report(
        json!({"workload": "w1", "instances": instances, "activities": activities, "seconds": seconds,
               "instances_per_s": instances as f64 / seconds, "activities_per_s": activities as f64 / seconds}),
        format!(
            "| W1 sequence | {instances} instances x 5 activities | {seconds:.3} s | {:.0} instances/s, {:.0} activities/s |",
            instances as f64 / seconds,
            activities as f64 / seconds
        ),
    );
    runtime.shutdown().await;
    Ok(())
}

async fn w2(bench: &Bench) -> Result<(), BoxError> {
    let n = bench.scale(10_000, 1_000);
    let (_dir, runtime) = fresh_runtime().await?;
    let client = runtime.client();
    reset_peak_rss();
    let started = Instant::now();
    let id = client.start(fan_out, n).await?;
    wait_all(&client, std::slice::from_ref(&id)).await?;
    let seconds = started.elapsed().as_secs_f64();
    let sum: u64 = client
        .get_status(&id)
        .await?
        .ok_or("instance vanished")?
        .output_as()?;
    if sum != n * (n - 1) {
        return Err(format!("wrong sum {sum}").into());
    }
    let peak = peak_rss_mib();
    bench.report(
        json!({"workload": "w2", "activities": n, "seconds": seconds,
               "activities_per_s": n as f64 / seconds, "peak_rss_mib": peak}),
        format!(
            "| W2 fan-out/fan-in | {n} activities | {seconds:.3} s | {:.0} activities/s, peak RSS {peak:.1} MiB |",
            n as f64 / seconds
        ),
    );
    runtime.shutdown().await;
    Ok(())
}

async fn w3(bench: &Bench) -> Result<(), BoxError> {
    let runs = 50;
    let (_dir, runtime) = fresh_runtime().await?;
    let client = runtime.client();
    let mut latencies = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        let id = client.start(single, ()).await?;
        wait_all(&client, std::slice::from_ref(&id)).await?;
        latencies.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    latencies.sort_by(f64::total_cmp);
    let p50 = percentile(&latencies, 0.50);
    let p99 = percentile(&latencies, 0.99);
    bench.report(
        json!({"workload": "w3", "runs": runs, "p50_ms": p50, "p99_ms": p99}),
        format!("| W3 latency | {runs} sequential single-activity runs | | p50 {p50:.2} ms, p99 {p99:.2} ms |"),
    );
    runtime.shutdown().await;
    Ok(())
}

async fn w5(bench: &Bench) -> Result<(), BoxError> {
    let sizes: &[u64] = if bench.quick {
        &[100, 1000]
    } else {
        &[100, 1000, 10_000]
    };
    for &n in sizes {
        let (_dir, runtime) = fresh_runtime().await?;
        let client = runtime.client();
        let started = Instant::now();
        let id = client.start(long_sequence, n).await?;
        wait_all(&client, std::slice::from_ref(&id)).await?;
        let us = started.elapsed().as_secs_f64() * 1e6 / n as f64;
        bench.report(
            json!({"workload": "w5", "n": n, "us_per_activity": us}),
            format!("| W5 long history | {n} sequential activities | | {us:.1} us/activity |"),
        );
        runtime.shutdown().await;
    }
    Ok(())
}

async fn w6(bench: &Bench) -> Result<(), BoxError> {
    let instances = bench.scale(1000, 100);
    let (_dir, runtime) = fresh_runtime().await?;
    let client = runtime.client();
    let started = Instant::now();
    let ids = start_all(&client, timed, 1000, instances).await?;
    wait_all(&client, &ids).await?;
    let seconds = started.elapsed().as_secs_f64();
    let mut lateness = Vec::with_capacity(ids.len());
    for id in &ids {
        let late: i64 = client
            .get_status(id)
            .await?
            .ok_or("instance vanished")?
            .output_as()?;
        lateness.push(late as f64);
    }
    lateness.sort_by(f64::total_cmp);
    let p50 = percentile(&lateness, 0.50);
    let p99 = percentile(&lateness, 0.99);
    bench.report(
        json!({"workload": "w6", "instances": instances, "timer_s": 1, "seconds": seconds,
               "lateness_p50_ms": p50, "lateness_p99_ms": p99}),
        format!(
            "| W6 timers | {instances} instances x 1 s durable timer | {seconds:.3} s | lateness p50 {p50:.0} ms, p99 {p99:.0} ms |"
        ),
    );
    runtime.shutdown().await;
    Ok(())
}

async fn w7(bench: &Bench) -> Result<(), BoxError> {
    let n = bench.scale(1_000, 100);
    let (_dir, runtime) = fresh_runtime().await?;
    let client = runtime.client();
    let started = Instant::now();
    let id = client.start(parent_of_many, n).await?;
    wait_all(&client, std::slice::from_ref(&id)).await?;
    let seconds = started.elapsed().as_secs_f64();
    let sum: u64 = client
        .get_status(&id)
        .await?
        .ok_or("instance vanished")?
        .output_as()?;
    if sum != n * (n - 1) {
        return Err(format!("wrong sum {sum}").into());
    }
    bench.report(
        json!({"workload": "w7", "children": n, "seconds": seconds, "children_per_s": n as f64 / seconds}),
        format!(
            "| W7 sub-orchestrations | 1 parent, {n} children of 1 activity | {seconds:.3} s | {:.0} children/s |",
            n as f64 / seconds
        ),
    );
    runtime.shutdown().await;
    Ok(())
}

/// One instance with a long history, its runtime restarted: the time from the event that wakes
/// it to its completion is the replay of the whole history plus one more step. Also times
/// decoding that history as the store does (JSON), next to bincode for the same events.
async fn cold(bench: &Bench) -> Result<(), BoxError> {
    let n = bench.scale(10_000, 1_000);
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("bench.db");
    let id = {
        let runtime = Runtime::builder().sqlite(&path).start().await?;
        let built = HISTORY_BUILT.notified();
        let id = runtime.client().start(long_then_wait, n).await?;
        built.await;
        // A graceful shutdown records the step that consumed `history_built`'s result; the
        // store is released once the runtime and its clients are gone.
        runtime.shutdown().await;
        id
    };

    let started = Instant::now();
    let runtime = Runtime::builder().sqlite(&path).start().await?;
    let restart_ms = started.elapsed().as_secs_f64() * 1000.0;
    let client = runtime.client();
    let history = client
        .get_status_with_history(&id)
        .await?
        .and_then(|status| status.history)
        .ok_or("instance vanished")?;
    let started = Instant::now();
    client.raise_event(&id, "go", ()).await?;
    let status = client
        .wait_for_completion(&id, Duration::from_secs(600))
        .await?;
    let replay_ms = started.elapsed().as_secs_f64() * 1000.0;
    let sum: u64 = status.output_as()?;
    if sum != n * (n - 1) + 2 {
        return Err(format!("wrong sum {sum}").into());
    }
    runtime.shutdown().await;
    let codec = codec::compare(&history)?;
    bench.report(
        json!({"workload": "cold", "activities": n, "history_events": history.len(),
               "restart_ms": restart_ms, "replay_and_step_ms": replay_ms,
               "json_decode_ms": codec.json_decode_ms, "bincode_decode_ms": codec.bincode_decode_ms,
               "json_encode_ms": codec.json_encode_ms, "bincode_encode_ms": codec.bincode_encode_ms,
               "json_bytes": codec.json_bytes, "bincode_bytes": codec.bincode_bytes}),
        format!(
            "| cold replay | 1 instance, {n} activities ({} events), restarted | {replay_ms:.1} ms | replay + next step {replay_ms:.1} ms (restart {restart_ms:.1} ms); decoding its history: JSON {:.1} ms, bincode {:.1} ms ({} vs {} bytes) |",
            history.len(),
            codec.json_decode_ms,
            codec.bincode_decode_ms,
            codec.json_bytes,
            codec.bincode_bytes
        ),
    );
    Ok(())
}
fn percentile(sorted: &[f64], q: f64) -> f64 {
    let rank = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// Runs each workload in a child process of this program, one after the other.
fn run_each_in_a_child(args: &Args) -> Result<(), BoxError> {
    let program = std::env::current_exe()?;
    for workload in &args.workload {
        let mut child = std::process::Command::new(&program);
        child.args(["--in-process", "--no-header", "--workload", workload]);
        if args.json {
            child.arg("--json");
        }
        child.args([
            "--store",
            &args.store,
            "--workers",
            &args.workers.to_string(),
        ]);
        if args.quick {
            child.arg("--quick");
        }
        if args.io_driver {
            child.arg("--io-driver");
        }
        let status = child.status()?;
        if !status.success() {
            return Err(format!("workload {workload} failed: {status}").into());
        }
    }
    Ok(())
}

fn main() -> Result<(), BoxError> {
    let args = Args::parse();
    tokio_runtime(&args)?.block_on(run(args))
}

/// The tokio runtime the workloads run on. The embedded store's workloads do no network I/O,
/// so they get timers only, as a program of the embedded store alone would (and as every
/// `#[tokio::main]` did before a dependency switched tokio's `net` feature on). With the I/O
/// driver, an idle worker thread parks in `epoll_wait` and is woken by a write to an
/// `eventfd`, a few microseconds more per wake-up than a futex; a sequential workload (W3, W5)
/// wakes a thread about twice per step. HTTP (W8) and PostgreSQL need the driver.
fn tokio_runtime(args: &Args) -> std::io::Result<tokio::runtime::Runtime> {
    let network = args.io_driver
        || args.store != "sqlite"
        || args.pg_worker.is_some()
        || args.workload.iter().any(|workload| workload == "w8");
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if network {
        builder.enable_all();
    } else {
        builder.enable_time();
    }
    builder.build()
}

async fn run(args: Args) -> Result<(), BoxError> {
    if let Some(schema) = &args.pg_worker {
        return postgres::run_worker(&args.store, schema).await;
    }
    postgres::configure(&args.store, args.workers)?;
    let bench = Bench {
        json: args.json,
        quick: args.quick,
    };
    if !bench.json && !args.no_header {
        println!("| workload | shape | time | result |");
        println!("|---|---|---|---|");
    }
    if !args.in_process && args.workload.len() > 1 {
        return run_each_in_a_child(&args);
    }
    for workload in &args.workload {
        match workload.as_str() {
            "w1" => w1(&bench).await?,
            "w2" => w2(&bench).await?,
            "w3" => w3(&bench).await?,
            "w4" => entities::w4(&bench).await?,
            "w5" => w5(&bench).await?,
            "w6" => w6(&bench).await?,
            "w7" => w7(&bench).await?,
            "w8" => {
                http::w8(bench.scale(500, 50), 16, |row, text| {
                    bench.report(row, text)
                })
                .await?
            }
            "cold" => cold(&bench).await?,
            "mem" => memory::mem(&bench).await?,
            "payload" => memory::payload(&bench).await?,
            other => {
                return Err(format!(
                    "unknown workload '{other}' (expected w1, w2, w3, w4, w5, w6, w7, w8, cold, mem, payload)"
                )
                .into());
            }
        }
        postgres::report_round_trips();
        postgres::stop_helpers();
    }
    Ok(())
}
