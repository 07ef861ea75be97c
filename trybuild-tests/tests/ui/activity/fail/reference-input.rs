use durable_runtime::prelude::*;

#[activity]
async fn greet(name: &str) -> String {
    format!("hello {name}")
}

fn main() {}
