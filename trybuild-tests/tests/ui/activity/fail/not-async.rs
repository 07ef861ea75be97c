use durable_runtime::prelude::*;

#[activity]
fn greet(name: String) -> String {
    format!("hello {name}")
}

fn main() {}
