//! Critical sections: `ctx.lock_entities` takes its locks in sorted order, so two orchestrations
//! transferring between two accounts in opposite directions never deadlock, and no update is
//! lost between a read and a write (the total is conserved). While a lock is held, other
//! senders' operations wait; locks are released when the guard drops, and when the holder
//! fails or is terminated.

mod support;

use durable_runtime::prelude::*;
use serde::{Deserialize, Serialize};
use support::entities::until_state;
use support::{CACHES, TestStore, WAIT, cache_settings, until_status};

#[derive(Default, Serialize, Deserialize, Debug, PartialEq)]
struct Account {
    balance: i64,
}

#[entity]
impl Account {
    pub fn balance(&self) -> i64 {
        self.balance
    }

    pub fn set(&mut self, balance: i64) {
        self.balance = balance;
    }

    pub fn add(&mut self, amount: i64) {
        self.balance += amount;
    }
}

/// Moves 1 from `from` to `to`, `times` times, by reading both balances and writing both back:
/// without the lock, a concurrent transfer between the read and the write would be lost.
#[orchestrator]
async fn transfer(
    ctx: OrchestrationContext,
    (from, to, times): (String, String, u32),
) -> Result<u32, OrchestrationError> {
    let (from, to) = (Account::entity_id(from), Account::entity_id(to));
    for _ in 0..times {
        let lock = ctx.lock_entities(&[from.clone(), to.clone()]).await?;
        assert_eq!(lock.entities().len(), 2);
        let a = ctx.call_entity(&from, Account::balance_op()).await?;
        let b = ctx.call_entity(&to, Account::balance_op()).await?;
        ctx.signal_entity(&from, Account::set_op(a - 1));
        ctx.signal_entity(&to, Account::set_op(b + 1));
        lock.release();
    }
    Ok(times)
}

async fn opposite_transfers(cache: Option<usize>, times: u32) {
    let store = TestStore::new();
    let (runtime, client) = store.start_with(cache_settings(cache)).await;
    let (a, b) = (Account::entity_id("a"), Account::entity_id("b"));
    client
        .signal_entity(&a, Account::set_op(1_000))
        .await
        .expect("durable");
    client
        .signal_entity(&b, Account::set_op(1_000))
        .await
        .expect("durable");
    until_state::<Account>(&client, &b, |s| s.is_some()).await;
    let there = client
        .start(transfer, ("a".into(), "b".into(), times))
        .await
        .expect("starts");
    let back = client
        .start(transfer, ("b".into(), "a".into(), times))
        .await
        .expect("starts");
    for id in [&there, &back] {
        let status = client
            .wait_for_completion(id, WAIT * 4)
            .await
            .expect("no deadlock");
        assert_eq!(
            status.runtime_status,
            RuntimeStatus::Completed,
            "{:?}",
            status.failure
        );
    }
    // The last writes and releases reach the entities after the orchestrations complete.
    until_quiet(&client).await;
    let a_state = client
        .read_entity_state::<Account>(&a)
        .await
        .expect("reads")
        .expect("state");
    let b_state = client
        .read_entity_state::<Account>(&b)
        .await
        .expect("reads")
        .expect("state");
    assert_eq!(
        a_state.balance + b_state.balance,
        2_000,
        "cache {cache:?}: total conserved"
    );
    // As many went each way: both are back where they started.
    assert_eq!(
        (a_state.balance, b_state.balance),
        (1_000, 1_000),
        "cache {cache:?}"
    );
    runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_opposite_transfers_200_times_each_never_deadlock_and_conserve_the_total() {
    opposite_transfers(None, 200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opposite_transfers_replayed_at_every_step_conserve_the_total() {
    // Every step replays the whole history: fewer rounds keep it quick.
    opposite_transfers(CACHES[1], 25).await;
}

/// Holds the lock on `held` until the event `go`, then reads the balance.
#[orchestrator]
async fn holder(ctx: OrchestrationContext, key: String) -> Result<i64, OrchestrationError> {
    let id = Account::entity_id(key);
    let _lock = ctx.lock_entities(std::slice::from_ref(&id)).await?;
    ctx.set_custom_status("locked")?;
    ctx.wait_for_event::<()>("go").await?;
    Ok(ctx.call_entity(&id, Account::balance_op()).await?)
}

/// Takes the lock, then fails while holding it.
#[orchestrator]
async fn failing_holder(ctx: OrchestrationContext, key: String) -> Result<(), OrchestrationError> {
    let id = Account::entity_id(key);
    let _lock = ctx.lock_entities(std::slice::from_ref(&id)).await?;
    Err(OrchestrationError::new(
        "gave up inside the critical section",
    ))
}

/// Waits until no entity has an operation queued or a lock held.
async fn until_quiet(client: &Client) {
    let wait = async {
        loop {
            let page = client
                .list_entities(&durable_runtime::store::EntityQuery::default())
                .await
                .expect("lists");
            if page
                .entities
                .iter()
                .all(|e| e.pending_operations == 0 && e.locked_by.is_none())
            {
                return;
            }
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(WAIT, wait)
        .await
        .expect("the entities go quiet");
}

async fn until_locked(client: &Client, id: &str) {
    let wait = async {
        loop {
            let status = client.get_status(id).await.expect("reads").expect("exists");
            if status.custom_status.is_some() {
                return;
            }
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(WAIT, wait)
        .await
        .expect("takes the lock");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_senders_wait_while_the_lock_is_held_and_run_after_it() {
    for cache in CACHES {
        let store = TestStore::new();
        let (runtime, client) = store.start_with(cache_settings(cache)).await;
        let account = Account::entity_id("held");
        let id = client.start(holder, "held".into()).await.expect("starts");
        until_locked(&client, &id).await;
        // Sent before the holder's read, yet it waits for the lock: the read does not see it.
        client
            .signal_entity(&account, Account::add_op(5))
            .await
            .expect("durable");
        client.raise_event(&id, "go", ()).await.expect("raised");
        let status = client
            .wait_for_completion(&id, WAIT)
            .await
            .expect("finishes");
        assert_eq!(
            status.output_as::<i64>().expect("output"),
            0,
            "cache {cache:?}"
        );
        // Released when the orchestration ended: the waiting add runs.
        until_state::<Account>(&client, &account, |s| s.is_some_and(|a| a.balance == 5)).await;
        runtime.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locks_are_released_when_the_holder_fails_or_is_terminated() {
    for cache in CACHES {
        let store = TestStore::new();
        let (runtime, client) = store.start_with(cache_settings(cache)).await;
        // Terminated while holding the lock (the store releases it).
        let account = Account::entity_id("t");
        let id = client.start(holder, "t".into()).await.expect("starts");
        until_locked(&client, &id).await;
        client
            .signal_entity(&account, Account::add_op(3))
            .await
            .expect("durable");
        client.terminate(&id, "stop").await.expect("terminated");
        until_state::<Account>(&client, &account, |s| s.is_some_and(|a| a.balance == 3)).await;
        let page = client
            .list_entities(&durable_runtime::store::EntityQuery::default())
            .await
            .expect("lists");
        assert!(
            page.entities.iter().all(|e| e.locked_by.is_none()),
            "{page:?}"
        );

        // Failed while holding it (the guard is dropped as the code returns its error).
        let failing = Account::entity_id("f");
        let id = client
            .start(failing_holder, "f".into())
            .await
            .expect("starts");
        until_status(&client, &id, RuntimeStatus::Failed).await;
        client
            .signal_entity(&failing, Account::add_op(4))
            .await
            .expect("durable");
        until_state::<Account>(&client, &failing, |s| s.is_some_and(|a| a.balance == 4)).await;
        runtime.shutdown().await;
    }
}

/// Takes the lock, then continues as new while holding it (its first run), and ends.
#[orchestrator]
async fn relay(ctx: OrchestrationContext, generation: u32) -> Result<(), OrchestrationError> {
    if generation == 0 {
        let id = Account::entity_id("relay");
        // Held until the run ends: the store releases it then.
        let _lock = ctx.lock_entities(std::slice::from_ref(&id)).await?;
        return ctx.continue_as_new(relay, 1).await;
    }
    ctx.set_custom_status("second run")?;
    ctx.wait_for_event::<()>("end").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_continues_as_new_releases_its_locks() {
    let store = TestStore::new();
    let (runtime, client) = store.start().await;
    let account = Account::entity_id("relay");
    let id = client.start(relay, 0).await.expect("starts");
    // Sent once the first run (which held the lock) has ended.
    until_locked(&client, &id).await;
    client
        .signal_entity(&account, Account::add_op(2))
        .await
        .expect("durable");
    // The second run is still running, and the entity serves others.
    until_state::<Account>(&client, &account, |s| s.is_some_and(|a| a.balance == 2)).await;
    assert_eq!(
        client
            .get_status(&id)
            .await
            .expect("reads")
            .expect("exists")
            .runtime_status,
        RuntimeStatus::Running
    );
    client.raise_event(&id, "end", ()).await.expect("raised");
    client
        .wait_for_completion(&id, WAIT)
        .await
        .expect("finishes");
    runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_held_across_a_restart_still_holds_and_is_released_after_it() {
    for cache in CACHES {
        let store = TestStore::new();
        let (runtime, client) = store.start_with(cache_settings(cache)).await;
        let account = Account::entity_id("restart");
        let id = client
            .start(holder, "restart".into())
            .await
            .expect("starts");
        until_locked(&client, &id).await;
        client
            .signal_entity(&account, Account::add_op(5))
            .await
            .expect("durable");
        runtime.shutdown().await;
        drop(client);
        // The lock and the waiting add come back from the store.
        let (runtime, client) = store.restart(cache_settings(cache)).await;
        client.raise_event(&id, "go", ()).await.expect("raised");
        let status = client
            .wait_for_completion(&id, WAIT)
            .await
            .expect("finishes");
        assert_eq!(
            status.output_as::<i64>().expect("output"),
            0,
            "cache {cache:?}"
        );
        until_state::<Account>(&client, &account, |s| s.is_some_and(|a| a.balance == 5)).await;
        runtime.shutdown().await;
    }
}
