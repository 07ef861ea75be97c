use durable_runtime::prelude::*;

#[derive(Debug)]
pub struct Declined;

#[activity]
async fn charge(cents: u64) -> Result<u64, Declined> {
    if cents > 100 {
        Err(Declined)
    } else {
        Ok(cents)
    }
}

fn main() {}
