//! The usual way to visit a hash collection in a fixed order: collect it, then sort it fully
//! at once. The order it was collected in cannot show afterwards.
#![deny(warnings)]
use durable_runtime::prelude::*;
use std::collections::{HashMap, HashSet};

#[activity]
async fn notify(name: String) -> String {
    format!("notified {name}")
}

#[orchestrator]
async fn workflow(
    ctx: OrchestrationContext,
    scores: HashMap<String, u32>,
) -> Result<Vec<String>, OrchestrationError> {
    let mut names: Vec<String> = scores.keys().cloned().collect();
    names.sort();
    let mut pairs = scores.clone().into_iter().collect::<Vec<(String, u32)>>();
    pairs.sort_unstable();
    let distinct: HashSet<u32> = scores.values().copied().collect();
    let mut values: Vec<u32> = distinct.into_iter().collect();
    values.sort();
    let mut out = Vec::new();
    for name in names {
        out.push(ctx.call_activity(notify, name).await?);
    }
    out.push(format!("{pairs:?} {values:?}"));
    Ok(out)
}

fn main() {}
