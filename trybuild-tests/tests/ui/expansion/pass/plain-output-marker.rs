//! A plain return type of the user's own is marked with one line; a `Result` of it needs none.
#![deny(warnings)]
use durable_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Receipt {
    total: u64,
}
impl durable_runtime::PlainOutput for Receipt {}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Refund {
    amount: u64,
}

#[activity]
async fn checkout(total: u64) -> Receipt {
    Receipt { total }
}

#[activity]
async fn refund(amount: u64) -> Result<Refund, ActivityError> {
    Ok(Refund { amount })
}

#[orchestrator]
async fn shop(ctx: OrchestrationContext) -> Result<u64, OrchestrationError> {
    let receipt: Receipt = ctx.call_activity(checkout, 5).await?;
    let refund: Refund = ctx.call_activity(refund, 2).await?;
    Ok(receipt.total - refund.amount)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        assert_eq!(checkout(3).await, Receipt { total: 3 });
    });
}
