//! The chaining example under the replay tester: a history recorded by the example (committed
//! in `tests/fixtures/`) must still replay against its code. A change that would break the
//! instances in flight fails here, before a deployment.
//!
//! To record the fixture again (after a deliberate, versioned change):
//! `DURABLE_RECORD_FIXTURES=1 cargo test --test chaining`.

#[allow(dead_code)]
#[path = "../examples/chaining.rs"]
mod example;

use durable_runtime::prelude::*;
use durable_runtime::testing::{
    ReplayReport, TestRuntime, load_history, replay_history, save_history,
};
use example::{hello_sequence, say_hello};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/chaining_hello_sequence.json"
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_recorded_history_replays_against_the_current_code() {
    if std::env::var_os("DURABLE_RECORD_FIXTURES").is_some() {
        let test = TestRuntime::new().await.expect("starts");
        let id = test
            .client()
            .start_with_id(hello_sequence, "chaining-fixture", ())
            .await
            .expect("starts");
        let status = test.wait_for_completion(&id).await.expect("completes");
        save_history(FIXTURE, &status.history.expect("history")).expect("saved");
        test.shutdown().await;
    }
    let history = load_history(FIXTURE).expect("the committed fixture loads");
    replay_history(hello_sequence, &history)
        .expect("replays")
        .into_result()
        .expect("the current code replays the recorded history");
}

/// What a careless edit of the example would look like: a city added first.
#[orchestrator]
async fn hello_sequence_with_paris(
    ctx: OrchestrationContext,
) -> Result<Vec<String>, OrchestrationError> {
    let mut out = Vec::new();
    for city in ["Paris", "Tokyo", "Seattle", "London"] {
        out.push(ctx.call_activity(say_hello, city.to_string()).await?);
    }
    Ok(out)
}

#[test]
fn a_breaking_change_fails_against_the_fixture() {
    let history = load_history(FIXTURE).expect("the committed fixture loads");
    // Same activity, one more call: history has `say_hello` for task 3 nowhere, so the fourth
    // call is new work where the recorded run completed.
    match replay_history(hello_sequence_with_paris, &history).expect("replays") {
        ReplayReport::Diverged(divergence) => {
            assert_eq!(divergence.recorded, "ExecutionCompleted");
            assert_eq!(divergence.new, "schedules activity 'say_hello' instead");
            assert_eq!(divergence.event_index, history.len() - 1);
        }
        ReplayReport::Compatible => panic!("a fourth call must not replay a three-call history"),
    }
}
