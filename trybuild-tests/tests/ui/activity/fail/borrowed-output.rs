use durable_runtime::prelude::*;

#[activity]
async fn greet(name: String) -> &'static str {
    if name.is_empty() {
        "nobody"
    } else {
        "somebody"
    }
}

fn main() {}
