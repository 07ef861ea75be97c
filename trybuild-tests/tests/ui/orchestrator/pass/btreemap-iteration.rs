//! Instead of iterating a HashMap: a BTreeMap; a HashMap used only for lookups is fine.
#![deny(warnings)]
use durable_runtime::prelude::*;
use std::collections::{BTreeMap, HashMap};

#[orchestrator]
async fn workflow(_ctx: OrchestrationContext) -> Result<Vec<String>, OrchestrationError> {
    let mut ordered = BTreeMap::new();
    ordered.insert("b", 2);
    ordered.insert("a", 1);
    let mut names = Vec::new();
    for (name, _) in &ordered {
        names.push(name.to_string());
    }
    let mut lookup: HashMap<&str, u32> = HashMap::new();
    lookup.insert("a", 1);
    let _hit = lookup.get("a");
    Ok(names)
}

fn main() {}
