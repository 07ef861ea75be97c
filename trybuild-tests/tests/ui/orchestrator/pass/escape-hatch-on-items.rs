//! The escape hatch works on items inside the body (a nested fn, a static, an impl), on
//! statements, on expressions and on match arms.
#![deny(warnings)]
use durable_runtime::prelude::*;

#[orchestrator]
async fn workflow(ctx: OrchestrationContext) -> Result<u32, OrchestrationError> {
    #[durable::allow_nondeterministic("only used for a log line, never for a decision")]
    fn elapsed_ms(since: std::time::Instant) -> u128 {
        since.elapsed().as_millis()
    }

    #[durable::allow_nondeterministic("the process start time, only logged")]
    static STARTED: std::sync::LazyLock<std::time::Instant> =
        std::sync::LazyLock::new(std::time::Instant::now);

    struct Stopwatch(std::time::Instant);

    #[durable::allow_nondeterministic("a stopwatch for log lines")]
    impl Stopwatch {
        fn start() -> Self {
            Stopwatch(std::time::Instant::now())
        }
    }

    #[durable::allow_nondeterministic("only logged")]
    let started = *STARTED;
    if !ctx.is_replaying() {
        #[durable::allow_nondeterministic("only logged")]
        println!("{} ms, {:?}", elapsed_ms(started), Stopwatch::start().0.elapsed());
    }
    let n = match ctx.random_u64() % 2 {
        #[durable::allow_nondeterministic("debug builds only; the value is never recorded")]
        0 => std::env::var("DEBUG").map(|_| 1).unwrap_or(0),
        _ => 2,
    };
    Ok(n)
}

fn main() {}
