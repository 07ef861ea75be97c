use durable_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Default, Serialize, Deserialize)]
struct Counter(i64);

#[entity]
impl Counter {
    pub fn add(&mut self, n: i64) {
        self.0 += n;
    }
}

async fn send(client: Client) -> Result<(), durable_runtime::Error> {
    client.signal_entity(&Counter::entity_id("a"), Counter::ad_op(5)).await
}

fn main() {}
