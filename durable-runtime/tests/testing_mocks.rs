//! The test harness's mocks (`durable_runtime::testing::TestRuntime::mock_activity`): a mocked
//! activity never runs for real while an unmocked one does, a mock that panics fails its task
//! only, and mocking what is not an activity is a typed error.

mod support;

use durable_runtime::prelude::*;
use durable_runtime::testing::{TestError, TestRuntime};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A test runtime on one of the engine paths of [`support::CACHES`].
async fn test_runtime(cache: Option<usize>) -> TestRuntime {
    TestRuntime::builder()
        .configure(support::cache_settings(cache))
        .start()
        .await
        .expect("the test runtime starts")
}

static REAL_CHARGES: AtomicUsize = AtomicUsize::new(0);

#[activity]
async fn charge(cents: u64) -> String {
    REAL_CHARGES.fetch_add(1, Ordering::SeqCst);
    format!("really charged {cents}")
}

#[activity]
async fn double(n: u64) -> u64 {
    n * 2
}

#[orchestrator]
async fn checkout(ctx: OrchestrationContext, cents: u64) -> Result<String, OrchestrationError> {
    let total = ctx.call_activity(double, cents).await?;
    let receipt = ctx.call_activity(charge, total).await?;
    Ok(receipt)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mocked_activity_never_runs_for_real_and_an_unmocked_one_does() {
    // Only this test uses `charge`: its counter counts real runs of it alone.
    let test = test_runtime(None).await;
    test.mock_activity(charge, |cents: u64| format!("pretended to charge {cents}"))
        .expect("mocked");
    let id = test.client().start(checkout, 21).await.expect("starts");
    let status = test.wait_for_completion(&id).await.expect("completes");
    // `double` ran for real (21 * 2); `charge` was the mock.
    assert_eq!(
        status.output_as::<String>().expect("output"),
        "pretended to charge 42"
    );
    assert_eq!(REAL_CHARGES.load(Ordering::SeqCst), 0);
    let calls = test.activity_calls();
    let seen: Vec<(String, String)> = calls
        .iter()
        .map(|call| (call.name.clone(), call.input.as_str().to_string()))
        .collect();
    assert_eq!(
        seen,
        [
            ("double".to_string(), "21".to_string()),
            ("charge".to_string(), "42".to_string())
        ]
    );
    assert!(calls.iter().all(|call| call.instance_id == id));
    // The mock is this runtime's: another runtime in the same binary runs the real one.
    let other = test_runtime(None).await;
    let id = other.client().start(checkout, 5).await.expect("starts");
    let status = other.wait_for_completion(&id).await.expect("completes");
    assert_eq!(
        status.output_as::<String>().expect("output"),
        "really charged 10"
    );
    assert_eq!(REAL_CHARGES.load(Ordering::SeqCst), 1);
    // And unmocked, this one runs the real function too.
    test.unmock_activity(charge).expect("unmocked");
    let id = test.client().start(checkout, 1).await.expect("starts");
    let status = test.wait_for_completion(&id).await.expect("completes");
    assert_eq!(
        status.output_as::<String>().expect("output"),
        "really charged 2"
    );
    assert_eq!(REAL_CHARGES.load(Ordering::SeqCst), 2);
    other.shutdown().await;
    test.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mock_that_panics_fails_its_task_not_the_runtime() {
    let test = test_runtime(None).await;
    test.mock_activity(double, |_: u64| -> u64 { panic!("the mock broke") })
        .expect("mocked");
    let id = test.client().start(checkout, 1).await.expect("starts");
    let status = test.wait_for_completion(&id).await.expect("finishes");
    assert_eq!(status.runtime_status, RuntimeStatus::Failed);
    let failure = status.failure.expect("a failure");
    assert!(failure.message.contains("the mock broke"), "{failure:?}");
    test.shutdown().await;
}

async fn not_an_activity(n: u64) -> u64 {
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mocking_a_function_that_is_not_an_activity_is_a_typed_error() {
    let test = test_runtime(None).await;
    let refused = test.mock_activity(not_an_activity, |n: u64| n);
    assert!(
        matches!(&refused, Err(TestError::NotAnActivity(name)) if name.contains("not_an_activity")),
        "{refused:?}"
    );
    assert!(matches!(
        test.calls_of(not_an_activity),
        Err(TestError::NotAnActivity(_))
    ));
    test.shutdown().await;
}
