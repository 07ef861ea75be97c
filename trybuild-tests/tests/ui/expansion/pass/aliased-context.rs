//! A context imported under another name is recognised by its type.
#![deny(warnings)]
use durable_runtime::ActivityContext as Ctx;
use durable_runtime::OrchestrationContext as Workflow;
use durable_runtime::prelude::*;

#[activity]
async fn where_am_i(ctx: Ctx, suffix: String) -> String {
    format!("{}{suffix}", ctx.instance_id())
}

#[activity]
async fn only_context(ctx: durable_runtime::ActivityContext) -> u64 {
    ctx.task_id()
}

#[orchestrator]
async fn aliased(ctx: Workflow, suffix: String) -> Result<String, OrchestrationError> {
    let id = ctx.call_activity(only_context, ()).await?;
    Ok(format!(
        "{}{id}",
        ctx.call_activity(where_am_i, suffix).await?
    ))
}

#[allow(dead_code)]
async fn start(client: Client) -> Result<String, durable_runtime::Error> {
    client.start(aliased, "!".to_string()).await
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        assert_eq!(
            where_am_i(Ctx::for_test("i-1", 0), "?".into()).await,
            "i-1?"
        );
        assert_eq!(only_context(Ctx::for_test("i-1", 4)).await, 4);
    });
}
