use durable_runtime::prelude::*;

#[activity]
async fn greet(name: String, ctx: ActivityContext) -> String {
    format!("{name} {}", ctx.instance_id())
}

fn main() {}
