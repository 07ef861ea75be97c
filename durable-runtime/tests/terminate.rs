//! `Client::terminate`: the instance ends `Terminated` with its work discarded, a step in flight
//! is fenced, sub-orchestrations are terminated with their parent, a terminated child fails its
//! parent's call; and the typed refusals where it does not apply. Hot and replayed.

mod support;

use durable_runtime::prelude::*;
use durable_runtime::store::{StoreError, Write};
use durable_runtime::{Client, HistoryEvent, StartOptions};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;
use support::hooked::{BoxFut, Hook, Phase};
use support::{CACHES, TestStore, WAIT, cache_settings as settings, count_rows};

#[orchestrator]
async fn naps_an_hour(ctx: OrchestrationContext) -> u32 {
    ctx.sleep(Duration::from_secs(3600)).await;
    1
}

#[orchestrator]
async fn waits_for_go(ctx: OrchestrationContext) -> Result<u32, OrchestrationError> {
    Ok(ctx.wait_for_event::<u32>("go").await?)
}

static TICKS: AtomicU64 = AtomicU64::new(0);

#[activity]
async fn tick(n: u64) -> u64 {
    TICKS.fetch_add(1, Ordering::SeqCst);
    n + 1
}

/// Many short steps: a terminate lands in the middle of one.
#[orchestrator]
async fn ticks_forever(ctx: OrchestrationContext) -> Result<u64, OrchestrationError> {
    let mut n = 0;
    loop {
        n = ctx.call_activity(tick, n).await?;
    }
}

#[orchestrator]
async fn parent_of_waiters(ctx: OrchestrationContext, n: u32) -> Result<u32, OrchestrationError> {
    let id = ctx.instance_id().to_string();
    let children = (0..n)
        .map(|i| ctx.call_sub_orchestrator_with_id(waits_for_go, format!("{id}-child-{i}"), ()));
    let mut sum = 0;
    for result in ctx.when_all(children).await {
        sum += result?;
    }
    Ok(sum)
}

#[orchestrator]
async fn parent_catches(ctx: OrchestrationContext) -> Result<String, OrchestrationError> {
    let id = format!("{}-child", ctx.instance_id());
    match ctx
        .call_sub_orchestrator_with_id(waits_for_go, id, ())
        .await
    {
        Ok(n) => Ok(format!("child returned {n}")),
        Err(failed) => Ok(format!("child failed: {}", failed.message)),
    }
}

fn is_terminated(event: &HistoryEvent) -> bool {
    matches!(event, HistoryEvent::ExecutionTerminated { .. })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_instance_ends_terminated_and_its_timer_is_discarded() {
    for cache in CACHES {
        let store = TestStore::new();
        let (runtime, client) = store.start_with(settings(cache)).await;
        let id = client.start(naps_an_hour, ()).await.expect("start");
        support::until_recorded(&client, &id, "the timer is armed", 1, |e| {
            matches!(e, HistoryEvent::TimerCreated { .. })
        })
        .await;
        assert_eq!(count_rows(&store, "timers", &id), 1);
        client
            .terminate(&id, "no longer needed")
            .await
            .expect("terminates");
        // Durable before it returns.
        let status = client
            .get_status(&id)
            .await
            .expect("reads")
            .expect("exists");
        assert_eq!(status.runtime_status, RuntimeStatus::Terminated);
        assert_eq!(
            status.output_as::<String>().expect("reason"),
            "no longer needed"
        );
        assert_eq!(
            count_rows(&store, "timers", &id),
            0,
            "the armed timer is gone"
        );
        let finished = client
            .wait_for_completion(&id, WAIT)
            .await
            .expect("finished");
        assert_eq!(finished.runtime_status, RuntimeStatus::Terminated);

        // Where it no longer applies, each refusal is typed and changes nothing.
        let again = client.terminate(&id, "twice").await;
        support::assert_not_applicable(&again, Some("terminate"), RuntimeStatus::Terminated);
        let event = client.raise_event(&id, "x", 1).await;
        assert!(
            matches!(event, Err(durable_runtime::Error::InstanceFinished { .. })),
            "{event:?}"
        );
        runtime.shutdown().await;
        drop(client);

        // After a restart it stays terminated; its history ends with the termination.
        let (runtime, client) = store.restart(settings(cache)).await;
        let history = support::history(&client, &id).await;
        assert!(
            history.last().is_some_and(|r| is_terminated(&r.event)),
            "{history:?}"
        );
        assert_eq!(
            history.iter().filter(|r| is_terminated(&r.event)).count(),
            1
        );
        let status = client
            .get_status(&id)
            .await
            .expect("reads")
            .expect("exists");
        assert_eq!(status.runtime_status, RuntimeStatus::Terminated);
        runtime.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_and_suspended_instances_terminate_and_unknown_or_finished_ones_are_refused() {
    let store = TestStore::new();
    let (runtime, client) = store.start().await;
    // Pending: a start scheduled an hour from now.
    let pending = client
        .start_with(
            waits_for_go,
            (),
            StartOptions {
                instance_id: Some("pending".into()),
                scheduled_start: Some(SystemTime::now() + Duration::from_secs(3600)),
            },
        )
        .await
        .expect("scheduled");
    assert_eq!(count_rows(&store, "timers", &pending), 1, "the start timer");
    client
        .terminate(&pending, "never mind")
        .await
        .expect("terminates");
    let status = client
        .get_status(&pending)
        .await
        .expect("reads")
        .expect("exists");
    assert_eq!(status.runtime_status, RuntimeStatus::Terminated);
    assert_eq!(count_rows(&store, "timers", &pending), 0, "it never starts");

    // Suspended.
    let suspended = client.start(waits_for_go, ()).await.expect("start");
    support::until_status(&client, &suspended, RuntimeStatus::Running).await;
    client.suspend(&suspended, "hold").await.expect("suspends");
    client.raise_event(&suspended, "go", 5).await.expect("kept");
    client
        .terminate(&suspended, "stop")
        .await
        .expect("terminates");
    assert_eq!(
        count_rows(&store, "messages", &suspended),
        0,
        "its waiting events are discarded"
    );
    let status = client
        .wait_for_completion(&suspended, WAIT)
        .await
        .expect("done");
    assert_eq!(status.runtime_status, RuntimeStatus::Terminated);

    // Completed, and unknown.
    let done = client.start(waits_for_go, ()).await.expect("start");
    client.raise_event(&done, "go", 1).await.expect("raised");
    client.wait_for_completion(&done, WAIT).await.expect("done");
    let refused = client.terminate(&done, "late").await;
    support::assert_not_applicable(&refused, None, RuntimeStatus::Completed);
    let unknown = client.terminate("nobody", "?").await;
    support::assert_not_found(&unknown);
    runtime.shutdown().await;
}

/// Terminates an instance that steps without pause: whichever step is in flight is fenced, and
/// nothing is appended after the termination, even once the work in flight has drained.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminate_racing_steps_fences_them() {
    for cache in CACHES {
        let store = TestStore::new();
        let (runtime, client) = store.start_with(settings(cache)).await;
        let id = client.start(ticks_forever, ()).await.expect("start");
        support::until_recorded(&client, &id, "some steps ran", 5, |e| {
            matches!(e, HistoryEvent::TaskCompleted { .. })
        })
        .await;
        client.terminate(&id, "enough").await.expect("terminates");
        // Shutdown waits for the steps and activities in flight.
        runtime.shutdown().await;
        drop(client);
        let (runtime, client) = store.restart(settings(cache)).await;
        let history = support::history(&client, &id).await;
        let end = history
            .iter()
            .position(|r| is_terminated(&r.event))
            .expect("terminated");
        assert_eq!(
            end,
            history.len() - 1,
            "nothing after the termination: {history:?}"
        );
        assert_eq!(count_rows(&store, "activities", &id), 0);
        assert_eq!(count_rows(&store, "messages", &id), 0);
        let status = client
            .get_status(&id)
            .await
            .expect("reads")
            .expect("exists");
        assert_eq!(status.runtime_status, RuntimeStatus::Terminated);
        runtime.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parent_terminated_with_20_running_children_leaves_every_child_terminated() {
    for cache in CACHES {
        let store = TestStore::new();
        let (runtime, client) = store.start_with(settings(cache)).await;
        let id = client.start(parent_of_waiters, 20).await.expect("start");
        for i in 0..20 {
            let child = format!("{id}-child-{i}");
            support::until_status(&client, &child, RuntimeStatus::Running).await;
        }
        client
            .terminate(&id, "cancelled")
            .await
            .expect("terminates");
        for i in 0..20 {
            let child = format!("{id}-child-{i}");
            let status = client
                .get_status(&child)
                .await
                .expect("reads")
                .expect("exists");
            assert_eq!(status.runtime_status, RuntimeStatus::Terminated, "{child}");
            // A terminated child takes no more events.
            assert!(client.raise_event(&child, "go", 1).await.is_err());
        }
        runtime.shutdown().await;
        drop(client);
        // Nothing woke the parent: no outcome of a child reached it.
        let (runtime, client) = store.restart(settings(cache)).await;
        let history = support::history(&client, &id).await;
        assert!(
            history.last().is_some_and(|r| is_terminated(&r.event)),
            "{history:?}"
        );
        assert!(
            !history
                .iter()
                .any(|r| matches!(r.event, HistoryEvent::SubOrchestrationInstanceFailed { .. })),
            "{history:?}"
        );
        assert_eq!(
            count_rows(&store, "messages", &id),
            0,
            "no outcome waits for it"
        );
        runtime.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminated_child_fails_its_parents_call() {
    for cache in CACHES {
        let store = TestStore::new();
        let (runtime, client) = store.start_with(settings(cache)).await;
        let id = client.start(parent_catches, ()).await.expect("start");
        let child = format!("{id}-child");
        support::until_status(&client, &child, RuntimeStatus::Running).await;
        client
            .terminate(&child, "operator")
            .await
            .expect("terminates");
        let status = client
            .wait_for_completion(&id, WAIT)
            .await
            .expect("parent done");
        let output: String = status.output_as().expect("output");
        assert!(output.starts_with("child failed:"), "{output}");
        assert!(output.contains("Terminated"), "{output}");
        runtime.shutdown().await;
    }
}

/// Continues as new once, then waits for "go".
#[orchestrator]
async fn child_continues_once(
    ctx: OrchestrationContext,
    generation: u32,
) -> Result<u32, OrchestrationError> {
    if generation == 0 {
        return ctx.continue_as_new(child_continues_once, 1).await;
    }
    Ok(ctx.wait_for_event::<u32>("go").await?)
}

#[orchestrator]
async fn parent_of_continuing_child(ctx: OrchestrationContext) -> Result<u32, OrchestrationError> {
    let id = format!("{}-child", ctx.instance_id());
    Ok(ctx
        .call_sub_orchestrator_with_id(child_continues_once, id, 0)
        .await?)
}

/// A child between two generations (status `ContinuedAsNew`) is still running: terminating its
/// parent terminates it, and its next generation never runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_between_generations_is_terminated_with_its_parent() {
    for cache in CACHES {
        let store = TestStore::new();
        let (reached, mut reaches) = tokio::sync::mpsc::unbounded_channel();
        let held = Arc::new(tokio::sync::Semaphore::new(0));
        // Holds the first step of the child's second generation (input 1) before the store.
        let hook: Hook = {
            let held = held.clone();
            Arc::new(move |phase, write| -> BoxFut {
                let second = matches!((phase, write), (Phase::Before, Write::Step(step))
                    if step.events.iter().any(|e| matches!(e,
                        HistoryEvent::ExecutionStarted(started) if started.input.as_str() == "1")));
                let (held, reached) = (held.clone(), reached.clone());
                Box::pin(async move {
                    if second {
                        let _ = reached.send(());
                        held.acquire().await.ok()?.forget();
                    }
                    None::<StoreError>
                })
            })
        };
        let runtime = settings(cache)(store.hooked_builder(hook))
            .start()
            .await
            .expect("starts");
        let client = runtime.client();
        let id = client
            .start(parent_of_continuing_child, ())
            .await
            .expect("start");
        let child = format!("{id}-child");
        reaches.recv().await.expect("the second generation steps");
        let between = client.get_status(&child).await.expect("reads");
        assert_eq!(
            between.map(|s| s.runtime_status),
            Some(RuntimeStatus::ContinuedAsNew)
        );
        client
            .terminate(&id, "cancelled")
            .await
            .expect("terminates");
        let status = |client: Client, child: String| async move {
            client
                .get_status(&child)
                .await
                .expect("reads")
                .map(|s| s.runtime_status)
        };
        assert_eq!(
            status(client.clone(), child.clone()).await,
            Some(RuntimeStatus::Terminated),
            "cache {cache:?}"
        );
        // The held step is fenced: the child stays terminated and takes no event.
        held.add_permits(1);
        assert!(client.raise_event(&child, "go", 1).await.is_err());
        runtime.shutdown().await;
        drop(client);
        let (runtime, client) = store.restart(settings(cache)).await;
        assert_eq!(
            status(client.clone(), child.clone()).await,
            Some(RuntimeStatus::Terminated)
        );
        runtime.shutdown().await;
    }
}
