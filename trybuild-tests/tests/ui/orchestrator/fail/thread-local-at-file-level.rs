use durable_runtime::prelude::*;
use std::cell::Cell;

thread_local! {
    static CALLS: Cell<u32> = const { Cell::new(0) };
}

#[orchestrator]
async fn workflow(ctx: OrchestrationContext) -> Result<u32, OrchestrationError> {
    let _ = &ctx;
    let calls = CALLS.with(|calls| {
        calls.set(calls.get() + 1);
        calls.get()
    });
    Ok(calls)
}

fn main() {}
