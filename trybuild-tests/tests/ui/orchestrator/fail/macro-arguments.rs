use durable_runtime::prelude::*;

macro_rules! twice {
    ($e:expr) => {
        ($e, $e)
    };
}

#[orchestrator]
async fn workflow(ctx: OrchestrationContext) -> Result<(), OrchestrationError> {
    let _ = &ctx;
    let _stamps = vec![std::time::SystemTime::now(); 3];
    let _line = format!("home: {:?}", std::env::var("HOME"));
    assert!(rand::random::<u8>() < 255, "the roll was {}", 1);
    let _pair = twice!(std::time::Instant::now());
    Ok(())
}

fn main() {}
