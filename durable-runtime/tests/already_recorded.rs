//! A step answered `AlreadyRecorded` (results it carries were recorded by a commit whose
//! answer was lost) drops those results and goes on with what is left under the claim it
//! holds; with nothing left, it releases the instance as after any step. Giving the claim up
//! and claiming again regardless would let a result arriving in between start a second worker
//! on the instance, and two of its steps would run at once.

mod support;

use durable_runtime::HistoryEvent;
use durable_runtime::prelude::*;
use durable_runtime::store::{StoreError, Write};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use support::hooked::{BoxFut, Hook, Phase};
use support::{TestStore, WAIT};
use tokio::sync::Semaphore;

const INSTANCES: u64 = 3;
const FAN_OUT: u64 = 30;

/// Held until the test hands out permits: the first result arrives alone, so that its step
/// carries results only (the step the hook answers), and the rest stream in.
static RESULTS: Semaphore = Semaphore::const_new(0);

#[activity]
async fn square(n: u64) -> Result<u64, ActivityError> {
    RESULTS
        .acquire()
        .await
        .map_err(|_| ActivityError::new("gate closed"))?
        .forget();
    Ok(n * n)
}

#[activity]
async fn cube(n: u64) -> u64 {
    n * n * n
}

#[orchestrator]
async fn squares_then_cube(ctx: OrchestrationContext, n: u64) -> Result<u64, OrchestrationError> {
    let squares = ctx
        .when_all((1..=n).map(|i| ctx.call_activity(square, i)))
        .await;
    let mut sum = 0;
    for square in squares {
        sum += square?;
    }
    // Work after the fan-out: an instance left claimed (or stuck retrying) never gets here.
    Ok(sum + ctx.call_activity(cube, n).await?)
}

fn expected(n: u64) -> u64 {
    (1..=n).map(|i| i * i).sum::<u64>() + n * n * n
}

/// What the hook saw of each instance's steps.
#[derive(Default)]
struct Steps {
    /// Step writes of each instance between their arrival and their answer.
    in_flight: Mutex<HashMap<String, usize>>,
    /// Step writes that arrived while another of the same instance was in flight.
    overlaps: AtomicUsize,
    /// Steps carrying only results (nothing scheduled, nothing finished) seen so far.
    result_only: AtomicUsize,
    /// Of those, the ones answered `AlreadyRecorded` after they were applied.
    answered: AtomicUsize,
}

/// Applies every step; every other step that only records results is answered
/// `AlreadyRecorded` for them, as a retry of a commit whose answer was lost is. Steps that
/// schedule work are left alone: what an unanswered step scheduled is dispatched only at the
/// next start.
fn answer_already_recorded(steps: Arc<Steps>) -> Hook {
    Arc::new(move |phase, write| -> BoxFut {
        let Write::Step(step) = write else {
            return Box::pin(async { None });
        };
        let mut in_flight = steps.in_flight.lock().expect("not poisoned");
        let count = in_flight.entry(step.instance_id.clone()).or_default();
        let answer = match phase {
            Phase::Before => {
                *count += 1;
                if *count > 1 {
                    steps.overlaps.fetch_add(1, Ordering::SeqCst);
                }
                None
            }
            Phase::After => {
                *count -= 1;
                let result_only = !step.completed_activities.is_empty()
                    && step.activities.is_empty()
                    && step.timers.is_empty()
                    && step.children.is_empty()
                    && step.status == Some(RuntimeStatus::Running);
                (result_only
                    && steps
                        .result_only
                        .fetch_add(1, Ordering::SeqCst)
                        .is_multiple_of(2))
                .then(|| {
                    steps.answered.fetch_add(1, Ordering::SeqCst);
                    StoreError::AlreadyRecorded(step.completed_activities.clone())
                })
            }
        };
        Box::pin(async move { answer })
    })
}

/// A step that kept the recorded results would be refused with them again, forever; one that
/// left the instance claimed with none left would never step the results behind it: either
/// way an instance does not complete. The overlap count catches a second worker stepping an
/// instance, should a result slip in while the claim is given up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_answered_already_recorded_goes_on_alone() {
    let store = TestStore::new();
    let steps = Arc::new(Steps::default());
    let runtime = store
        .hooked_builder(answer_already_recorded(steps.clone()))
        .start()
        .await
        .expect("starts");
    let client = runtime.client();
    let mut ids = Vec::new();
    for i in 0..INSTANCES {
        let n = FAN_OUT + i;
        ids.push((client.start(squares_then_cube, n).await.expect("start"), n));
    }

    RESULTS.add_permits(1);
    let first_answered = async {
        while steps.answered.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(WAIT, first_answered)
        .await
        .expect("the first result's step is answered AlreadyRecorded");
    let squares: u64 = ids.iter().map(|(_, n)| n).sum();
    RESULTS.add_permits(squares as usize - 1);

    for (id, n) in &ids {
        let status = client
            .wait_for_completion(id, WAIT)
            .await
            .expect("completes after its results were answered AlreadyRecorded");
        assert_eq!(status.output_as::<u64>().expect("output"), expected(*n));
        let mut completed: BTreeMap<u64, usize> = BTreeMap::new();
        for record in support::history(&client, id).await {
            if let HistoryEvent::TaskCompleted { task_id, .. } = record.event {
                *completed.entry(task_id).or_default() += 1;
            }
        }
        assert_eq!(completed.len() as u64, n + 1, "every result recorded");
        assert!(
            completed.values().all(|&times| times == 1),
            "a result recorded twice: {completed:?}"
        );
    }
    println!(
        "{} of {} result-only steps answered AlreadyRecorded",
        steps.answered.load(Ordering::SeqCst),
        steps.result_only.load(Ordering::SeqCst)
    );
    assert_eq!(
        steps.overlaps.load(Ordering::SeqCst),
        0,
        "two steps of one instance were committing at once"
    );
    runtime.shutdown().await;
}
