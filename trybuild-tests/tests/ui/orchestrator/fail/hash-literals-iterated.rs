use durable_runtime::prelude::*;
use std::collections::{HashMap, HashSet};

#[orchestrator]
async fn workflow(ctx: OrchestrationContext) -> Result<Vec<u32>, OrchestrationError> {
    let _ = &ctx;
    let mut out = Vec::new();
    for n in HashSet::from([1, 2, 3]) {
        out.push(n);
    }
    out.extend(HashMap::from([(4, 5), (6, 7)]).keys().copied().collect::<Vec<_>>());
    let _ = HashSet::<u32>::from_iter(vec![8, 9]).into_iter().last();
    Ok(out)
}

fn main() {}
