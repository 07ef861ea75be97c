//! The timer service keeps only the earliest armed timers in memory
//! (`RuntimeBuilder::max_timers_in_memory`); later ones wait in the store and are read as their
//! turn comes. With a window far smaller than the timers armed, every timer still fires, none
//! before it is due, whether it was armed live or left by an earlier process.

mod support;

use durable_runtime::HistoryEvent;
use durable_runtime::prelude::*;
use support::{TestStore, WAIT};

/// Sleeps `ms`, then returns how long the nap really was, by the steps' recorded times.
#[orchestrator]
async fn nap(ctx: OrchestrationContext, ms: u64) -> Result<u64, OrchestrationError> {
    let fell_asleep = ctx.current_utc_datetime();
    ctx.sleep(Duration::from_millis(ms)).await;
    let woke = ctx.current_utc_datetime();
    Ok(woke
        .duration_since(fell_asleep)
        .map(|slept| slept.as_millis() as u64)
        .unwrap_or(0))
}

/// Starts one nap per duration, latest-due first, so every new timer is earlier than those
/// already armed and pushes them out of a small window.
async fn start_naps(client: &Client, durations: &[u64]) -> Vec<(String, u64)> {
    let mut started = Vec::new();
    for &ms in durations {
        let id = client.start(nap, ms).await.expect("starts");
        started.push((id, ms));
    }
    started
}

async fn assert_each_slept_its_time(client: &Client, naps: &[(String, u64)]) {
    for (id, ms) in naps {
        let status = client
            .wait_for_completion(id, WAIT)
            .await
            .expect("completes");
        assert_eq!(
            status.runtime_status,
            RuntimeStatus::Completed,
            "{status:?}"
        );
        let slept: u64 = status.output_as().expect("output");
        assert!(slept >= *ms, "{id} slept {slept} ms of its {ms} ms");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_timers_beyond_a_small_window_all_fire_on_time() {
    let store = TestStore::new();
    let (runtime, client) = store.start_with(|b| b.max_timers_in_memory(2)).await;
    let durations: Vec<u64> = (1..=12).rev().map(|i| i * 40).collect();
    let naps = start_naps(&client, &durations).await;
    assert_each_slept_its_time(&client, &naps).await;
    runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timers_left_by_an_earlier_process_fire_through_a_small_window() {
    let store = TestStore::new();
    let (runtime, client) = store.start().await;
    let durations: Vec<u64> = (1..=12).rev().map(|i| 300 + i * 40).collect();
    let naps = start_naps(&client, &durations).await;
    // Every instance has armed its timer before the runtime goes.
    for (id, _) in &naps {
        support::until_recorded(&client, id, "the timer", 1, |e| {
            matches!(e, HistoryEvent::TimerCreated { .. })
        })
        .await;
    }
    drop(client);
    runtime.shutdown().await;
    let (runtime, client) = store.restart(|b| b.max_timers_in_memory(3)).await;
    assert_each_slept_its_time(&client, &naps).await;
    runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timer_armed_after_the_store_was_read_still_fires() {
    // Memory holds two timers, both far away; a third, earlier one armed later must displace
    // one of them and fire.
    let store = TestStore::new();
    let (runtime, client) = store.start_with(|b| b.max_timers_in_memory(2)).await;
    let far = start_naps(&client, &[3_600_000, 3_600_001, 3_600_002]).await;
    for (id, _) in &far {
        support::until_recorded(&client, id, "the timer", 1, |e| {
            matches!(e, HistoryEvent::TimerCreated { .. })
        })
        .await;
    }
    let near = start_naps(&client, &[10]).await;
    assert_each_slept_its_time(&client, &near).await;
    runtime.shutdown().await;
}
