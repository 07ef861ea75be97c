use durable_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Order {
    id: u32,
}

#[orchestrator]
async fn workflow(order: Order) -> Result<u32, OrchestrationError> {
    Ok(order.id)
}

fn main() {}
