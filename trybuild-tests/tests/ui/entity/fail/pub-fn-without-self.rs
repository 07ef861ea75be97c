use durable_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Default, Serialize, Deserialize)]
struct Counter(i64);

#[entity]
impl Counter {
    pub fn add(&mut self, n: i64) {
        self.0 += n;
    }

    pub fn new() -> Self {
        Counter(0)
    }
}

fn main() {}
