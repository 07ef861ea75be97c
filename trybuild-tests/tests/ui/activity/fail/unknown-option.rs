use durable_runtime::prelude::*;

#[activity(version = "2")]
async fn greet(name: String) -> String {
    name
}

fn main() {}
