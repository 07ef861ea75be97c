//! Every kind of local binding shadows a forbidden name for its scope: `let`, destructuring,
//! the orchestrator's and nested fns' parameters, closure parameters, `for` / `match` /
//! `if let` / `while let` patterns, and items in the body. The imports are the activity's.
#![deny(warnings)]
use durable_runtime::prelude::*;
use rand::random;
use std::env;
use tokio::spawn;
use tokio::time::sleep;

#[activity]
async fn prepare() -> u32 {
    sleep(Duration::from_millis(1)).await;
    let _ = spawn(async {});
    let _ = env::var("HOME");
    random::<u32>()
}

struct Pair {
    spawn: u32,
    sleep: u32,
}

#[orchestrator]
async fn workflow(ctx: OrchestrationContext, random: u32) -> Result<u32, OrchestrationError> {
    // let, and the orchestrator's own parameter
    let env = ctx.random_u64() as u32 + random;
    // destructuring
    let (thread_rng, Pair { spawn, sleep }) = (env, Pair { spawn: random, sleep: 1 });
    // a closure parameter
    let twice = |random: u32| random * 2;
    // a nested fn's parameters
    fn helper(spawn: u32, sleep: u32) -> u32 {
        spawn + sleep
    }
    let mut total = helper(spawn, sleep) + twice(random) + thread_rng;
    // for, match, if let and while let patterns
    for env in [1u32, 2] {
        total += env;
    }
    match total.checked_add(1) {
        Some(random) => total = random,
        None => total = 0,
    }
    if let Some(sleep) = total.checked_sub(1) {
        total = sleep;
    }
    let mut queue = vec![1u32, 2];
    while let Some(spawn) = queue.pop() {
        total += spawn;
    }
    // an item in the body
    fn process(n: u32) -> u32 {
        n + 1
    }
    total = process(total);
    // macro arguments see the same locals
    let line = format!("{env} {}", vec![random; 2].len());
    assert!(!line.is_empty(), "{}", sleep);
    Ok(total + ctx.call_activity(prepare, ()).await?)
}

fn main() {}
