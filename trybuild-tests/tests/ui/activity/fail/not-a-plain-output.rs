use durable_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
pub struct Receipt {
    total: u64,
}

#[activity]
async fn checkout(total: u64) -> Receipt {
    Receipt { total }
}

fn main() {}
