//! A worker process on a PostgreSQL database: it creates (or migrates) the store's schema,
//! runs whatever work the database holds, and, given `--start N`, starts N order
//! orchestrations (three activities and a durable timer each) and waits for them.
//!
//! ```sh
//! cargo run --release --features postgres --example worker -- \
//!     --url postgres://postgres@127.0.0.1:5433/postgres --schema shop --start 100
//! ```
//!
//! Kill it midway (even `kill -9`) and run it again without `--start`: the orders it had
//! started finish from the database, and no recorded step runs again.
//!
//! With `--shared`, any number of these processes run on one schema together (see README,
//! "Many worker processes on one database"): they divide the orders by leases, and the ones
//! left finish the orders of one that dies once its leases expire (`--lease-ttl-ms`).
//!
//! ```sh
//! url=postgres://postgres@127.0.0.1:5433/postgres
//! cargo run --release --features postgres --example worker -- --url $url --shared &
//! cargo run --release --features postgres --example worker -- --url $url --shared --start 1000
//! ```
//!
//! Without `--shared`, a second process on the same schema is refused.

use clap::Parser;
use durable_runtime::InstanceQuery;
use durable_runtime::prelude::*;

/// Command-line options.
#[derive(Parser, Debug)]
struct Args {
    /// The database (`postgres://user@host:port/db`).
    #[arg(long)]
    url: String,
    /// The schema the store's tables live in.
    #[arg(long, default_value = "durable")]
    schema: String,
    /// Orders to start before waiting for every unfinished one.
    #[arg(long, default_value_t = 0)]
    start: u32,
    /// Share the schema with other worker processes (leases).
    #[arg(long)]
    shared: bool,
    /// With `--shared`: how long a dead worker's leases last, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    lease_ttl_ms: u64,
}

/// Reserves an order's items.
#[activity]
pub async fn reserve(order: u32) -> Result<String, ActivityError> {
    Ok(format!("reserved #{order}"))
}

/// Charges an order.
#[activity]
pub async fn charge(order: u32) -> Result<String, ActivityError> {
    Ok(format!("charged #{order}"))
}

/// Ships an order.
#[activity]
pub async fn ship(order: u32) -> Result<String, ActivityError> {
    Ok(format!("shipped #{order}"))
}

/// One order: reserve, charge, a short durable cooling-off timer, ship.
#[orchestrator]
pub async fn order(
    ctx: OrchestrationContext,
    order: u32,
) -> Result<Vec<String>, OrchestrationError> {
    let reserved = ctx.call_activity(reserve, order).await?;
    let charged = ctx.call_activity(charge, order).await?;
    ctx.sleep(Duration::from_millis(200)).await;
    let shipped = ctx.call_activity(ship, order).await?;
    Ok(vec![reserved, charged, shipped])
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let mut builder = Runtime::builder()
        .postgres(&args.url)
        .postgres_schema(&args.schema);
    if args.shared {
        builder = builder
            .postgres_shared()
            .lease_ttl(Duration::from_millis(args.lease_ttl_ms));
    }
    let runtime = builder.start().await?;
    let client = runtime.client();
    for n in 0..args.start {
        client.start(order, n).await?;
    }
    // Wait for every unfinished order, including those an earlier run left.
    let unfinished = InstanceQuery {
        statuses: vec![RuntimeStatus::Pending, RuntimeStatus::Running],
        page_size: 100,
        ..InstanceQuery::default()
    };
    loop {
        let page = client.list(&unfinished).await?;
        let Some(first) = page.instances.first() else {
            break;
        };
        client
            .wait_for_completion(&first.instance_id, Duration::from_secs(60))
            .await?;
    }
    let done = InstanceQuery {
        statuses: vec![RuntimeStatus::Completed],
        page_size: 1000,
        ..InstanceQuery::default()
    };
    let page = client.list(&done).await?;
    println!(
        "schema {}: no unfinished orders; {}{} completed",
        args.schema,
        page.instances.len(),
        if page.continuation_token.is_some() {
            "+"
        } else {
            ""
        }
    );
    runtime.shutdown().await;
    Ok(())
}
