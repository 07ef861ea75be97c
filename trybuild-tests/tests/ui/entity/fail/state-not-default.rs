use durable_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Counter(i64);

#[entity]
impl Counter {
    pub fn add(&mut self, n: i64) {
        self.0 += n;
    }
}

fn main() {}
