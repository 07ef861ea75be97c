//! Success or failure is decided by the return type, not by how it is spelled: an alias of
//! `Result` fails with its `Err`, and a plain type is always a success.
#![deny(warnings)]
use durable_runtime::prelude::*;
use durable_runtime::{FailureDetails, Outcome};

type Fallible<T> = Result<T, String>;

#[activity]
async fn check(n: u32) -> Fallible<u32> {
    if n == 0 { Err("zero".into()) } else { Ok(n) }
}

#[orchestrator]
async fn checked(ctx: OrchestrationContext, n: u32) -> Fallible<u32> {
    ctx.call_activity(check, n)
        .await
        .map_err(|failed| failed.message)
}

#[allow(dead_code)]
async fn typed(ctx: OrchestrationContext) -> Result<u32, OrchestrationError> {
    // The output of a `Fallible<u32>` activity is `u32`.
    let n: u32 = ctx.call_activity(check, 1).await?;
    Ok(n)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        assert_eq!(
            check(0).await.into_outcome(),
            Err(FailureDetails::new("zero"))
        );
        assert_eq!(check(2).await.into_outcome(), Ok(2));
    });
}
