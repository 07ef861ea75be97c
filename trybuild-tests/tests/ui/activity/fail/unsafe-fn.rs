use durable_runtime::prelude::*;

#[activity]
async unsafe fn greet(name: String) -> String {
    name
}

fn main() {}
