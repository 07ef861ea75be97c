//! Store errors are handled by their class: a transient error is retried until it passes, a
//! permanent one fails the instance with the reason instead of being retried forever, and a
//! payload over the limit is refused where it is encoded, with its size and the limit. A
//! failure the store refuses to record leaves the instance unfinished, and whoever waits for
//! it keeps waiting.

mod support;

use durable_runtime::prelude::*;
use durable_runtime::store::{StoreError, Write};
use durable_runtime::{Error, HistoryEvent};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use support::hooked::{BoxFut, Hook, Phase};
use support::{TestStore, WAIT};

#[activity]
async fn add_one(n: u32) -> u32 {
    n + 1
}

#[orchestrator]
async fn three_steps(ctx: OrchestrationContext, n: u32) -> Result<u32, OrchestrationError> {
    let mut n = n;
    for _ in 0..3 {
        n = ctx.call_activity(add_one, n).await?;
    }
    Ok(n)
}

/// Fails the first `failures` step writes before they reach the store with `error()`.
fn failing_steps(failures: u32, error: fn() -> StoreError, seen: Arc<AtomicU32>) -> Hook {
    Arc::new(move |phase, write| -> BoxFut {
        let fail = phase == Phase::Before
            && matches!(write, Write::Step(step) if step.status.is_some())
            && seen.fetch_add(1, Ordering::SeqCst) < failures;
        Box::pin(async move { fail.then(error) })
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transient_error_is_retried_until_it_passes() {
    let store = TestStore::new();
    let seen = Arc::new(AtomicU32::new(0));
    let hook = failing_steps(
        4,
        || StoreError::Unavailable("disk full (injected)".into()),
        seen.clone(),
    );
    let runtime = store.hooked_builder(hook).start().await.expect("starts");
    let client = runtime.client();
    let id = client.start(three_steps, 1).await.expect("start");
    let status = client.wait_for_completion(&id, WAIT).await.expect("done");
    assert_eq!(status.output_as::<u32>().expect("output"), 4);
    assert!(seen.load(Ordering::SeqCst) > 4, "the failures were retried");
    let history = support::history(&client, &id).await;
    let completed = history
        .iter()
        .filter(|r| matches!(r.event, HistoryEvent::TaskCompleted { .. }))
        .count();
    assert_eq!(completed, 3, "each result recorded once: {history:?}");
    runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_error_fails_the_instance_instead_of_retrying_forever() {
    let store = TestStore::new();
    let seen = Arc::new(AtomicU32::new(0));
    let hook = failing_steps(
        u32::MAX,
        || StoreError::Refused("string or blob too big (injected)".into()),
        seen.clone(),
    );
    let runtime = store.hooked_builder(hook).start().await.expect("starts");
    let client = runtime.client();
    let id = client.start(three_steps, 1).await.expect("start");
    let status = client.wait_for_completion(&id, WAIT).await.expect("done");
    assert_eq!(status.runtime_status, RuntimeStatus::Failed);
    let message = status.failure.expect("failure").message;
    assert!(message.contains("string or blob too big"), "{message}");
    assert_eq!(seen.load(Ordering::SeqCst), 1, "not retried");
    runtime.shutdown().await;
}

#[orchestrator]
async fn sends(ctx: OrchestrationContext, size: usize) -> Result<String, OrchestrationError> {
    match ctx.call_activity(add_len, "x".repeat(size)).await {
        Ok(n) => Ok(format!("ok {n}")),
        Err(failed) => Ok(failed.message),
    }
}

#[activity]
async fn add_len(text: String) -> usize {
    text.len()
}

#[activity]
async fn grow(size: usize) -> String {
    "y".repeat(size)
}

#[orchestrator]
async fn receives(ctx: OrchestrationContext, size: usize) -> Result<String, OrchestrationError> {
    match ctx.call_activity(grow, size).await {
        Ok(text) => Ok(format!("ok {}", text.len())),
        Err(failed) => Ok(failed.message),
    }
}

#[orchestrator]
async fn returns(_ctx: OrchestrationContext, size: usize) -> String {
    "z".repeat(size)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payloads_over_the_limit_are_refused_with_their_size() {
    let store = TestStore::new();
    let (runtime, client) = store.start_with(|b| b.max_payload_size(1_000)).await;

    let err = client
        .start(returns, 0)
        .await
        .map(|_| ())
        .and(
            client
                .start_by_name("returns", None, "w".repeat(2_000))
                .await
                .map(|_| ()),
        )
        .expect_err("the input is over the limit");
    assert!(
        matches!(
            err,
            Error::PayloadTooLarge {
                size: 2_002,
                limit: 1_000,
                ..
            }
        ),
        "{err}"
    );

    let id = client.start(sends, 2_000).await.expect("start");
    let status = client.wait_for_completion(&id, WAIT).await.expect("done");
    let message: String = status.output_as().expect("output");
    assert_eq!(
        message,
        "the input for 'add_len' is 2002 bytes, over the payload limit of 1000 bytes"
    );

    let id = client.start(receives, 2_000).await.expect("start");
    let status = client.wait_for_completion(&id, WAIT).await.expect("done");
    let message: String = status.output_as().expect("output");
    assert_eq!(
        message,
        "the result of activity 'grow' is 2002 bytes, over the payload limit of 1000 bytes"
    );

    let id = client.start(returns, 2_000).await.expect("start");
    let status = client.wait_for_completion(&id, WAIT).await.expect("done");
    assert_eq!(status.runtime_status, RuntimeStatus::Failed);
    assert_eq!(
        status.failure.expect("failure").message,
        "the output of orchestrator 'returns' is 2002 bytes, over the payload limit of 1000 bytes"
    );

    let id = client
        .start(sends, 10)
        .await
        .expect("under the limit works");
    let status = client.wait_for_completion(&id, WAIT).await.expect("done");
    assert_eq!(status.output_as::<String>().expect("output"), "ok 10");

    let err = client
        .raise_event(&id, "big", "e".repeat(2_000))
        .await
        .expect_err("event data over the limit");
    assert!(matches!(err, Error::PayloadTooLarge { .. }), "{err}");
    runtime.shutdown().await;
}

/// Refuses every step of an instance and, once `open` says true, the write recording its
/// failure, counting those refusals in `refused`.
fn failure_unrecordable(open: tokio::sync::watch::Receiver<bool>, refused: Arc<AtomicU32>) -> Hook {
    Arc::new(move |phase, write| -> BoxFut {
        let (mut open, refused) = (open.clone(), refused.clone());
        let step = matches!(write, Write::Step(step) if step.status.is_some());
        let failure = matches!(write, Write::FailInstance { .. });
        Box::pin(async move {
            if phase != Phase::Before {
                return None;
            }
            if step {
                return Some(StoreError::Refused("injected: step".into()));
            }
            if !failure {
                return None;
            }
            let _ = open.wait_for(|open| *open).await;
            refused.fetch_add(1, Ordering::SeqCst);
            Some(StoreError::Refused("injected: failure".into()))
        })
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_that_cannot_be_recorded_does_not_end_the_wait() {
    // Long enough for the wake-ups below to come before it ends on a loaded machine.
    const TIMEOUT: Duration = Duration::from_secs(6);
    let store = TestStore::new();
    let (open, gate) = tokio::sync::watch::channel(false);
    let refused = Arc::new(AtomicU32::new(0));
    let runtime = store
        .hooked_builder(failure_unrecordable(gate, refused.clone()))
        .start()
        .await
        .expect("starts");
    let client = runtime.client();
    let id = client.start(three_steps, 1).await.expect("start");

    let waiting = {
        let (client, id) = (client.clone(), id.clone());
        async move { client.wait_for_completion(&id, TIMEOUT).await }
    };
    let mut waiting = Box::pin(waiting);
    // Polled once, the wait has registered for the wake-up before anything below sends one.
    assert!(futures::poll!(&mut waiting).is_pending());
    let started = std::time::Instant::now();
    let waiting = tokio::spawn(waiting);

    open.send_replace(true);
    let refusal = async {
        while refused.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(WAIT, refusal)
        .await
        .expect("the failure's write is refused");
    // Status changes that do not finish the instance wake the wait too.
    client.suspend(&id, "test").await.expect("suspends");
    client.resume(&id, "test").await.expect("resumes");
    assert!(
        started.elapsed() < TIMEOUT,
        "the wake-ups came after the wait ended; the test proves nothing"
    );

    match waiting.await.expect("the wait does not panic") {
        Err(Error::Timeout { .. }) => {}
        Ok(status) if status.runtime_status.is_terminal() => {}
        other => panic!("a wait woken on an unfinished instance returned {other:?}"),
    }
    let status = client
        .get_status(&id)
        .await
        .expect("reads")
        .expect("exists");
    assert!(
        !status.runtime_status.is_terminal(),
        "the failure was not recorded: {status:?}"
    );
    runtime.shutdown().await;
}
