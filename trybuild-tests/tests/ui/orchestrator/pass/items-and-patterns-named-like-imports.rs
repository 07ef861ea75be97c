//! A function of the file named like a module it imports (`fn env` next to `use std::env;`,
//! written before or after it) is the user's function, and a name bound by a `matches!`
//! pattern is a binding, not a call of the imported function of that name.
#![deny(warnings)]
use durable_runtime::prelude::*;

/// The user's own lookup, named like the module imported below for the activity.
fn env(name: &str) -> Option<String> {
    (name == "REGION").then(|| "eu".to_string())
}

use std::env;
use tokio::spawn;

fn thread() -> u32 {
    2
}

use std::thread;

#[activity]
async fn configure() -> String {
    let _ = spawn(async {}).await;
    thread::yield_now();
    env::var("HOME").unwrap_or_default()
}

#[orchestrator]
async fn workflow(ctx: OrchestrationContext, job: Option<u32>) -> Result<u32, OrchestrationError> {
    let _ = &ctx;
    let region = env("REGION").unwrap_or_default();
    let big = matches!(job, Some(spawn) if spawn > 2);
    #[allow(unused_variables)]
    let some = matches!(job, Some(spawn));
    assert!(matches!(region.as_str(), "eu" | "us"));
    Ok(u32::from(big) + u32::from(some) + thread())
}

fn main() {
    assert_eq!(env("REGION").as_deref(), Some("eu"));
    let _ = workflow;
}
