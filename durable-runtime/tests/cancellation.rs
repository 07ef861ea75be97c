//! Work that is durable is delivered, whatever its caller does: a caller that stops waiting
//! after its write was queued, an event committed in the same batch as its instance's start,
//! and a shutdown while every activity slot is held by work that never ends.

mod support;

use durable_runtime::HistoryEvent;
use durable_runtime::prelude::*;
use durable_runtime::store::Write;
use std::sync::Arc;
use support::WAIT;
use support::hooked::{BoxFut, Hook, Phase};
use tokio::sync::Notify;

#[orchestrator]
async fn wait_for_go(ctx: OrchestrationContext) -> Result<String, OrchestrationError> {
    Ok(ctx.wait_for_event::<String>("go").await?)
}

#[orchestrator]
async fn instant(_ctx: OrchestrationContext, n: u32) -> u32 {
    n + 1
}

/// A hook that holds back writes matching `gated` until `open` is notified, and tells
/// `arrived` when one got there.
fn gate(gated: fn(&Write) -> bool, arrived: Arc<Notify>, open: Arc<Notify>) -> Hook {
    Arc::new(move |phase, write| -> BoxFut {
        let hold = phase == Phase::Before && gated(write);
        let (arrived, open) = (arrived.clone(), open.clone());
        Box::pin(async move {
            if hold {
                arrived.notify_one();
                open.notified().await;
            }
            None
        })
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_whose_caller_gave_up_still_runs() {
    let store = support::TestStore::new();
    let (arrived, open) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let hook = gate(
        |w| matches!(w, Write::CreateInstance(_)),
        arrived.clone(),
        open.clone(),
    );
    let runtime = store.hooked_builder(hook).start().await.expect("starts");
    let client = runtime.client();
    let starting = {
        let client = client.clone();
        tokio::spawn(async move { client.start_with_id(instant, "given-up", 41).await })
    };
    arrived.notified().await;
    // The caller goes away (a timeout, a dropped HTTP request) while its write is in flight.
    starting.abort();
    assert!(starting.await.is_err(), "the caller was cancelled");
    open.notify_one();
    // The write goes on without its caller; wait until it is durable.
    tokio::time::timeout(WAIT, async {
        while client
            .get_status("given-up")
            .await
            .expect("reads")
            .is_none()
        {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the abandoned start commits");
    let status = client
        .wait_for_completion("given-up", WAIT)
        .await
        .expect("the durable start is dispatched without its caller");
    assert_eq!(status.output_as::<u32>().expect("output"), 42);
    runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_whose_caller_gave_up_is_still_delivered() {
    let store = support::TestStore::new();
    let (arrived, open) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let hook = gate(
        |w| matches!(w, Write::RaiseEvent { .. }),
        arrived.clone(),
        open.clone(),
    );
    let runtime = store.hooked_builder(hook).start().await.expect("starts");
    let client = runtime.client();
    let id = client.start(wait_for_go, ()).await.expect("start");
    let raising = {
        let (client, id) = (client.clone(), id.clone());
        tokio::spawn(async move { client.raise_event(&id, "go", "now").await })
    };
    arrived.notified().await;
    raising.abort();
    assert!(raising.await.is_err(), "the caller was cancelled");
    open.notify_one();
    let status = client
        .wait_for_completion(&id, WAIT)
        .await
        .expect("the durable event is delivered without its caller");
    assert_eq!(status.output_as::<String>().expect("output"), "now");
    runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_delivered_before_its_instances_start_is_kept() {
    let store = support::TestStore::new();
    // The start's answer is held back until the event's answer has gone out, so the event
    // reaches the worker first, as when both commit in one batch.
    let event_answered = Arc::new(Notify::new());
    let hook: Hook = {
        let event_answered = event_answered.clone();
        Arc::new(move |phase, write| -> BoxFut {
            let event_answered = event_answered.clone();
            let create = phase == Phase::After && matches!(write, Write::CreateInstance(_));
            let raise = phase == Phase::After && matches!(write, Write::RaiseEvent { .. });
            Box::pin(async move {
                if create {
                    event_answered.notified().await;
                }
                if raise {
                    event_answered.notify_one();
                }
                None
            })
        })
    };
    let runtime = store.hooked_builder(hook).start().await.expect("starts");
    let client = runtime.client();
    let starting = {
        let client = client.clone();
        tokio::spawn(async move { client.start_with_id(wait_for_go, "raced", ()).await })
    };
    // The instance row exists once the create committed; raise as soon as it does.
    loop {
        match client.raise_event("raced", "go", "early").await {
            Ok(()) => break,
            Err(durable_runtime::Error::InstanceNotFound(_)) => tokio::task::yield_now().await,
            Err(err) => panic!("raise failed: {err}"),
        }
    }
    starting.await.expect("task").expect("started");
    let status = client
        .wait_for_completion("raced", WAIT)
        .await
        .expect("the instance finishes with the early event");
    assert_eq!(status.output_as::<String>().expect("output"), "early");
    runtime.shutdown().await;
}

#[activity]
async fn hang_forever(_n: u32) -> u32 {
    std::future::pending::<u32>().await
}

#[orchestrator]
async fn fan_out_hung(ctx: OrchestrationContext, n: u32) -> Result<Vec<u32>, OrchestrationError> {
    let tasks = (0..n).map(|i| ctx.call_activity(hang_forever, i));
    let mut out = Vec::new();
    for result in ctx.when_all(tasks).await {
        out.push(result?);
    }
    Ok(out)
}

#[orchestrator]
async fn one_hung(ctx: OrchestrationContext) -> Result<String, OrchestrationError> {
    match ctx.call_activity(hang_forever, 1).await {
        Ok(n) => Ok(format!("returned {n}")),
        Err(failed) => Ok(failed.message),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_honours_its_timeout_with_every_activity_slot_hung() {
    let store = support::TestStore::new();
    let (runtime, client) = store
        .start_with(|b| {
            b.activity_concurrency(2)
                .shutdown_timeout(Duration::from_millis(200))
        })
        .await;
    // Two activities take both slots forever; a third waits for a slot.
    let id = client.start(fan_out_hung, 3).await.expect("start");
    support::until_recorded(&client, &id, "three activities scheduled", 3, |e| {
        matches!(e, HistoryEvent::TaskScheduled { .. })
    })
    .await;
    tokio::time::timeout(Duration::from_secs(10), runtime.shutdown())
        .await
        .expect("shutdown returns within its timeout (plus slack), not never");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_activity_over_its_timeout_fails_its_task_and_frees_its_slot() {
    let store = support::TestStore::new();
    let (runtime, client) = store
        .start_with(|b| {
            b.activity_concurrency(1)
                .activity_timeout_for("hang_forever", Duration::from_millis(100))
        })
        .await;
    let first = client.start(one_hung, ()).await.expect("start");
    let second = client.start(one_hung, ()).await.expect("start");
    for id in [first, second] {
        let status = client.wait_for_completion(&id, WAIT).await.expect("done");
        let message: String = status.output_as().expect("output");
        assert!(
            message.contains("start-to-close timeout of 100ms"),
            "{message}"
        );
    }
    runtime.shutdown().await;
}
