use durable_runtime::prelude::*;
use std::collections::{HashMap, HashSet};

#[orchestrator]
async fn workflow(ctx: OrchestrationContext) -> Result<Vec<String>, OrchestrationError> {
    let _ = &ctx;
    fn names(totals: &HashMap<String, u32>) -> Vec<String> {
        let mut out = Vec::new();
        for (name, _) in totals {
            out.push(name.clone());
        }
        out
    }
    let firsts = |seen: &HashSet<String>| seen.iter().next().cloned();
    let mut out = names(&HashMap::new());
    out.extend(firsts(&HashSet::new()));
    Ok(out)
}

fn main() {}
