//! The hot cache keeps the instances in use: when it is full, the least recently used idle
//! instance is evicted (and replays correctly from its history when its turn comes again),
//! instead of the first instances to go idle pinning it while every other one replays its
//! whole history at each step.

mod support;

use durable_runtime::prelude::*;
use durable_runtime::{CacheCounters, HistoryEvent};
use support::TestStore;

#[activity]
async fn shout(word: String) -> String {
    word.to_uppercase()
}

/// Appends each turn's word, shouted by an activity, until told it is done.
#[orchestrator]
async fn takes_turns(
    ctx: OrchestrationContext,
    name: String,
) -> Result<String, OrchestrationError> {
    let mut said = name;
    loop {
        let word: String = ctx.wait_for_event("turn").await?;
        if word == "done" {
            return Ok(said);
        }
        said.push(' ');
        said.push_str(&ctx.call_activity(shout, word).await?);
    }
}

/// Gives `id` a turn and waits until its step recorded the activity's result: with one
/// orchestration slot, the instance is released (and cached) before the next one's step runs.
async fn turn(client: &Client, id: &str, word: &str, turns_so_far: usize) {
    client.raise_event(id, "turn", word).await.expect("raised");
    support::until_recorded(client, id, "the turn's result", turns_so_far + 1, |event| {
        matches!(event, HistoryEvent::TaskCompleted { .. })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_least_recently_used_idle_instance_is_evicted() {
    let store = TestStore::new();
    // One step at a time, so that the order instances go idle in is the order of their turns.
    let (runtime, client) = store
        .start_with(|builder| builder.cache_capacity(2).orchestration_concurrency(1))
        .await;
    let counters = || runtime.cache_counters();
    // c, d and e go idle first (under the old policy they pinned the cache for good).
    let mut ids = Vec::new();
    for name in ["c", "d", "e", "a", "b"] {
        let id = client
            .start_with_id(takes_turns, name, name.to_string())
            .await
            .expect("starts");
        turn(&client, &id, &format!("{name}0"), 0).await;
        ids.push(id);
    }
    // Each going idle with the cache full evicted the one idle the longest: c, d and e. The
    // last release (b's) follows its recorded step by a moment.
    let released = async {
        while counters().evictions < 3 {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(support::WAIT, released)
        .await
        .expect("b is released after its step");
    assert_eq!(
        counters(),
        CacheCounters {
            hits: counters().hits,
            replays: 0,
            evictions: 3
        }
    );
    let before = counters();
    // a and b take turns: both stay hot.
    const ROUNDS: usize = 10;
    for round in 1..=ROUNDS {
        for id in ["a", "b"] {
            turn(&client, id, &format!("{id}{round}"), round).await;
        }
    }
    let after = counters();
    assert_eq!(
        after.replays, 0,
        "the instances in use hit the cache: {after:?}"
    );
    assert!(
        after.hits >= before.hits + 2 * ROUNDS as u64,
        "every turn found its instance in memory: {before:?} -> {after:?}"
    );
    assert_eq!(after.evictions, 3);

    // The evicted instances replay their history, once each, and go on correctly.
    for id in &ids {
        client
            .raise_event(id, "turn", "done")
            .await
            .expect("raised");
        let status = client
            .wait_for_completion(id, support::WAIT)
            .await
            .expect("completes");
        let rounds = if id == "a" || id == "b" { ROUNDS } else { 0 };
        let expected: String = std::iter::once(id.clone())
            .chain((0..=rounds).map(|round| format!("{id}{round}").to_uppercase()))
            .collect::<Vec<_>>()
            .join(" ");
        assert_eq!(status.output_as::<String>().expect("output"), expected);
    }
    let end = counters();
    assert_eq!(
        end.replays, 3,
        "c, d and e replayed, a and b did not: {end:?}"
    );
    runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_cache_off_every_step_replays() {
    let store = TestStore::new();
    let (runtime, client) = store
        .start_with(|builder| builder.cache_capacity(0).orchestration_concurrency(1))
        .await;
    let id = client
        .start_with_id(takes_turns, "solo", "solo".to_string())
        .await
        .expect("starts");
    for round in 0..3 {
        turn(&client, &id, &format!("w{round}"), round).await;
    }
    client
        .raise_event(&id, "turn", "done")
        .await
        .expect("raised");
    let status = client
        .wait_for_completion(&id, support::WAIT)
        .await
        .expect("completes");
    assert_eq!(
        status.output_as::<String>().expect("output"),
        "solo W0 W1 W2"
    );
    let counters = runtime.cache_counters();
    assert_eq!((counters.hits, counters.evictions), (0, 0), "{counters:?}");
    // Every step but the first (3 turns of an event and a result, then the end).
    assert!(counters.replays >= 7, "{counters:?}");
    runtime.shutdown().await;
}
