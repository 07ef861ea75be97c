use durable_runtime::prelude::*;
use std::borrow::Cow;

#[activity]
async fn greet(name: Cow<'_, str>) -> String {
    name.into_owned()
}

fn main() {}
