use durable_runtime::prelude::*;

#[entity(version = "2")]
async fn counter(ctx: &mut EntityContext<i64>) {
    *ctx.state_mut() += 1;
}

fn main() {}
