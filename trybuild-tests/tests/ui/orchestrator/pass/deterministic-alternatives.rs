//! Every deterministic alternative the error messages suggest compiles in an orchestrator.
use durable_runtime::prelude::*;
use std::collections::{BTreeMap, HashMap};

#[activity]
async fn work(n: u32) -> u32 {
    n + 1
}

#[orchestrator]
async fn workflow(ctx: OrchestrationContext) -> Result<u32, OrchestrationError> {
    let _now = ctx.current_utc_datetime();
    let _id = ctx.new_guid();
    let _roll = ctx.random_u64();
    ctx.sleep(Duration::from_secs(1)).await;
    ctx.create_timer(ctx.current_utc_datetime() + Duration::from_secs(1)).await;
    let all = ctx.when_all((0..3).map(|i| ctx.call_activity(work, i))).await;
    let first = ctx.when_any(vec![ctx.call_activity(work, 1), ctx.call_activity(work, 2)]).await;
    let mut ordered = BTreeMap::new();
    for (i, result) in all.into_iter().enumerate() {
        ordered.insert(i, result?);
    }
    let mut total = 0;
    for (_, value) in &ordered {
        total += value;
    }
    let lookup: HashMap<u32, u32> = HashMap::new();
    let _hit = lookup.get(&1);
    tokio::select! {
        biased;
        _ = ctx.sleep(Duration::from_secs(1)) => {}
        _ = ctx.sleep(Duration::from_secs(2)) => {}
    }
    Ok(total + first.1?)
}

fn main() {}
