use durable_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[orchestrator]
async fn notify(ctx: OrchestrationContext, total: i64) -> Result<i64, OrchestrationError> {
    let _ = ctx;
    Ok(total)
}

#[derive(Default, Serialize, Deserialize)]
struct Budget {
    spent: i64,
}

#[entity]
impl Budget {
    pub fn spend(&mut self, ops: &mut EntityOps, amount: i64) -> Result<(), EntityError> {
        self.spent += amount;
        ops.signal_entity(&Budget::entity_id("audit"), Budget::spend_op(0))?;
        ops.start_new(notify, self.spent)?;
        Ok(())
    }

    pub async fn ping(&self, ops: &mut durable_runtime::EntityOps) {
        let _ = ops.start_new_by_name("notify", self.spent);
    }

    pub fn total(&self) -> i64 {
        self.spent
    }
}

fn main() {
    // The side effects are not part of the input.
    let _: Operation<()> = Budget::spend_op(5);
    let _: Operation<()> = Budget::ping_op();
}
