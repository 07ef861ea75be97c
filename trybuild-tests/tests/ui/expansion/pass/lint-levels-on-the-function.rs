//! A lint allowed on the function is allowed where the expansion repeats the signature's types
//! (for a plain fn there is nothing else to warn about): a deprecated input or output type of a
//! function under `#[allow(deprecated)]` or `#[expect(deprecated)]` builds under `deny(warnings)`.
#![deny(warnings)]
use durable_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[deprecated(note = "use `Order`")]
#[derive(Serialize, Deserialize)]
struct OldOrder {
    lines: u32,
}

#[deprecated(note = "use `Receipt`")]
#[derive(Serialize, Deserialize)]
struct OldReceipt {
    total: u32,
}

#[allow(deprecated)]
impl durable_runtime::PlainOutput for OldReceipt {}

#[allow(deprecated)]
#[activity]
async fn migrate(order: OldOrder) -> OldReceipt {
    OldReceipt { total: order.lines }
}

#[expect(deprecated)]
#[activity]
async fn legacy(order: OldOrder) -> u32 {
    order.lines
}

#[cfg_attr(all(), allow(deprecated))]
#[orchestrator]
async fn migrating(ctx: OrchestrationContext, order: OldOrder) -> Result<u32, OrchestrationError> {
    let receipt: OldReceipt = ctx.call_activity(migrate, order).await?;
    Ok(receipt.total)
}

#[allow(deprecated)]
fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        assert_eq!(migrate(OldOrder { lines: 3 }).await.total, 3);
        assert_eq!(legacy(OldOrder { lines: 4 }).await, 4);
    });
    let _ = migrating;
}
