//! The locking rules of critical sections (Durable Functions' `LockingRulesViolation`):
//! sections do not nest, a section calls only the entities it locked, and creates no
//! sub-orchestration. A violation is a `TaskFailed` naming the rule, the same on every replay.
//! And an orchestration that failed inside a section (its locks released by the store) is not
//! rewound: its code would go on in the section unlocked, interleaving with others.
//! Hot and replayed (`cache_capacity(0)`), on both stores (`DURABLE_TEST_BACKEND=postgres`).

mod support;

use durable_runtime::prelude::*;
use durable_runtime::store::REWIND_HOLDING_LOCKS;
use durable_runtime::{Error, LOCKING_RULES};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};
use support::entities::until_state;
use support::{CACHES, TestStore, WAIT, cache_settings, until_status};

#[derive(Default, Serialize, Deserialize, Debug, PartialEq)]
struct Purse(i64);

#[entity]
impl Purse {
    pub fn get(&self) -> i64 {
        self.0
    }

    pub fn set(&mut self, value: i64) {
        self.0 = value;
    }

    pub fn add(&mut self, n: i64) {
        self.0 += n;
    }
}

#[orchestrator]
async fn nested(ctx: OrchestrationContext, key: String) -> Result<(), OrchestrationError> {
    let _outer = ctx.lock_entities(&[Purse::entity_id(&key)]).await?;
    let _inner = ctx
        .lock_entities(&[Purse::entity_id(format!("{key}-other"))])
        .await?;
    Ok(())
}

#[orchestrator]
async fn calls_outside(ctx: OrchestrationContext, key: String) -> Result<i64, OrchestrationError> {
    let _lock = ctx.lock_entities(&[Purse::entity_id(&key)]).await?;
    Ok(ctx
        .call_entity(&Purse::entity_id(format!("{key}-other")), Purse::get_op())
        .await?)
}

#[orchestrator]
async fn child(ctx: OrchestrationContext) -> Result<(), OrchestrationError> {
    let _ = ctx;
    Ok(())
}

#[orchestrator]
async fn creates_child(ctx: OrchestrationContext, key: String) -> Result<(), OrchestrationError> {
    let _lock = ctx.lock_entities(&[Purse::entity_id(&key)]).await?;
    ctx.call_sub_orchestrator(child, ()).await?;
    Ok(())
}

/// Catches each violation and goes on (so every later step replays them), then does what
/// the rules allow: sequential sections, and calls outside a section.
#[orchestrator]
async fn within_the_rules(
    ctx: OrchestrationContext,
    key: String,
) -> Result<Vec<String>, OrchestrationError> {
    let (mine, other) = (
        Purse::entity_id(&key),
        Purse::entity_id(format!("{key}-other")),
    );
    let mut seen = Vec::new();
    let lock = ctx.lock_entities(std::slice::from_ref(&mine)).await?;
    let nested = ctx.lock_entities(std::slice::from_ref(&other)).await;
    seen.push(nested.err().map(|e| e.message).unwrap_or_default());
    let inside = ctx.call_entity(&mine, Purse::get_op()).await?;
    let outside = ctx.call_entity(&other, Purse::get_op()).await;
    seen.push(outside.err().map(|e| e.message).unwrap_or_default());
    ctx.signal_entity(&mine, Purse::set_op(inside + 1));
    // A signal to another entity is allowed.
    ctx.signal_entity(&other, Purse::add_op(5));
    lock.release();
    let lock = ctx.lock_entities(std::slice::from_ref(&other)).await?;
    let got = ctx.call_entity(&other, Purse::get_op()).await?;
    lock.release();
    let after = ctx.call_entity(&mine, Purse::get_op()).await?;
    seen.push(format!("{got} {after}"));
    Ok(seen)
}

async fn failure_of(client: &Client, id: &str) -> String {
    let status = client
        .wait_for_completion(id, WAIT)
        .await
        .expect("finishes");
    assert_eq!(status.runtime_status, RuntimeStatus::Failed, "{status:?}");
    status.failure.map(|f| f.message).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn violations_fail_the_orchestration_naming_the_rule() {
    for cache in CACHES {
        let store = TestStore::new();
        let (runtime, client) = store.start_with(cache_settings(cache)).await;
        let id = client.start(nested, "n".to_string()).await.expect("starts");
        let message = failure_of(&client, &id).await;
        assert!(
            message.contains(LOCKING_RULES) && message.contains("nested"),
            "{message}"
        );
        let id = client
            .start(calls_outside, "c".to_string())
            .await
            .expect("starts");
        let message = failure_of(&client, &id).await;
        assert!(
            message.contains(LOCKING_RULES) && message.contains("@c-other"),
            "{message}"
        );
        let id = client
            .start(creates_child, "s".to_string())
            .await
            .expect("starts");
        let message = failure_of(&client, &id).await;
        assert!(
            message.contains(LOCKING_RULES) && message.contains("sub-orchestration"),
            "{message}"
        );
        // Their locks were released when they failed: the entities serve others.
        for key in ["n", "c", "s"] {
            let purse = Purse::entity_id(key);
            client
                .signal_entity(&purse, Purse::add_op(2))
                .await
                .expect("durable");
            until_state::<Purse>(&client, &purse, |s| s == Some(&Purse(2))).await;
        }
        runtime.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn violations_are_caught_and_replay_the_same() {
    for cache in CACHES {
        let store = TestStore::new();
        let (runtime, client) = store.start_with(cache_settings(cache)).await;
        let id = client
            .start(within_the_rules, "r".to_string())
            .await
            .expect("starts");
        let status = client
            .wait_for_completion(&id, WAIT)
            .await
            .expect("finishes");
        assert_eq!(
            status.runtime_status,
            RuntimeStatus::Completed,
            "{status:?}"
        );
        let seen: Vec<String> = status.output_as().expect("output");
        assert!(
            seen[0].contains(LOCKING_RULES) && seen[0].contains("nested"),
            "{seen:?}"
        );
        assert!(
            seen[1].contains(LOCKING_RULES) && seen[1].contains("may call only"),
            "{seen:?}"
        );
        assert_eq!(seen[2], "5 1", "cache {cache:?}");
        runtime.shutdown().await;
    }
}

/// Fails the first time after being armed.
static FAIL_NEXT: AtomicBool = AtomicBool::new(false);

#[activity]
async fn flaky() -> Result<(), ActivityError> {
    if FAIL_NEXT.swap(false, Ordering::SeqCst) {
        return Err(ActivityError::new("the service is down"));
    }
    Ok(())
}

/// Reads the purse, calls a service, writes the purse back plus one: inside its section.
#[orchestrator]
async fn guarded_increment(
    ctx: OrchestrationContext,
    key: String,
) -> Result<(), OrchestrationError> {
    let purse = Purse::entity_id(&key);
    let lock = ctx.lock_entities(std::slice::from_ref(&purse)).await?;
    let value = ctx.call_entity(&purse, Purse::get_op()).await?;
    ctx.call_activity(flaky, ()).await?;
    ctx.signal_entity(&purse, Purse::set_op(value + 1));
    lock.release();
    Ok(())
}

/// The same, calling the service after the section.
#[orchestrator]
async fn increment_then_call(
    ctx: OrchestrationContext,
    key: String,
) -> Result<(), OrchestrationError> {
    let purse = Purse::entity_id(&key);
    let lock = ctx.lock_entities(std::slice::from_ref(&purse)).await?;
    let value = ctx.call_entity(&purse, Purse::get_op()).await?;
    ctx.signal_entity(&purse, Purse::set_op(value + 1));
    lock.release();
    ctx.call_activity(flaky, ()).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orchestration_that_failed_inside_a_section_is_not_rewound() {
    for cache in CACHES {
        let store = TestStore::new();
        let (runtime, client) = store.start_with(cache_settings(cache)).await;
        let purse = Purse::entity_id("rw");
        FAIL_NEXT.store(true, Ordering::SeqCst);
        let id = client
            .start(guarded_increment, "rw".to_string())
            .await
            .expect("starts");
        until_status(&client, &id, RuntimeStatus::Failed).await;
        // Its lock was released: another sender's update runs meanwhile.
        client
            .signal_entity(&purse, Purse::add_op(10))
            .await
            .expect("durable");
        until_state::<Purse>(&client, &purse, |s| s == Some(&Purse(10))).await;
        // Rewound, its code would write back the 0 it read plus one, over the 10.
        let refused = client.rewind(&id, "service restored").await;
        assert!(
            matches!(
                &refused,
                Err(Error::NotApplicable { operation, .. }) if *operation == REWIND_HOLDING_LOCKS
            ),
            "{refused:?}"
        );
        let status = client
            .get_status(&id)
            .await
            .expect("reads")
            .expect("exists");
        assert_eq!(status.runtime_status, RuntimeStatus::Failed);
        // Restarting it instead runs the section again, with its locks.
        client.restart(&id, false).await.expect("restarted");
        let status = client
            .wait_for_completion(&id, WAIT)
            .await
            .expect("finishes");
        assert_eq!(
            status.runtime_status,
            RuntimeStatus::Completed,
            "{status:?}"
        );
        until_state::<Purse>(&client, &purse, |s| s == Some(&Purse(11))).await;

        // Failing after its section, it is rewound as usual.
        let after = Purse::entity_id("after");
        FAIL_NEXT.store(true, Ordering::SeqCst);
        let id = client
            .start(increment_then_call, "after".to_string())
            .await
            .expect("starts");
        until_status(&client, &id, RuntimeStatus::Failed).await;
        client
            .rewind(&id, "service restored")
            .await
            .expect("rewound");
        let status = client
            .wait_for_completion(&id, WAIT)
            .await
            .expect("finishes");
        assert_eq!(
            status.runtime_status,
            RuntimeStatus::Completed,
            "{status:?}"
        );
        until_state::<Purse>(&client, &after, |s| s == Some(&Purse(1))).await;
        runtime.shutdown().await;
    }
}

/// Fails the first time after being armed (its own switch: tests run concurrently).
static FAIL_EARLY: AtomicBool = AtomicBool::new(false);

#[activity]
async fn flaky_early() -> Result<(), ActivityError> {
    if FAIL_EARLY.swap(false, Ordering::SeqCst) {
        return Err(ActivityError::new("the service is down"));
    }
    Ok(())
}

/// Calls the service before its section and fails on its answer inside it: the failure is
/// recorded before the lock is even asked for, but the code failed holding it.
#[orchestrator]
async fn fails_on_an_earlier_answer(
    ctx: OrchestrationContext,
    key: String,
) -> Result<(), OrchestrationError> {
    let purse = Purse::entity_id(&key);
    let service = ctx.call_activity(flaky_early, ()).await;
    let lock = ctx.lock_entities(std::slice::from_ref(&purse)).await?;
    let value = ctx.call_entity(&purse, Purse::get_op()).await?;
    service?;
    ctx.signal_entity(&purse, Purse::set_op(value + 1));
    lock.release();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_recorded_before_the_section_but_raised_inside_it_is_not_rewound() {
    for cache in CACHES {
        let store = TestStore::new();
        let (runtime, client) = store.start_with(cache_settings(cache)).await;
        let purse = Purse::entity_id("early");
        FAIL_EARLY.store(true, Ordering::SeqCst);
        let id = client
            .start(fails_on_an_earlier_answer, "early".to_string())
            .await
            .expect("starts");
        until_status(&client, &id, RuntimeStatus::Failed).await;
        client
            .signal_entity(&purse, Purse::add_op(10))
            .await
            .expect("durable");
        until_state::<Purse>(&client, &purse, |s| s == Some(&Purse(10))).await;
        // Rewound, it would go on in its section unlocked and write 0 + 1 over the 10.
        let refused = client.rewind(&id, "service restored").await;
        assert!(
            matches!(
                &refused,
                Err(Error::NotApplicable { operation, .. }) if *operation == REWIND_HOLDING_LOCKS
            ),
            "cache {cache:?}: {refused:?}"
        );
        runtime.shutdown().await;
    }
}

#[activity]
async fn double(n: i64) -> Result<i64, ActivityError> {
    Ok(n * 2)
}

/// Calls an activity with retries inside its section: activities are allowed there.
#[orchestrator]
async fn retried_activity_inside(
    ctx: OrchestrationContext,
    key: String,
) -> Result<i64, OrchestrationError> {
    let purse = Purse::entity_id(&key);
    let lock = ctx.lock_entities(std::slice::from_ref(&purse)).await?;
    let value = ctx.call_entity(&purse, Purse::get_op()).await?;
    let policy = RetryPolicy::new(2, Duration::from_secs(1));
    let doubled = ctx.call_activity_with_retry(&policy, double, value).await?;
    ctx.signal_entity(&purse, Purse::set_op(doubled));
    lock.release();
    Ok(doubled)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_activity_with_retries_is_allowed_inside_a_section() {
    for cache in CACHES {
        let store = TestStore::new();
        let (runtime, client) = store.start_with(cache_settings(cache)).await;
        let purse = Purse::entity_id("retry");
        client
            .signal_entity(&purse, Purse::set_op(21))
            .await
            .expect("durable");
        let id = client
            .start(retried_activity_inside, "retry".to_string())
            .await
            .expect("starts");
        let status = client
            .wait_for_completion(&id, WAIT)
            .await
            .expect("finishes");
        assert_eq!(
            status.runtime_status,
            RuntimeStatus::Completed,
            "cache {cache:?}: {status:?}"
        );
        assert_eq!(status.output_as::<i64>().expect("output"), 42);
        until_state::<Purse>(&client, &purse, |s| s == Some(&Purse(42))).await;
        runtime.shutdown().await;
    }
}
