//! Entities from orchestrations: `ctx.signal_entity` and `ctx.call_entity` are recorded in
//! history, queued with the step's commit, and their results come back as stored messages; an
//! operation's failure is the caller's `TaskFailed`. On the hot cache and on replay
//! (`cache_capacity(0)`), and across a restart between the call and its result.

mod support;

use durable_runtime::prelude::*;
use durable_runtime::{HistoryEvent, Operation};
use serde::{Deserialize, Serialize};
use support::entities::until_state;
use support::{CACHES, TestStore, WAIT, cache_settings, history};

#[derive(Default, Serialize, Deserialize, Debug, PartialEq)]
struct Account {
    balance: i64,
}

#[entity]
impl Account {
    pub fn deposit(&mut self, amount: i64) {
        self.balance += amount;
    }

    pub fn withdraw(&mut self, amount: i64) -> Result<i64, String> {
        if amount > self.balance {
            return Err(format!("insufficient funds: {} < {amount}", self.balance));
        }
        self.balance -= amount;
        Ok(self.balance)
    }

    pub fn balance(&self) -> i64 {
        self.balance
    }
}

/// Deposits by signal, reads back by call, then tries to overdraw and reports the failure.
#[orchestrator]
async fn banker(
    ctx: OrchestrationContext,
    key: String,
) -> Result<(i64, String), OrchestrationError> {
    let id = Account::entity_id(key);
    for amount in [10, 20, 30] {
        ctx.signal_entity(&id, Account::deposit_op(amount));
    }
    // Operations of one sender run in the order sent: the call sees all three deposits.
    let balance = ctx.call_entity(&id, Account::balance_op()).await?;
    let left = ctx.call_entity(&id, Account::withdraw_op(50)).await?;
    let refused = match ctx.call_entity(&id, Account::withdraw_op(1_000)).await {
        Ok(_) => "allowed".to_string(),
        Err(failed) => failed.to_string(),
    };
    assert_eq!(left, balance - 50);
    Ok((balance, refused))
}

/// Calls by name (as from HTTP): the result is JSON.
#[orchestrator]
async fn by_name(ctx: OrchestrationContext) -> Result<serde_json::Value, OrchestrationError> {
    let id = EntityId::new("account", "named");
    ctx.signal_entity(&id, Operation::named("deposit", 7));
    Ok(ctx
        .call_entity(&id, Operation::named("balance", ()))
        .await?)
}

/// Waits for an event between a signal and a call (a restart lands there).
#[orchestrator]
async fn patient(ctx: OrchestrationContext) -> Result<i64, OrchestrationError> {
    let id = Account::entity_id("patient");
    ctx.signal_entity(&id, Account::deposit_op(5));
    ctx.wait_for_event::<()>("go").await?;
    ctx.signal_entity(&id, Account::deposit_op(6));
    Ok(ctx.call_entity(&id, Account::balance_op()).await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orchestrations_signal_and_call_entities_on_both_paths() {
    for cache in CACHES {
        let store = TestStore::new();
        let (runtime, client) = store.start_with(cache_settings(cache)).await;
        let id = client.start(banker, "alice".into()).await.expect("starts");
        let status = client
            .wait_for_completion(&id, WAIT)
            .await
            .expect("finishes");
        let (balance, refused): (i64, String) = status.output_as().expect("output");
        assert_eq!(balance, 60, "cache {cache:?}");
        assert!(
            refused.contains("insufficient funds: 10 < 1000"),
            "{refused}"
        );
        let account = Account::entity_id("alice");
        assert_eq!(
            client
                .read_entity_state::<Account>(&account)
                .await
                .expect("reads"),
            Some(Account { balance: 10 })
        );
        // Recorded: three signals and three calls, with their results.
        let events = history(&client, &id).await;
        let called = events
            .iter()
            .filter(|r| matches!(&r.event, HistoryEvent::EntityOperationCalled(c) if !c.signal))
            .count();
        let signaled = events
            .iter()
            .filter(|r| matches!(&r.event, HistoryEvent::EntityOperationCalled(c) if c.signal))
            .count();
        let failed = events
            .iter()
            .filter(|r| matches!(r.event, HistoryEvent::EntityOperationFailed { .. }))
            .count();
        assert_eq!((signaled, called, failed), (3, 3, 1), "cache {cache:?}");
        // The entity's log names the orchestration as the sender.
        let log = client.entity_log(&account).await.expect("log");
        assert_eq!(log.len(), 6);
        assert!(log.iter().all(|e| e.sender == id));

        let named = client.start(by_name, ()).await.expect("starts");
        let status = client
            .wait_for_completion(&named, WAIT)
            .await
            .expect("finishes");
        assert_eq!(status.output_as::<i64>().expect("output"), 7);
        runtime.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_survives_a_restart_and_replays_deterministically() {
    for cache in CACHES {
        let store = TestStore::new();
        let (runtime, client) = store.start_with(cache_settings(cache)).await;
        let id = client.start(patient, ()).await.expect("starts");
        let account = Account::entity_id("patient");
        until_state::<Account>(&client, &account, |s| s.is_some_and(|a| a.balance == 5)).await;
        runtime.shutdown().await;
        drop(client);
        let (runtime, client) = store.restart(cache_settings(cache)).await;
        client.raise_event(&id, "go", ()).await.expect("raised");
        let status = client
            .wait_for_completion(&id, WAIT)
            .await
            .expect("finishes");
        assert_eq!(
            status.runtime_status,
            RuntimeStatus::Completed,
            "{:?}",
            status.failure
        );
        assert_eq!(
            status.output_as::<i64>().expect("output"),
            11,
            "cache {cache:?}"
        );
        // Replayed after the restart, the first signal was not sent again.
        assert_eq!(
            client
                .read_entity_state::<Account>(&account)
                .await
                .expect("reads"),
            Some(Account { balance: 11 })
        );
        runtime.shutdown().await;
    }
}

/// Calls an entity no `#[entity]` registers.
#[orchestrator]
async fn misdialed(ctx: OrchestrationContext) -> Result<String, OrchestrationError> {
    let id = EntityId::new("acount", "x");
    match ctx.call_entity(&id, Operation::named("balance", ())).await {
        Ok(value) => Ok(format!("answered {value}")),
        Err(failed) => Ok(failed.to_string()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_to_an_unregistered_entity_fails_instead_of_waiting_forever() {
    for cache in CACHES {
        let store = TestStore::new();
        let (runtime, client) = store.start_with(cache_settings(cache)).await;
        let id = client.start(misdialed, ()).await.expect("starts");
        let status = client
            .wait_for_completion(&id, WAIT)
            .await
            .expect("finishes");
        let message: String = status.output_as().expect("output");
        assert!(
            message.contains("no entity named 'acount' is registered"),
            "cache {cache:?}: {message}"
        );
        runtime.shutdown().await;
    }
}

/// Deposits 1 by signal in each run, continuing as new until `runs` is 1; the last run calls.
#[orchestrator]
async fn depositing_generations(
    ctx: OrchestrationContext,
    (key, runs): (String, u32),
) -> Result<i64, OrchestrationError> {
    let id = Account::entity_id(key.clone());
    ctx.signal_entity(&id, Account::deposit_op(1));
    if runs > 1 {
        return ctx
            .continue_as_new(depositing_generations, (key, runs - 1))
            .await;
    }
    Ok(ctx.call_entity(&id, Account::balance_op()).await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signals_sent_in_the_step_that_continues_as_new_are_sent() {
    for cache in CACHES {
        let store = TestStore::new();
        let (runtime, client) = store.start_with(cache_settings(cache)).await;
        let id = client
            .start(depositing_generations, ("carol".into(), 3))
            .await
            .expect("starts");
        let status = client
            .wait_for_completion(&id, WAIT)
            .await
            .expect("finishes");
        // One signal per run, all before the last run's call: the call sees all three.
        assert_eq!(
            status.output_as::<i64>().expect("output"),
            3,
            "cache {cache:?}"
        );
        runtime.shutdown().await;
    }
}
