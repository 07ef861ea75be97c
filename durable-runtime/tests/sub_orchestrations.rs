//! Sub-orchestrations: a child is a real instance created with its parent's step; its output or
//! failure comes back to the parent, on the hot path and when every step replays.

mod support;

use durable_runtime::prelude::*;
use durable_runtime::store::{StoreError, Write};
use durable_runtime::{HistoryEvent, InstanceQuery, ParentInstance};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use support::hooked::{BoxFut, Phase};
use support::{TestStore, WAIT};

#[activity]
async fn add_one(n: u64) -> u64 {
    n + 1
}

#[activity]
async fn refund(reason: String) -> String {
    format!("refunded: {reason}")
}

#[orchestrator]
async fn child_adds(ctx: OrchestrationContext, n: u64) -> Result<u64, OrchestrationError> {
    Ok(ctx.call_activity(add_one, n).await? * 10)
}

#[orchestrator]
async fn child_fails(ctx: OrchestrationContext, why: String) -> Result<u64, OrchestrationError> {
    let _ = ctx;
    Err(OrchestrationError::new(why).with_details("stock level 0"))
}

#[orchestrator]
async fn child_naps(ctx: OrchestrationContext, millis: u64) -> u64 {
    ctx.sleep(Duration::from_millis(millis)).await;
    millis
}

#[orchestrator]
async fn parent_sums(ctx: OrchestrationContext, n: u64) -> Result<u64, OrchestrationError> {
    let children = (0..n).map(|i| ctx.call_sub_orchestrator(child_adds, i));
    let mut sum = 0;
    for result in ctx.when_all(children).await {
        sum += result?;
    }
    Ok(sum)
}

#[orchestrator]
async fn parent_compensates(ctx: OrchestrationContext) -> Result<String, OrchestrationError> {
    match ctx
        .call_sub_orchestrator(child_fails, "out of stock".to_string())
        .await
    {
        Ok(n) => Ok(format!("unexpected {n}")),
        Err(failed) => {
            let refunded = ctx.call_activity(refund, failed.message.clone()).await?;
            Ok(format!(
                "{}|{}|{}",
                failed.name,
                refunded,
                failed.details.unwrap_or_default()
            ))
        }
    }
}

#[orchestrator]
async fn parent_with_id(ctx: OrchestrationContext, child_id: String) -> String {
    match ctx
        .call_sub_orchestrator_with_id(child_adds, child_id, 4)
        .await
    {
        Ok(n) => format!("ok {n}"),
        Err(failed) => format!("failed {}: {}", failed.name, failed.message),
    }
}

#[orchestrator]
async fn parent_by_name(ctx: OrchestrationContext, name: String) -> String {
    let by_name = ctx.call_sub_orchestrator_by_name::<u64>(&name, 1);
    let with_id = ctx.call_sub_orchestrator_by_name_with_id::<u64>(&name, "named-child", 2);
    match (by_name.await, with_id.await) {
        (Ok(a), Ok(b)) => format!("ok {a} {b}"),
        (Err(failed), _) | (_, Err(failed)) => format!("failed: {}", failed.message),
    }
}

/// Not marked `#[orchestrator]`, so it cannot be called as one.
async fn unmarked(ctx: OrchestrationContext, n: u64) -> u64 {
    let _ = ctx;
    n
}

#[orchestrator]
async fn parent_of_unmarked(ctx: OrchestrationContext) -> String {
    match ctx.call_sub_orchestrator(unmarked, 1).await {
        Ok(n) => format!("ok {n}"),
        Err(failed) => failed.message,
    }
}

#[orchestrator]
async fn parent_waits(ctx: OrchestrationContext, millis: u64) -> Result<u64, OrchestrationError> {
    Ok(ctx.call_sub_orchestrator(child_naps, millis).await? + 1)
}

/// The hot path (default cache) and the path where every step replays its history.
const CACHES: [Option<usize>; 2] = [None, Some(0)];

async fn start(store: &TestStore, cache: Option<usize>) -> (Runtime, Client) {
    store
        .start_with(|builder| match cache {
            Some(capacity) => builder.cache_capacity(capacity),
            None => builder,
        })
        .await
}

/// The ids of the children `parent` created, in task order, from its history.
async fn created_children(client: &Client, parent: &str) -> Vec<String> {
    support::history(client, parent)
        .await
        .into_iter()
        .filter_map(|record| match record.event {
            HistoryEvent::SubOrchestrationInstanceCreated(created) => Some(created.instance_id),
            _ => None,
        })
        .collect()
}

fn count(history: &[durable_runtime::HistoryRecord], event_type: &str) -> usize {
    history
        .iter()
        .filter(|r| r.event.event_type() == event_type)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_complete_and_their_outputs_come_back_typed() {
    for cache in CACHES {
        let store = TestStore::new();
        let (runtime, client) = start(&store, cache).await;
        let parent = client.start(parent_sums, 5).await.expect("start");
        let status = client
            .wait_for_completion(&parent, WAIT)
            .await
            .expect("finishes");
        // (0+1)*10 + (1+1)*10 + ... + (4+1)*10
        assert_eq!(status.output_as::<u64>().expect("output"), 150, "{cache:?}");
        let history = support::history(&client, &parent).await;
        assert_eq!(count(&history, "SubOrchestrationInstanceCreated"), 5);
        assert_eq!(count(&history, "SubOrchestrationInstanceCompleted"), 5);

        // Each child is an instance of its own, listed, with its own history.
        let children = created_children(&client, &parent).await;
        let listed = client
            .list(&InstanceQuery {
                name: Some("child_adds".into()),
                ..InstanceQuery::default()
            })
            .await
            .expect("lists");
        let mut listed_ids: Vec<String> = listed
            .instances
            .iter()
            .map(|i| i.instance_id.clone())
            .collect();
        let mut expected = children.clone();
        listed_ids.sort();
        expected.sort();
        assert_eq!(listed_ids, expected);
        for (task, child) in children.iter().enumerate() {
            let status = client
                .get_status(child)
                .await
                .expect("reads")
                .expect("the child exists");
            assert_eq!(status.runtime_status, RuntimeStatus::Completed);
            assert_eq!(
                status.output_as::<u64>().expect("output"),
                (task as u64 + 1) * 10
            );
            let history = support::history(&client, child).await;
            let parent_link = history.iter().find_map(|r| match &r.event {
                HistoryEvent::ExecutionStarted(started) => started.parent.clone(),
                _ => None,
            });
            assert_eq!(
                parent_link.map(|p| (p.instance_id, p.task_id)),
                Some((parent.clone(), task as u64))
            );
            assert_eq!(count(&history, "ExecutionStarted"), 1);
            assert_eq!(count(&history, "TaskScheduled"), 1);
        }
        runtime.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_child_is_a_task_failure_the_parent_compensates() {
    for cache in CACHES {
        let store = TestStore::new();
        let (runtime, client) = start(&store, cache).await;
        let parent = client.start(parent_compensates, ()).await.expect("start");
        let status = client
            .wait_for_completion(&parent, WAIT)
            .await
            .expect("finishes");
        assert_eq!(
            status.output_as::<String>().expect("output"),
            "child_fails|refunded: out of stock|stock level 0",
            "{cache:?}"
        );
        let history = support::history(&client, &parent).await;
        assert_eq!(count(&history, "SubOrchestrationInstanceFailed"), 1);
        let child = &created_children(&client, &parent).await[0];
        let child = client
            .get_status(child)
            .await
            .expect("reads")
            .expect("exists");
        assert_eq!(child.runtime_status, RuntimeStatus::Failed);
        runtime.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explicit_ids_and_calls_by_name_create_those_instances() {
    for cache in CACHES {
        let store = TestStore::new();
        let (runtime, client) = start(&store, cache).await;
        let parent = client
            .start(parent_with_id, "my-child".to_string())
            .await
            .expect("start");
        let status = client
            .wait_for_completion(&parent, WAIT)
            .await
            .expect("finishes");
        assert_eq!(status.output_as::<String>().expect("output"), "ok 50");
        let child = support::history(&client, "my-child").await;
        let link = child.iter().find_map(|r| match &r.event {
            HistoryEvent::ExecutionStarted(started) => started.parent.clone(),
            _ => None,
        });
        assert!(
            matches!(link, Some(ParentInstance { ref instance_id, task_id: 0, .. }) if *instance_id == parent),
            "{link:?}"
        );

        let parent = client
            .start(parent_by_name, "child_adds".to_string())
            .await
            .expect("start");
        let status = client
            .wait_for_completion(&parent, WAIT)
            .await
            .expect("finishes");
        assert_eq!(status.output_as::<String>().expect("output"), "ok 20 30");
        let named = client
            .get_status("named-child")
            .await
            .expect("reads")
            .expect("exists");
        assert_eq!(named.runtime_status, RuntimeStatus::Completed);
        runtime.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_that_cannot_create_their_child_fail_clearly() {
    for cache in CACHES {
        let store = TestStore::new();
        let (runtime, client) = start(&store, cache).await;
        // An id in use (here by an instance a client started).
        client
            .start_with_id(child_naps, "busy", 3_600_000)
            .await
            .expect("start");
        let cases = [
            (
                client.start(parent_with_id, "busy".to_string()).await,
                "failed child_adds: cannot create sub-orchestration 'child_adds': an instance \
                 with id 'busy' already exists",
            ),
            (
                client.start(parent_with_id, "a/b".to_string()).await,
                "failed child_adds: cannot create sub-orchestration 'child_adds' with instance \
                 id 'a/b': it contains one of / \\ # ?",
            ),
            (
                client.start(parent_by_name, "nobody".to_string()).await,
                "failed: no orchestrator named 'nobody' is registered in this program",
            ),
        ];
        for (parent, expected) in cases {
            let parent = parent.expect("start");
            let status = client
                .wait_for_completion(&parent, WAIT)
                .await
                .expect("finishes");
            assert_eq!(status.output_as::<String>().expect("output"), expected);
        }
        let busy = client
            .get_status("busy")
            .await
            .expect("reads")
            .expect("exists");
        assert_eq!(
            busy.name, "child_naps",
            "the existing instance is untouched"
        );
        assert_eq!(busy.runtime_status, RuntimeStatus::Running);

        let parent = client.start(parent_of_unmarked, ()).await.expect("start");
        let status = client
            .wait_for_completion(&parent, WAIT)
            .await
            .expect("finishes");
        let message = status.output_as::<String>().expect("output");
        assert!(
            message.contains("is not an orchestrator: mark the function with #[orchestrator]"),
            "{message}"
        );
        drop(client);
        runtime.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parent_restarted_during_the_call_does_not_create_the_child_again() {
    let store = TestStore::new();
    let (runtime, client) = store.start().await;
    let parent = client.start(parent_waits, 300).await.expect("start");
    support::until_recorded(&client, &parent, "the child's creation", 1, |event| {
        matches!(event, HistoryEvent::SubOrchestrationInstanceCreated(_))
    })
    .await;
    drop(client);
    runtime.shutdown().await;
    // Every step replays from now on.
    let (runtime, client) = store.restart(|b| b.cache_capacity(0)).await;
    let status = client
        .wait_for_completion(&parent, WAIT)
        .await
        .expect("finishes");
    assert_eq!(status.output_as::<u64>().expect("output"), 301);
    assert_eq!(created_children(&client, &parent).await.len(), 1);
    let all = client.list(&InstanceQuery::default()).await.expect("lists");
    assert_eq!(all.instances.len(), 2, "the parent and one child");
    runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_whose_answer_was_lost_creates_its_children_once() {
    // The store applies the step that creates the children, and its answer is lost, as in a
    // crash right after the commit: the worker computes the step again from history, and the
    // next start recovers the children's starts from the store.
    let store = TestStore::new();
    let lost = Arc::new(AtomicBool::new(false));
    let (answer_lost, mut losing_seen) = tokio::sync::watch::channel(false);
    let hook = {
        let lost = lost.clone();
        Arc::new(move |phase: Phase, write: &Write| -> BoxFut {
            let lose = phase == Phase::After
                && matches!(write, Write::Step(step) if !step.children.is_empty())
                && !lost.swap(true, Ordering::SeqCst);
            if lose {
                let _ = answer_lost.send(true);
            }
            Box::pin(
                async move { lose.then(|| StoreError::Unavailable("the answer was lost".into())) },
            )
        })
    };
    let runtime = store
        .hooked_builder(hook)
        .start()
        .await
        .expect("runtime starts");
    let client = runtime.client();
    let parent = client.start(parent_sums, 3).await.expect("start");
    support::until_recorded(&client, &parent, "the children's creation", 3, |event| {
        matches!(event, HistoryEvent::SubOrchestrationInstanceCreated(_))
    })
    .await;
    // The history is visible as soon as the store applied the step, a moment before the hook
    // loses its answer.
    losing_seen
        .wait_for(|lost| *lost)
        .await
        .expect("the answer was lost");
    drop(client);
    runtime.shutdown().await;
    let (runtime, client) = store.restart(|b| b).await;
    let status = client
        .wait_for_completion(&parent, WAIT)
        .await
        .expect("finishes");
    assert_eq!(status.output_as::<u64>().expect("output"), 60);
    assert_eq!(created_children(&client, &parent).await.len(), 3);
    let all = client.list(&InstanceQuery::default()).await.expect("lists");
    assert_eq!(all.instances.len(), 4, "the parent and three children");
    for child in &all.instances {
        let history = support::history(&client, &child.instance_id).await;
        assert_eq!(
            count(&history, "ExecutionStarted"),
            1,
            "{}",
            child.instance_id
        );
    }
    runtime.shutdown().await;
}

/// Stands for a code change between deployments: flipped by the child.
static CALLS_ACTIVITY_NOW: AtomicBool = AtomicBool::new(false);

#[activity]
async fn deploy_new_code() -> u64 {
    CALLS_ACTIVITY_NOW.store(true, Ordering::SeqCst);
    1
}

#[orchestrator]
async fn child_flips(ctx: OrchestrationContext) -> Result<u64, OrchestrationError> {
    Ok(ctx.call_activity(deploy_new_code, ()).await?)
}

#[orchestrator]
async fn evolving_parent(ctx: OrchestrationContext) -> Result<u64, OrchestrationError> {
    #[durable::allow_nondeterministic("this test simulates a code change between deployments")]
    let changed = CALLS_ACTIVITY_NOW.load(Ordering::SeqCst);
    if changed {
        Ok(ctx.call_activity(add_one, 1).await?)
    } else {
        Ok(ctx.call_sub_orchestrator(child_flips, ()).await?)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_replaced_by_an_activity_is_non_determinism() {
    let store = TestStore::new();
    let (runtime, client) = store.start_with(|b| b.cache_capacity(0)).await;
    let parent = client.start(evolving_parent, ()).await.expect("start");
    let status = client
        .wait_for_completion(&parent, WAIT)
        .await
        .expect("finishes");
    assert_eq!(status.runtime_status, RuntimeStatus::Failed, "{status:?}");
    let child = &created_children(&client, &parent).await[0];
    assert_eq!(
        status.failure.expect("failure").message,
        format!(
            "non-deterministic orchestrator: history has SubOrchestrationInstanceCreated \
             'child_flips' (instance '{child}') as task 0, but the code now schedules activity \
             'add_one'"
        )
    );
    runtime.shutdown().await;
}
