//! A hash collection with a hasher that is not seeded at random iterates in the same order in
//! every process: what the message about `RandomState` advises passes.
#![deny(warnings)]
use durable_runtime::prelude::*;
use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::hash::BuildHasherDefault;

type Fixed = BuildHasherDefault<DefaultHasher>;

#[orchestrator]
async fn workflow(
    ctx: OrchestrationContext,
    input: Vec<(String, u32)>,
) -> Result<Vec<String>, OrchestrationError> {
    let _ = &ctx;
    let mut index: HashMap<String, u32, Fixed> = HashMap::default();
    index.extend(input.iter().cloned());
    let mut seen = HashSet::<u32, Fixed>::with_hasher(Fixed::default());
    let mut out = Vec::new();
    for (name, score) in &index {
        if seen.insert(*score) {
            out.push(name.clone());
        }
    }
    for score in seen.iter() {
        out.push(score.to_string());
    }
    Ok(out)
}

fn main() {}
