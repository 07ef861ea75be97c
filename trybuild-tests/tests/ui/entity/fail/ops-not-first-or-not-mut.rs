use durable_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Default, Serialize, Deserialize)]
struct Counter(i64);

#[entity]
impl Counter {
    // The side effects come first after the receiver...
    pub fn add(&mut self, n: i64, ops: &mut EntityOps) {
        let _ = ops;
        self.0 += n;
    }

    // ...and are changed, so they are taken `&mut`.
    pub fn get(&self, ops: &EntityOps) -> i64 {
        let _ = ops;
        self.0
    }
}

fn main() {}
