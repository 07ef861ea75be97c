//! An error that is only displayed may be borrowed for `'static`, as for a plain fn: only the
//! success value is recorded and decoded.
#![deny(warnings)]
use durable_runtime::prelude::*;
use durable_runtime::{FailureDetails, Outcome};

#[activity]
async fn positive(n: i64) -> Result<i64, &'static str> {
    if n > 0 { Ok(n) } else { Err("not positive") }
}

#[activity]
async fn even(n: i64) -> Result<i64, Box<dyn std::error::Error + Send + Sync + 'static>> {
    if n % 2 == 0 {
        Ok(n)
    } else {
        Err(format!("{n} is odd").into())
    }
}

#[orchestrator]
async fn checked(ctx: OrchestrationContext, n: i64) -> Result<i64, &'static str> {
    let n = ctx
        .call_activity(positive, n)
        .await
        .map_err(|_| "refused")?;
    ctx.call_activity(even, n).await.map_err(|_| "odd")
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        assert_eq!(
            positive(0).await.into_outcome(),
            Err(FailureDetails::new("not positive"))
        );
        assert_eq!(positive(2).await.into_outcome(), Ok(2));
        assert_eq!(
            even(3).await.into_outcome(),
            Err(FailureDetails::new("3 is odd"))
        );
    });
}
