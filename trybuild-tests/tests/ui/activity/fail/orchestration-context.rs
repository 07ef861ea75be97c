use durable_runtime::prelude::*;

#[activity]
async fn greet(ctx: OrchestrationContext, name: String) -> String {
    format!("{name} {}", ctx.instance_id())
}

fn main() {}
