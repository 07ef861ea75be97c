use durable_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Default, Serialize, Deserialize)]
struct Names(Vec<String>);

#[entity]
impl Names {
    pub fn push(&mut self, name: &str) {
        self.0.push(name.to_string());
    }
}

fn main() {}
