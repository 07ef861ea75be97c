use durable_runtime::prelude::*;

pub struct Greeting(String);

#[activity]
async fn greet(name: String) -> Greeting {
    Greeting(name)
}

fn main() {}
