use durable_runtime::prelude::*;

struct Order {
    id: u32,
}

#[orchestrator]
async fn workflow(ctx: OrchestrationContext, order: Order) -> Result<u32, OrchestrationError> {
    let _ = ctx;
    Ok(order.id)
}

fn main() {}
