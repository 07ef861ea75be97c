use durable_runtime::prelude::*;

#[activity]
async fn greet(names: Vec<&str>) -> String {
    names.join(", ")
}

fn main() {}
