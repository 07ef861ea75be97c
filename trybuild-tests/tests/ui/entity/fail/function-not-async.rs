use durable_runtime::prelude::*;

#[entity]
fn counter(ctx: &mut EntityContext<i64>) {
    *ctx.state_mut() += 1;
}

fn main() {}
