//! The monitor example under the test harness: checks hours apart, and a 12-hour expiry, in
//! virtual time.

#[allow(dead_code)]
#[path = "../examples/monitor.rs"]
mod example;

use durable_runtime::prelude::*;
use durable_runtime::testing::TestRuntime;
use example::{Watch, job_is_done, monitor};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

const HOUR_MS: u64 = 3_600_000;

fn hourly(job: &str) -> Watch {
    Watch {
        job: job.to_string(),
        poll_every_ms: HOUR_MS,
        expire_after_ms: 12 * HOUR_MS,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_never_finishes_expires_after_twelve_hours_of_hourly_checks() {
    for cache in [None, Some(0)] {
        let test = TestRuntime::builder()
            .configure(move |runtime| match cache {
                Some(capacity) => runtime.cache_capacity(capacity),
                None => runtime,
            })
            .start()
            .await
            .expect("starts");
        // The example's own activity: a job other than "quick" never finishes.
        let job = format!("stuck-{cache:?}");
        let id = test
            .client()
            .start(monitor, hourly(&job))
            .await
            .expect("starts");
        let status = test.wait_for_completion(&id).await.expect("completes");
        assert_eq!(
            status.output_as::<String>().expect("output"),
            format!("job '{job}' still not done after 13 checks: monitor expired")
        );
        assert_eq!(test.elapsed(), Duration::from_secs(12 * 3600));
        assert_eq!(test.calls_of(job_is_done).expect("activity").len(), 13);
        test.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_done_at_the_third_check_is_reported_two_hours_in() {
    let test = TestRuntime::new().await.expect("starts");
    let checks = Arc::new(AtomicU32::new(0));
    let counted = checks.clone();
    test.mock_activity(job_is_done, move |_job: String| {
        counted.fetch_add(1, Ordering::SeqCst) + 1 >= 3
    })
    .expect("mocked");
    let id = test
        .client()
        .start(monitor, hourly("build"))
        .await
        .expect("starts");
    let status = test.wait_for_completion(&id).await.expect("completes");
    assert_eq!(
        status.output_as::<String>().expect("output"),
        "job 'build' done after 3 checks"
    );
    assert_eq!(checks.load(Ordering::SeqCst), 3);
    assert_eq!(test.elapsed(), Duration::from_secs(2 * 3600));
    test.shutdown().await;
}
