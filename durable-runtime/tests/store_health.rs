//! A store that stops taking writes (a full disk, an I/O error): a blip is retried quickly and
//! unnoticed; a failure that lasts degrades the runtime's health and is retried at a slower
//! pace; client calls are refused at once with a typed error; once the disk has room the
//! runtime recovers by itself, every instance completes, nothing acknowledged is lost and
//! nothing is recorded twice. On the hot cache, on replay (`cache_capacity(0)`), and across a
//! restart in the middle of the failure.

mod support;

use durable_runtime::prelude::*;
use durable_runtime::store::Write;
use durable_runtime::store::sqlite::{FaultHook, InjectedFault};
use durable_runtime::{Error, Health, HistoryEvent, RuntimeBuilder};
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, LazyLock};
use support::hooked::{BoxFut, Hook};
use support::{TestStore, WAIT};
use tokio::sync::watch;

/// Per test (tests of this file run in parallel): a gate its activities wait at, and how many
/// of them reached it.
struct Gate {
    open: watch::Sender<bool>,
    arrived: watch::Sender<usize>,
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
            })
        })
        .clone()
}

/// Adds one, once the test opens its gate.
#[activity]
async fn gated_add_one(input: (String, u32)) -> u32 {
    let (tag, n) = input;
    let gate = gate(&tag);
    gate.arrived.send_modify(|arrived| *arrived += 1);
    let _ = gate.open.subscribe().wait_for(|open| *open).await;
    n + 1
}

/// An activity, a timer, an event raised before the disk filled, then another activity.
#[orchestrator]
async fn through_the_failure(
    ctx: OrchestrationContext,
    input: (String, u32),
) -> Result<u32, OrchestrationError> {
    let (tag, n) = input;
    let a = ctx.call_activity(gated_add_one, (tag.clone(), n)).await?;
    ctx.sleep(Duration::from_millis(10)).await;
    let bump: u32 = ctx.wait_for_event("bump").await?;
    let b = ctx.call_activity(gated_add_one, (tag, a + bump)).await?;
    Ok(b)
}

/// How the fake disk behaves: `blips` step writes fail once each, then writes fail while
/// `full` is set.
#[derive(Default)]
struct Disk {
    blips: AtomicU32,
    full: AtomicBool,
    refused: AtomicU32,
}

/// Inside the SQLite writer: a full disk rolls the transaction back, as SQLite does.
fn full_disk(disk: Arc<Disk>) -> FaultHook {
    Arc::new(move |write: &Write| {
        let blip = matches!(write, Write::Step(_))
            && disk
                .blips
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
        (blip || disk.full.load(Ordering::SeqCst)).then(|| {
            disk.refused.fetch_add(1, Ordering::SeqCst);
            InjectedFault::RollBackTransaction
        })
    })
}

fn no_hook() -> Hook {
    Arc::new(|_, _| -> BoxFut { Box::pin(async { None }) })
}

const INSTANCES: u32 = 6;

/// Waits (up to [`WAIT`]) for `health` to satisfy `ok`.
async fn until_health(
    health: &mut watch::Receiver<Health>,
    what: &str,
    ok: impl FnMut(&Health) -> bool,
) {
    let reached = tokio::time::timeout(WAIT, health.wait_for(ok))
        .await
        .is_ok_and(|r| r.is_ok());
    assert!(
        reached,
        "health did not become {what} within {WAIT:?}: {:?}",
        *health.borrow()
    );
}

/// Checks every instance's output and that each result, firing and event is recorded once.
async fn check_every_instance(client: &Client, ids: &[(String, u32)]) {
    for (id, n) in ids {
        let status = client
            .wait_for_completion(id, WAIT)
            .await
            .expect("completes");
        assert_eq!(
            status.output_as::<u32>().expect("output"),
            n + 1 + 10 + 1,
            "{id}"
        );
        let history = support::history(client, id).await;
        let mut results = HashSet::new();
        for record in &history {
            if let HistoryEvent::TaskCompleted { task_id, .. } = &record.event {
                assert!(
                    results.insert(*task_id),
                    "result {task_id} recorded twice: {history:?}"
                );
            }
        }
        assert_eq!(results.len(), 2, "{history:?}");
        let fired = history
            .iter()
            .filter(|r| matches!(r.event, HistoryEvent::TimerFired { .. }))
            .count();
        let raised = history
            .iter()
            .filter(|r| matches!(r.event, HistoryEvent::EventRaised { .. }))
            .count();
        assert_eq!((fired, raised), (1, 1), "{history:?}");
    }
}

/// Starts the instances through a blip (unnoticed), fills the disk while their activities run,
/// and waits for the runtime to report it. Returns the instances with their inputs.
async fn fill_the_disk(
    tag: &str,
    runtime: &Runtime,
    client: &Client,
    disk: &Disk,
) -> Vec<(String, u32)> {
    let gate = gate(tag);
    let mut health = runtime.watch_health();
    // A blip: the first step writes fail once each, and are retried quickly.
    disk.blips.store(3, Ordering::SeqCst);
    let mut ids = Vec::new();
    for n in 0..INSTANCES {
        let id = client
            .start(through_the_failure, (tag.to_string(), n * 100))
            .await
            .expect("starts");
        // Acknowledged before the disk fills: must not be lost.
        client
            .raise_event(&id, "bump", 10u32)
            .await
            .expect("raised");
        ids.push((id, n * 100));
    }
    let mut arrived = gate.arrived.subscribe();
    let all_arrived = arrived.wait_for(|n| *n >= INSTANCES as usize);
    let reached = tokio::time::timeout(WAIT, all_arrived)
        .await
        .is_ok_and(|r| r.is_ok());
    assert!(reached, "every first activity runs");
    assert_eq!(disk.blips.load(Ordering::SeqCst), 0, "the blip was hit");
    assert!(
        !health.has_changed().expect("runtime alive"),
        "a blip retried quickly does not degrade health: {:?}",
        *health.borrow()
    );
    assert!(runtime.health().is_healthy());

    // The disk fills while every activity runs: their results cannot be recorded.
    disk.full.store(true, Ordering::SeqCst);
    gate.open.send_replace(true);
    until_health(
        &mut health,
        "degraded by failing steps",
        |h| matches!(h, Health::Degraded { failing_writes, .. } if *failing_writes >= 1),
    )
    .await;
    let Health::Degraded { last_error, .. } = runtime.health() else {
        panic!("degraded");
    };
    assert!(last_error.contains("rolled back"), "{last_error}");

    // Client calls are refused at once, with a typed error, and record nothing.
    let refused = tokio::time::timeout(
        WAIT,
        client.start(through_the_failure, (tag.to_string(), 1)),
    )
    .await
    .expect("start answers instead of hanging");
    assert!(
        matches!(refused, Err(Error::StoreUnavailable(_))),
        "{refused:?}"
    );
    let first = &ids[0].0;
    let raised = tokio::time::timeout(WAIT, client.raise_event(first, "bump", 99u32))
        .await
        .expect("raise_event answers instead of hanging");
    assert!(
        matches!(raised, Err(Error::StoreUnavailable(_))),
        "{raised:?}"
    );
    assert_eq!(client.health(), runtime.health());
    for (id, _) in &ids {
        let status = client.get_status(id).await.expect("reads").expect("exists");
        assert_eq!(status.runtime_status, RuntimeStatus::Running, "{id}");
    }
    ids
}

async fn survives_a_full_disk(tag: &str, settings: fn(RuntimeBuilder) -> RuntimeBuilder) {
    let store = TestStore::new();
    let disk = Arc::new(Disk::default());
    let builder = store
        .hooked_builder_with(no_hook(), Some(full_disk(disk.clone())))
        .write_retry_interval(Duration::from_millis(100));
    let runtime = settings(builder).start().await.expect("starts");
    let client = runtime.client();
    let ids = fill_the_disk(tag, &runtime, &client, &disk).await;
    let refused_while_full = disk.refused.load(Ordering::SeqCst);

    // Room again: the runtime recovers by itself.
    disk.full.store(false, Ordering::SeqCst);
    let mut health = runtime.watch_health();
    until_health(&mut health, "healthy", Health::is_healthy).await;
    check_every_instance(&client, &ids).await;
    assert!(refused_while_full > 3, "the failing writes were retried");
    assert!(runtime.health().is_healthy());
    // The refused start created nothing.
    let page = client.list(&Default::default()).await.expect("lists");
    assert_eq!(page.instances.len(), INSTANCES as usize);
    runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_degrades_health_and_every_instance_completes_once_it_has_room() {
    survives_a_full_disk("hot", |builder| builder).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_on_the_replay_path() {
    survives_a_full_disk("replay", |builder| builder.cache_capacity(0)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runtime_stopped_while_the_disk_is_full_loses_nothing() {
    let tag = "restart";
    let store = TestStore::new();
    let disk = Arc::new(Disk::default());
    let runtime = store
        .hooked_builder_with(no_hook(), Some(full_disk(disk.clone())))
        .write_retry_interval(Duration::from_millis(100))
        .start()
        .await
        .expect("starts");
    let client = runtime.client();
    let ids = fill_the_disk(tag, &runtime, &client, &disk).await;
    // Stopped with steps still failing (their activities' results only in memory): they give
    // up rather than hold shutdown until its timeout (30 s by default).
    tokio::time::timeout(Duration::from_secs(10), runtime.shutdown())
        .await
        .expect("failing writes do not hold shutdown");
    drop(client);
    disk.full.store(false, Ordering::SeqCst);
    let (runtime, client) = store.restart(|builder| builder.cache_capacity(0)).await;
    check_every_instance(&client, &ids).await;
    assert!(runtime.health().is_healthy());
    runtime.shutdown().await;
}

#[orchestrator]
async fn waits_a_little(ctx: OrchestrationContext, n: u32) -> u32 {
    ctx.sleep(Duration::from_millis(300)).await;
    n + 1
}

/// A timer that comes due while the disk is full: its firing is retried, degrades health, and
/// fires once when the disk has room again.
async fn a_timer_fires_once_after_the_disk_had_room(
    settings: fn(RuntimeBuilder) -> RuntimeBuilder,
) {
    let store = TestStore::new();
    let disk = Arc::new(Disk::default());
    let builder = store
        .hooked_builder_with(no_hook(), Some(full_disk(disk.clone())))
        .write_retry_interval(Duration::from_millis(100));
    let runtime = settings(builder).start().await.expect("starts");
    let client = runtime.client();
    let mut health = runtime.watch_health();
    let id = client.start(waits_a_little, 41).await.expect("starts");
    support::until_recorded(&client, &id, "the timer", 1, |event| {
        matches!(event, HistoryEvent::TimerCreated { .. })
    })
    .await;
    // Nothing else writes: only the timer's firing can fail.
    disk.full.store(true, Ordering::SeqCst);
    until_health(&mut health, "degraded by the timer", |h| {
        matches!(
            h,
            Health::Degraded {
                failing_writes: 1,
                ..
            }
        )
    })
    .await;
    let status = client
        .get_status(&id)
        .await
        .expect("reads")
        .expect("exists");
    assert_eq!(status.runtime_status, RuntimeStatus::Running);
    disk.full.store(false, Ordering::SeqCst);
    let status = client
        .wait_for_completion(&id, WAIT)
        .await
        .expect("completes");
    assert_eq!(status.output_as::<u32>().expect("output"), 42);
    let history = support::history(&client, &id).await;
    let fired = history
        .iter()
        .filter(|r| matches!(r.event, HistoryEvent::TimerFired { .. }))
        .count();
    assert_eq!(fired, 1, "{history:?}");
    until_health(&mut health, "healthy", Health::is_healthy).await;
    runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timer_due_while_the_disk_is_full_fires_once_it_has_room() {
    a_timer_fires_once_after_the_disk_had_room(|builder| builder).await;
    a_timer_fires_once_after_the_disk_had_room(|builder| builder.cache_capacity(0)).await;
}
