use durable_runtime::prelude::*;

#[entity]
async fn counter(ctx: EntityContext<i64>) {
    let _ = ctx;
}

fn main() {}
