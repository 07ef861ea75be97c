use durable_runtime::prelude::*;

#[activity]
async fn greet<T: ToString>(name: T) -> String {
    name.to_string()
}

fn main() {}
