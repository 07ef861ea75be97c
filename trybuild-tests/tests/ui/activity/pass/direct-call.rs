//! An activity stays callable like the function it was, with or without a context.
#![deny(warnings)]
use durable_runtime::prelude::*;

#[activity]
async fn greet(name: String) -> Result<String, ActivityError> {
    Ok(format!("hello {name}"))
}

#[activity]
async fn tagged(ctx: ActivityContext, a: u32, b: u32) -> u32 {
    ctx.task_id() as u32 + a + b
}

#[activity]
async fn nothing() {}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    runtime.block_on(async {
        assert_eq!(greet("Ada".into()).await, Ok("hello Ada".to_string()));
        assert_eq!(tagged(ActivityContext::for_test("i", 1), 2, 3).await, 6);
        nothing().await;
    });
}
