use durable_runtime::prelude::*;

#[activity]
async fn greet(names: Vec<impl std::fmt::Display>) -> String {
    names.len().to_string()
}

fn main() {}
