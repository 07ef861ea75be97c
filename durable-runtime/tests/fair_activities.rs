//! Activity scheduling is fair between instances: one instance fanning out to thousands of
//! activities does not hold another instance's activity behind its whole backlog (the workers
//! take one activity from each instance in turn). Asserted by counting, not by time.

mod support;

use durable_runtime::prelude::*;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock};
use support::{TestStore, WAIT};
use tokio::sync::watch;

/// Per test: a gate the fan-out's activities wait at, how many reached it, and how many
/// finished.
struct Gate {
    open: watch::Sender<bool>,
    arrived: watch::Sender<usize>,
    done: watch::Sender<usize>,
}

static GATES: LazyLock<Mutex<HashMap<String, Arc<Gate>>>> = LazyLock::new(Default::default);

fn gate(tag: &str) -> Arc<Gate> {
    GATES
        .lock()
        .entry(tag.to_string())
        .or_insert_with(|| {
            Arc::new(Gate {
                open: watch::Sender::new(false),
                arrived: watch::Sender::new(0),
                done: watch::Sender::new(0),
            })
        })
        .clone()
}

#[activity]
async fn crunch(input: (String, u64)) -> u64 {
    let (tag, n) = input;
    let gate = gate(&tag);
    gate.arrived.send_modify(|arrived| *arrived += 1);
    let _ = gate.open.subscribe().wait_for(|open| *open).await;
    gate.done.send_modify(|done| *done += 1);
    n * 2
}

/// How many fan-out activities had finished when it ran.
#[activity]
async fn count_so_far(tag: String) -> usize {
    *gate(&tag).done.borrow()
}

#[orchestrator]
async fn fan_out(
    ctx: OrchestrationContext,
    input: (String, u64),
) -> Result<u64, OrchestrationError> {
    let (tag, n) = input;
    let calls = (0..n).map(|i| ctx.call_activity(crunch, (tag.clone(), i)));
    let results = ctx.when_all(calls).await;
    let mut sum = 0;
    for result in results {
        sum += result?;
    }
    Ok(sum)
}

#[orchestrator]
async fn just_one(ctx: OrchestrationContext, tag: String) -> Result<usize, OrchestrationError> {
    Ok(ctx.call_activity(count_so_far, tag).await?)
}

async fn a_single_activity_overtakes_a_fan_out(
    tag: &str,
    activities: u64,
    settings: impl FnOnce(durable_runtime::RuntimeBuilder) -> durable_runtime::RuntimeBuilder,
) {
    let store = TestStore::new();
    let (runtime, client) = store
        .start_with(|builder| settings(builder.activity_concurrency(2)))
        .await;
    let big = client
        .start(fan_out, (tag.to_string(), activities))
        .await
        .expect("starts");
    // The fan-out's activities are queued, and the first two hold both activity slots.
    let gate = gate(tag);
    let mut arrived = gate.arrived.subscribe();
    let running = tokio::time::timeout(WAIT, arrived.wait_for(|arrived| *arrived >= 2)).await;
    assert!(running.is_ok_and(|r| r.is_ok()), "the fan-out runs");
    let small = client
        .start(just_one, tag.to_string())
        .await
        .expect("starts");
    // Its activity is queued behind the fan-out's backlog; then the backlog moves.
    support::until_recorded(&client, &small, "the single activity", 1, |event| {
        matches!(event, durable_runtime::HistoryEvent::TaskScheduled { .. })
    })
    .await;
    // Recorded is not yet queued: the step's work reaches the queue just after its commit.
    let queued = async {
        while runtime.queued_activities() < activities as usize - 1 {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(WAIT, queued)
        .await
        .expect("the single activity is queued");
    assert_eq!(*gate.done.borrow(), 0);
    gate.open.send_replace(true);
    let status = client
        .wait_for_completion(&small, WAIT)
        .await
        .expect("completes");
    let overtaken: usize = status.output_as().expect("output");
    // Two slots, one turn each way: the single activity waits for a handful of the fan-out's
    // activities, not for its backlog.
    assert!(
        overtaken <= 8,
        "the single activity ran after {overtaken} of {activities} fan-out activities"
    );
    let status = client
        .wait_for_completion(&big, WAIT)
        .await
        .expect("completes");
    assert_eq!(
        status.output_as::<u64>().expect("output"),
        activities * (activities - 1),
        "every fan-out activity ran and was recorded once"
    );
    assert_eq!(*gate.done.borrow(), activities as usize);
    runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fan_out_does_not_hold_other_instances_activities_behind_its_backlog() {
    a_single_activity_overtakes_a_fan_out("hot", 20_000, |builder| builder).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fair_on_the_replay_path() {
    a_single_activity_overtakes_a_fan_out("replay", 400, |builder| builder.cache_capacity(0)).await;
}
