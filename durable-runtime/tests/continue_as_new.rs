//! `continue_as_new`: an instance restarts with new input and an empty history, on the hot cache
//! and on replay (cache off, or a runtime restarted between generations). Events raised during
//! and between generations are not lost (carried over, or dropped when asked); the old
//! generation's timers and late results are discarded; a child that continues as new reports
//! only its last generation to its parent; the history stays bounded over many generations.

mod support;

use durable_runtime::prelude::*;
use durable_runtime::store::{StoreError, Write};
use durable_runtime::{HistoryEvent, HistoryRecord, RuntimeBuilder};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use support::hooked::{BoxFut, Phase};
use support::{TestStore, WAIT};

/// The hot cache, and no cache (every step replays its generation's history).
const CACHES: [usize; 2] = [1024, 0];

fn settings(cache: usize) -> impl Fn(RuntimeBuilder) -> RuntimeBuilder {
    move |builder| builder.cache_capacity(cache)
}

static BUMPS: AtomicU64 = AtomicU64::new(0);

#[activity]
async fn bump(n: u64) -> u64 {
    BUMPS.fetch_add(1, Ordering::SeqCst);
    n + 1
}

/// One activity per generation, then the next generation, up to `target`.
#[orchestrator]
async fn counter(
    ctx: OrchestrationContext,
    n: u64,
    target: u64,
) -> Result<u64, OrchestrationError> {
    if n >= target {
        return Ok(n);
    }
    let next = ctx.call_activity(bump, n).await?;
    ctx.set_custom_status(format!("at {next}"))?;
    ctx.continue_as_new(counter, (next, target)).await
}

fn history_rows(store: &TestStore, id: &str) -> i64 {
    let conn = durable_runtime::store::sqlite::open_read_only(store.path()).expect("opens");
    conn.query_row(
        "SELECT COUNT(*) FROM history WHERE instance_id = ?1",
        [id],
        |row| row.get(0),
    )
    .expect("counts")
}

fn started_input(history: &[HistoryRecord]) -> Option<String> {
    history.iter().find_map(|r| match &r.event {
        HistoryEvent::ExecutionStarted(started) => Some(started.input.as_str().to_string()),
        _ => None,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_generations_keep_the_history_bounded() {
    for cache in CACHES {
        let store = TestStore::new();
        let (runtime, client) = store.start_with(settings(cache)).await;
        let before = BUMPS.load(Ordering::SeqCst);
        let id = client.start(counter, (0, 200)).await.expect("starts");
        let status = client.wait_for_completion(&id, WAIT).await.expect("ends");
        assert_eq!(
            status.runtime_status,
            RuntimeStatus::Completed,
            "{status:?}"
        );
        assert_eq!(status.output_as::<u64>().expect("output"), 200);
        // The instance's input is its last generation's.
        assert_eq!(status.input.as_str(), "[200,200]");
        assert_eq!(
            status.custom_status.as_ref().map(|s| s.as_str()),
            Some(r#""at 200""#),
            "the last status set, kept by the generation that set none"
        );
        // Only the last generation's history is in the store, read back and raw.
        let history = support::history(&client, &id).await;
        assert!(history.len() <= 4, "cache {cache}: {history:?}");
        assert_eq!(started_input(&history).as_deref(), Some("[200,200]"));
        assert_eq!(history.first().map(|r| r.seq), Some(0));
        runtime.shutdown().await;
        assert_eq!(history_rows(&store, &id), history.len() as i64);
        assert!(BUMPS.load(Ordering::SeqCst) - before >= 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_between_generations_goes_on_from_the_last_one() {
    for cache in CACHES {
        let store = TestStore::new();
        let (runtime, client) = store.start_with(settings(cache)).await;
        let id = client.start(counter, (0, 120)).await.expect("starts");
        // Stop it somewhere in the middle, whatever generation or status it is in.
        let midway = async {
            loop {
                let status = client
                    .get_status(&id)
                    .await
                    .expect("reads")
                    .expect("exists");
                let (n, _): (u64, u64) = status.input.decode().expect("input");
                if n >= 40 {
                    return;
                }
                tokio::task::yield_now().await;
            }
        };
        tokio::time::timeout(WAIT, midway)
            .await
            .expect("reaches 40");
        runtime.shutdown().await;
        drop(client);
        let (runtime, client) = store.restart(settings(cache)).await;
        let status = client.wait_for_completion(&id, WAIT).await.expect("ends");
        assert_eq!(
            status.output_as::<u64>().expect("output"),
            120,
            "cache {cache}"
        );
        assert!(support::history(&client, &id).await.len() <= 4);
        runtime.shutdown().await;
    }
}

/// Sums `count` "add" events, one per generation, carrying or discarding what it did not take.
#[orchestrator]
async fn accumulate(
    ctx: OrchestrationContext,
    sum: u64,
    seen: u64,
    count: u64,
) -> Result<(u64, u64), OrchestrationError> {
    if seen == count {
        return Ok((sum, seen));
    }
    let add = ctx.wait_for_event::<u64>("add").await?;
    ctx.continue_as_new(accumulate, (sum + add, seen + 1, count))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_raised_during_and_between_generations_are_all_received_once() {
    for cache in CACHES {
        let store = TestStore::new();
        let (runtime, client) = store.start_with(settings(cache)).await;
        let id = client.start(accumulate, (0, 0, 150)).await.expect("starts");
        // Raised concurrently: many arrive while a generation runs (and are carried), some
        // while the instance is between generations.
        let raises: Vec<_> = (1..=150u64)
            .map(|n| {
                let (client, id) = (client.clone(), id.clone());
                tokio::spawn(async move { client.raise_event(&id, "add", n).await })
            })
            .collect();
        for raise in raises {
            raise.await.expect("task").expect("raised");
        }
        let status = client.wait_for_completion(&id, WAIT).await.expect("ends");
        let (sum, seen): (u64, u64) = status.output_as().expect("output");
        assert_eq!((sum, seen), (150 * 151 / 2, 150), "cache {cache}");
        runtime.shutdown().await;
    }
}

/// Generation 0 receives "extra" (and does not take it), then "go", and continues as new
/// keeping or discarding "extra"; generation 1 says whether "extra" reached it.
#[orchestrator]
async fn carry_or_drop(
    ctx: OrchestrationContext,
    generation: u32,
    keep: bool,
) -> Result<String, OrchestrationError> {
    if generation == 0 {
        ctx.wait_for_event::<()>("go").await?;
        let next = ctx.continue_as_new(carry_or_drop, (1, keep));
        return if keep {
            next.await
        } else {
            next.discard_unprocessed_events().await
        };
    }
    match ctx
        .wait_for_event_with_timeout::<String>("extra", Duration::from_millis(300))
        .await
    {
        Ok(extra) => Ok(format!("carried {extra}")),
        Err(EventWaitError::TimedOut { .. }) => Ok("dropped".into()),
        Err(other) => Err(other.into()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unprocessed_events_are_carried_by_default_or_dropped_when_asked() {
    for cache in CACHES {
        for keep in [true, false] {
            let store = TestStore::new();
            let (runtime, client) = store.start_with(settings(cache)).await;
            let id = client
                .start(carry_or_drop, (0, keep))
                .await
                .expect("starts");
            client.raise_event(&id, "extra", "x").await.expect("raised");
            // Received by generation 0 (in its history) before "go" ends it.
            support::until_recorded(
                &client,
                &id,
                "extra received",
                1,
                |e| matches!(e, HistoryEvent::EventRaised { name, .. } if name == "extra"),
            )
            .await;
            client.raise_event(&id, "go", ()).await.expect("raised");
            let status = client.wait_for_completion(&id, WAIT).await.expect("ends");
            let expected = if keep { "carried x" } else { "dropped" };
            assert_eq!(
                status.output_as::<String>().expect("output"),
                expected,
                "cache {cache}, keep {keep}"
            );
            // A carried event is recorded as raised in the new history, after its start.
            let history = support::history(&client, &id).await;
            let raised = history
                .iter()
                .filter(|r| matches!(r.event, HistoryEvent::EventRaised { .. }))
                .count();
            assert_eq!(raised, usize::from(keep), "{history:?}");
            runtime.shutdown().await;
        }
    }
}

/// Holds the first step of every generation whose input is `held` until the test lets it go,
/// and tells the test it did.
struct Gate {
    held: tokio::sync::Semaphore,
    reached: tokio::sync::mpsc::UnboundedSender<String>,
}

fn gate_hook(gate: Arc<Gate>, held_inputs: &'static [&'static str]) -> support::hooked::Hook {
    Arc::new(move |phase, write| -> BoxFut {
        let input = match (phase, write) {
            (Phase::Before, Write::Step(step)) => step.events.iter().find_map(|e| match e {
                HistoryEvent::ExecutionStarted(started) => Some(started.input.as_str().to_string()),
                _ => None,
            }),
            _ => None,
        };
        let gate = gate.clone();
        Box::pin(async move {
            if let Some(input) = input.filter(|i| held_inputs.contains(&i.as_str())) {
                let _ = gate.reached.send(input);
                gate.held.acquire().await.ok()?.forget();
            }
            None::<StoreError>
        })
    })
}

#[orchestrator]
async fn two_generations(
    ctx: OrchestrationContext,
    generation: u32,
) -> Result<u32, OrchestrationError> {
    ctx.wait_for_event::<()>("next").await?;
    if generation == 0 {
        ctx.set_custom_status("first")?;
        return ctx.continue_as_new(two_generations, 1).await;
    }
    Ok(generation)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_is_continued_as_new_until_the_next_generation_runs() {
    for cache in CACHES {
        let store = TestStore::new();
        let (reached, mut reaches) = tokio::sync::mpsc::unbounded_channel();
        let gate = Arc::new(Gate {
            held: tokio::sync::Semaphore::new(0),
            reached,
        });
        let runtime = store
            .hooked_builder(gate_hook(gate.clone(), &["0", "1"]))
            .cache_capacity(cache)
            .start()
            .await
            .expect("starts");
        let client = runtime.client();
        let id = client.start(two_generations, 0).await.expect("starts");
        let mut seen = Vec::new();
        let mut observe = |status: &InstanceStatus| seen.push(status.runtime_status);

        assert_eq!(reaches.recv().await.as_deref(), Some("0"));
        observe(
            &client
                .get_status(&id)
                .await
                .expect("reads")
                .expect("exists"),
        );
        gate.held.add_permits(1);
        support::until_status(&client, &id, RuntimeStatus::Running).await;
        observe(
            &client
                .get_status(&id)
                .await
                .expect("reads")
                .expect("exists"),
        );

        client.raise_event(&id, "next", ()).await.expect("raised");
        assert_eq!(reaches.recv().await.as_deref(), Some("1"));
        // Between generations: the new input, an empty history, the status set before.
        let between = client
            .get_status_with_history(&id)
            .await
            .expect("reads")
            .expect("exists");
        observe(&between);
        assert_eq!(between.input.as_str(), "1");
        assert_eq!(between.history.as_deref(), Some(&[][..]));
        assert_eq!(
            between.custom_status.as_ref().map(|s| s.as_str()),
            Some(r#""first""#)
        );
        assert!(
            !between.runtime_status.is_terminal(),
            "waiting for it goes on"
        );
        gate.held.add_permits(1);
        support::until_status(&client, &id, RuntimeStatus::Running).await;
        observe(
            &client
                .get_status(&id)
                .await
                .expect("reads")
                .expect("exists"),
        );

        client.raise_event(&id, "next", ()).await.expect("raised");
        let done = client.wait_for_completion(&id, WAIT).await.expect("ends");
        observe(&done);
        assert_eq!(done.output_as::<u32>().expect("output"), 1);
        assert_eq!(
            seen,
            vec![
                RuntimeStatus::Pending,
                RuntimeStatus::Running,
                RuntimeStatus::ContinuedAsNew,
                RuntimeStatus::Running,
                RuntimeStatus::Completed
            ],
            "cache {cache}"
        );
        // The status is listed too.
        let listed = client
            .list(&durable_runtime::InstanceQuery::default())
            .await
            .expect("lists");
        assert_eq!(listed.instances.len(), 1);
        assert_eq!(
            listed.instances[0]
                .custom_status
                .as_ref()
                .map(|s| s.as_str()),
            Some(r#""first""#)
        );
        runtime.shutdown().await;
    }
}

static SLOW_STARTED: tokio::sync::Notify = tokio::sync::Notify::const_new();
static SLOW_RELEASE: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(0);

#[activity]
async fn slow(n: u32) -> u32 {
    SLOW_STARTED.notify_one();
    if let Ok(permit) = SLOW_RELEASE.acquire().await {
        permit.forget();
    }
    n
}

/// Generation 0 leaves an hour-long timer and a slow activity behind; generation 1 must never
/// see their results, and may finish while they are outstanding.
#[orchestrator]
async fn leaves_work_behind(
    ctx: OrchestrationContext,
    generation: u32,
) -> Result<String, OrchestrationError> {
    if generation == 0 {
        let _timer = ctx.sleep(Duration::from_secs(3600));
        let _result = ctx.call_activity(slow, 7);
        ctx.wait_for_event::<()>("go").await?;
        return ctx.continue_as_new(leaves_work_behind, 1).await;
    }
    let late = ctx.wait_for_event::<()>("finish").await;
    Ok(format!("generation 1: {late:?}"))
}

fn armed_timers(store: &TestStore) -> i64 {
    let conn = durable_runtime::store::sqlite::open_read_only(store.path()).expect("opens");
    conn.query_row("SELECT COUNT(*) FROM timers", [], |row| row.get(0))
        .expect("counts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_old_generations_timers_and_results_are_discarded() {
    for cache in CACHES {
        let store = TestStore::new();
        let (runtime, client) = store.start_with(settings(cache)).await;
        let id = client.start(leaves_work_behind, 0).await.expect("starts");
        SLOW_STARTED.notified().await;
        assert_eq!(armed_timers(&store), 1, "generation 0's timer");
        client.raise_event(&id, "go", ()).await.expect("raised");
        support::until_recorded(
            &client,
            &id,
            "generation 1 started",
            1,
            |e| matches!(e, HistoryEvent::ExecutionStarted(s) if s.input.as_str() == "1"),
        )
        .await;
        assert_eq!(armed_timers(&store), 0, "deleted with generation 0");
        // The old activity's result arrives now, for a run that is gone.
        SLOW_RELEASE.add_permits(1);
        client.raise_event(&id, "finish", ()).await.expect("raised");
        let status = client.wait_for_completion(&id, WAIT).await.expect("ends");
        assert_eq!(
            status.runtime_status,
            RuntimeStatus::Completed,
            "{status:?}"
        );
        assert_eq!(
            status.output_as::<String>().expect("output"),
            "generation 1: Ok(())"
        );
        let history = support::history(&client, &id).await;
        assert!(
            !history.iter().any(|r| matches!(
                r.event,
                HistoryEvent::TaskCompleted { .. } | HistoryEvent::TimerFired { .. }
            )),
            "nothing of generation 0 lands in generation 1: {history:?}"
        );
        runtime.shutdown().await;
        let conn = durable_runtime::store::sqlite::open_read_only(store.path()).expect("opens");
        let leftovers: i64 = conn
            .query_row(
                "SELECT (SELECT COUNT(*) FROM activities) + (SELECT COUNT(*) FROM timers)",
                [],
                |row| row.get(0),
            )
            .expect("counts");
        assert_eq!(leftovers, 0, "cache {cache}: no work item stays behind");
    }
}

/// Continues as new up to generation 5, then returns ten times its generation.
#[orchestrator]
async fn restless_child(ctx: OrchestrationContext, generation: u32) -> u32 {
    if generation < 5 {
        return ctx.continue_as_new(restless_child, generation + 1).await;
    }
    generation * 10
}

#[orchestrator]
async fn parent_of_restless(ctx: OrchestrationContext) -> Result<u32, OrchestrationError> {
    Ok(ctx
        .call_sub_orchestrator_with_id(restless_child, format!("{}-child", ctx.instance_id()), 0)
        .await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_that_continues_as_new_reports_only_its_last_generation() {
    for cache in CACHES {
        let store = TestStore::new();
        let (runtime, client) = store.start_with(settings(cache)).await;
        let id = client.start(parent_of_restless, ()).await.expect("starts");
        let status = client.wait_for_completion(&id, WAIT).await.expect("ends");
        assert_eq!(
            status.output_as::<u32>().expect("output"),
            50,
            "cache {cache}"
        );
        let history = support::history(&client, &id).await;
        let outcomes: Vec<&str> = history
            .iter()
            .map(|r| r.event.event_type())
            .filter(|t| t.starts_with("SubOrchestrationInstance"))
            .collect();
        assert_eq!(
            outcomes,
            vec![
                "SubOrchestrationInstanceCreated",
                "SubOrchestrationInstanceCompleted"
            ]
        );
        let child = client
            .get_status(&format!("{id}-child"))
            .await
            .expect("reads")
            .expect("the child exists");
        assert_eq!(child.runtime_status, RuntimeStatus::Completed);
        assert_eq!(child.input.as_str(), "5");
        runtime.shutdown().await;
    }
}

#[orchestrator]
async fn other(_ctx: OrchestrationContext) -> u32 {
    1
}

#[orchestrator]
async fn turns_into_another(ctx: OrchestrationContext) -> u32 {
    ctx.continue_as_new(other, ()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continuing_as_another_orchestrator_fails_the_instance_clearly() {
    let store = TestStore::new();
    let (runtime, client) = store.start().await;
    let id = client.start(turns_into_another, ()).await.expect("starts");
    let status = client.wait_for_completion(&id, WAIT).await.expect("ends");
    assert_eq!(status.runtime_status, RuntimeStatus::Failed);
    let message = status.failure.expect("a failure").message;
    assert!(
        message.contains("cannot continue as new as another orchestrator ('other')"),
        "{message}"
    );
    runtime.shutdown().await;
}
