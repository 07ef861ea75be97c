//! Hash collections used without their order showing: lookups, `len`, `count`, `min`,
//! collecting into a set or a map, extending one with another, and a name shadowed by a
//! `BTreeMap`.
#![deny(warnings)]
use durable_runtime::prelude::*;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

#[orchestrator]
async fn workflow(
    ctx: OrchestrationContext,
    input: Vec<(String, u32)>,
) -> Result<Vec<String>, OrchestrationError> {
    let _ = &ctx;
    let index: HashMap<String, u32> = input.iter().cloned().collect();
    let seen: HashSet<u32> = index.values().copied().collect();
    let evens: HashSet<u32> = [2u32, 4].into_iter().collect();
    let distinct = seen.len() + seen.intersection(&evens).count();
    let union: BTreeSet<u32> = seen.union(&evens).copied().collect();
    let smallest = seen.iter().min().copied().unwrap_or(0);
    let mut merged: HashSet<u32> = HashSet::new();
    merged.extend(&seen);
    let sorted = index.clone().into_iter().collect::<BTreeMap<String, u32>>();
    let index = sorted;
    let mut names = Vec::new();
    for (name, _) in &index {
        names.push(format!("{name} {distinct} {smallest} {} {}", union.len(), merged.len()));
    }
    Ok(names)
}

fn main() {}
