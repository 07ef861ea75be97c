use durable_runtime::prelude::*;
use std::collections::HashMap;

#[orchestrator]
async fn workflow(ctx: OrchestrationContext) -> Result<Vec<String>, OrchestrationError> {
    let _ = &ctx;
    let mut totals: HashMap<String, u32> = HashMap::new();
    totals.insert("a".to_string(), 1);
    let copy = totals.clone();
    let mut names = Vec::new();
    for (name, _) in copy {
        names.push(name);
    }
    let _keys: Vec<String> = totals.clone().into_keys().collect();
    Ok(names)
}

fn main() {}
