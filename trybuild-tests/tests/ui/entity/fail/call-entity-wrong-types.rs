use durable_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Default, Serialize, Deserialize)]
struct Counter(u64);

#[entity]
impl Counter {
    pub fn add(&mut self, n: u64) {
        self.0 += n;
    }

    pub fn get(&self) -> u64 {
        self.0
    }
}

#[orchestrator]
async fn tally(ctx: OrchestrationContext) -> Result<String, OrchestrationError> {
    let id = Counter::entity_id("a");
    ctx.call_entity(&id, Counter::add_op("not a number")).await?;
    let total: String = ctx.call_entity(&id, Counter::get_op()).await?;
    Ok(total)
}

fn main() {}
