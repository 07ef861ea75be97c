//! A type alias declared in the file or in the body is followed to what it names, like an
//! import: a clock read through it, or a hash collection iterated through it, is refused.
use durable_runtime::prelude::*;
use std::collections::HashMap;

type Clock = std::time::SystemTime;
type Cache<V> = HashMap<String, V>;

#[orchestrator]
async fn workflow(ctx: OrchestrationContext) -> Result<u32, OrchestrationError> {
    let _ = &ctx;
    let _started = Clock::now();
    let mut cache: Cache<u32> = Cache::new();
    cache.insert("a".to_string(), 1);
    let mut total = 0;
    for (_, n) in &cache {
        total += n;
    }
    type Moment = std::time::Instant;
    let _at = Moment::now();
    Ok(total)
}

fn main() {}
