//! The human-interaction example under the test harness: its real 72-hour approval timeout
//! passes in virtual time, on both engine paths.

#[allow(dead_code)]
#[path = "../examples/human_interaction.rs"]
mod example;

use durable_runtime::prelude::*;
use durable_runtime::testing::TestRuntime;
use example::{APPROVAL_TIMEOUT, Request, approval, ask_for_approval, escalate};

const HOUR: Duration = Duration::from_secs(3600);

fn laptop() -> Request {
    Request {
        what: "a laptop".into(),
        // The real timeout: 72 hours.
        timeout_ms: None,
    }
}

/// The hot cache, and none (every step replays the history).
async fn test_runtimes() -> Vec<TestRuntime> {
    let mut runtimes = Vec::new();
    for cache in [None, Some(0)] {
        let test = TestRuntime::builder()
            .configure(move |runtime| match cache {
                Some(capacity) => runtime.cache_capacity(capacity),
                None => runtime,
            })
            .start()
            .await
            .expect("the test runtime starts");
        runtimes.push(test);
    }
    runtimes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_request_is_escalated_after_72_hours() {
    for test in test_runtimes().await {
        let wall = std::time::Instant::now();
        let id = test
            .client()
            .start(approval, laptop())
            .await
            .expect("starts");
        let status = test.wait_for_completion(&id).await.expect("completes");
        assert_eq!(
            status.output_as::<String>().expect("output"),
            "nobody answered: a laptop escalated to the director"
        );
        assert_eq!(test.elapsed(), APPROVAL_TIMEOUT);
        assert_eq!(test.activity_names(), ["ask_for_approval", "escalate"]);
        assert!(
            wall.elapsed() < Duration::from_secs(20),
            "{:?}",
            wall.elapsed()
        );
        test.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_in_the_last_hour_wins_and_nobody_is_escalated() {
    for test in test_runtimes().await {
        // No manager is asked for real.
        test.mock_activity(ask_for_approval, |what: String| {
            format!("asked about {what}")
        })
        .expect("mocked");
        let id = test
            .client()
            .start(approval, laptop())
            .await
            .expect("starts");
        test.advance(HOUR * 71).await.expect("advances");
        test.client()
            .raise_event(&id, "approval", true)
            .await
            .expect("raised");
        let status = test.wait_for_completion(&id).await.expect("completes");
        assert_eq!(
            status.output_as::<String>().expect("output"),
            "a laptop approved"
        );
        assert_eq!(
            test.calls_of(ask_for_approval).expect("activity"),
            ["a laptop"]
        );
        assert!(test.calls_of(escalate).expect("activity").is_empty());
        assert_eq!(test.elapsed(), HOUR * 71);
        test.shutdown().await;
    }
}
