use durable_runtime::prelude::*;
use std::collections::HashSet;

#[orchestrator]
async fn workflow(
    ctx: OrchestrationContext,
    a: HashSet<u32>,
    b: HashSet<u32>,
) -> Result<Vec<u32>, OrchestrationError> {
    let _ = &ctx;
    let mut out = Vec::new();
    for x in a.union(&b) {
        out.push(*x);
    }
    out.extend(a.intersection(&b).copied().collect::<Vec<_>>());
    let _first = a.difference(&b).next();
    let _both: Vec<u32> = a.symmetric_difference(&b).map(|x| x + 1).collect();
    Ok(out)
}

fn main() {}
