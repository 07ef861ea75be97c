//! The user's own types named like refused ones (`Command`, `File`, `Instant`, `SystemTime`,
//! `Uuid`) are theirs when they are not imported from the forbidden crate.
#![deny(warnings)]
use durable_runtime::prelude::*;

struct Command {
    program: String,
}

impl Command {
    fn new(program: &str) -> Self {
        Command {
            program: program.to_string(),
        }
    }
}

struct File;

impl File {
    fn open(_: &str) -> Self {
        File
    }
}

struct Instant(u64);

impl Instant {
    fn now() -> Self {
        Instant(3)
    }
}

struct SystemTime;

impl SystemTime {
    fn now() -> u64 {
        4
    }
}

struct Uuid;

impl Uuid {
    fn new_v4() -> u64 {
        5
    }
}

#[orchestrator]
async fn workflow(ctx: OrchestrationContext) -> Result<String, OrchestrationError> {
    let _ = &ctx;
    let command = Command::new("deploy");
    let _file = File::open("plan");
    let at = Instant::now().0 + SystemTime::now() + Uuid::new_v4();
    Ok(format!("{} {at}", command.program))
}

fn main() {}
