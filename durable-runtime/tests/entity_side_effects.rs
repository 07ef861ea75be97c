//! An operation's side effects: impl-style operations taking `ops: &mut EntityOps` (and
//! function-style ones through their context) signal other entities and start orchestrations,
//! committed with the operation's change to the state: sent once if it succeeds, not at all if
//! it fails. Hot and replayed (`cache_capacity(0)`), on both stores
//! (`DURABLE_TEST_BACKEND=postgres`).

mod support;

use durable_runtime::instance::InstanceQuery;
use durable_runtime::prelude::*;
use serde::{Deserialize, Serialize};
use support::entities::{until_logged, until_state};
use support::{CACHES, TestStore, WAIT, cache_settings, query_text};

#[orchestrator]
async fn over_budget(ctx: OrchestrationContext, spent: i64) -> Result<i64, OrchestrationError> {
    let _ = ctx;
    Ok(spent)
}

#[derive(Default, Serialize, Deserialize, Debug, PartialEq)]
struct Ledger(i64);

#[entity]
impl Ledger {
    pub fn add(&mut self, n: i64) {
        self.0 += n;
    }
}

#[derive(Default, Serialize, Deserialize, Debug, PartialEq)]
struct Budget {
    spent: i64,
    /// The instance started when the budget was exceeded.
    alert: Option<String>,
}

const LIMIT: i64 = 10;

#[entity]
impl Budget {
    /// Books `amount` on the ledger of the same key; over the limit, starts an alert once.
    pub fn spend(&mut self, ops: &mut EntityOps, amount: i64) -> Result<(), EntityError> {
        self.spent += amount;
        ops.signal_entity(&Ledger::entity_id(ops.id().key()), Ledger::add_op(amount))?;
        if self.spent > LIMIT && self.alert.is_none() {
            self.alert = Some(ops.start_new(over_budget, self.spent)?);
        }
        Ok(())
    }

    /// Sends and starts, then fails: nothing it sent may leave.
    pub fn spend_then_fail(&mut self, ops: &mut EntityOps) -> Result<(), String> {
        self.spent += 1000;
        ops.signal_entity(&Ledger::entity_id(ops.id().key()), Ledger::add_op(1000))
            .map_err(|e| e.to_string())?;
        ops.start_new(over_budget, 1000)
            .map_err(|e| e.to_string())?;
        Err("refused after sending".into())
    }

    /// A read, async, that sends.
    pub async fn ping(&self, ops: &mut EntityOps) {
        let _ = ops.signal_entity(&Ledger::entity_id(ops.id().key()), Ledger::add_op(1));
    }
}

/// Function style: `start` starts `over_budget` by name with its input; `bogus` names an
/// orchestrator no one registered.
#[entity]
async fn starter(ctx: &mut EntityContext<Vec<String>>) -> Result<(), EntityError> {
    match ctx.operation_name() {
        "start" => {
            let spent: i64 = ctx.input()?;
            let id = ctx.start_new_by_name("over_budget", spent)?;
            ctx.state_mut().push(id);
        }
        "bogus" => {
            ctx.start_new_by_name("no_such_orchestrator", 0)?;
        }
        // Sends an input of `n` bytes and more: over a small payload limit.
        "big_start" => {
            let n: usize = ctx.input()?;
            ctx.start_new_by_name("over_budget", "9".repeat(n))?;
        }
        "big_signal" => {
            let n: usize = ctx.input()?;
            ctx.signal_entity(
                &Ledger::entity_id("big"),
                Operation::named("add", "9".repeat(n)),
            )?;
        }
        other => return Err(EntityError::new(format!("no operation '{other}'"))),
    }
    Ok(())
}

async fn over_budget_instances(client: &Client) -> usize {
    client
        .list(&InstanceQuery {
            name: Some("over_budget".into()),
            ..InstanceQuery::default()
        })
        .await
        .expect("lists")
        .instances
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_signal_and_start_orchestrations_with_their_commit() {
    for cache in CACHES {
        let store = TestStore::new();
        let (runtime, client) = store.start_with(cache_settings(cache)).await;
        let (budget, ledger) = (Budget::entity_id("q1"), Ledger::entity_id("q1"));
        for send in [
            Budget::spend_op(4),
            Budget::spend_op(4),
            Budget::spend_then_fail_op(),
            Budget::spend_op(5),
            Budget::ping_op(),
        ] {
            client.signal_entity(&budget, send).await.expect("durable");
        }
        // The budget's signals reach the ledger in order: 4, 4, 5, 1, and no 1000.
        until_state::<Ledger>(&client, &ledger, |s| s == Some(&Ledger(14))).await;
        let state =
            until_state::<Budget>(&client, &budget, |s| s.is_some_and(|b| b.alert.is_some()))
                .await
                .expect("a state");
        assert_eq!(state.spent, 13, "the failed operation's change was undone");
        let alert = state.alert.expect("started");
        let status = client
            .wait_for_completion(&alert, WAIT)
            .await
            .expect("the alert runs");
        assert_eq!(status.output_as::<i64>().expect("output"), 13);
        let log = client.entity_log(&budget).await.expect("reads");
        assert_eq!(log.iter().filter(|e| !e.ok).count(), 1, "{log:?}");

        // Function style, by name; an unknown name fails the operation alone.
        let id = EntityId::new("starter", "s");
        client
            .signal_entity(&id, Operation::named("bogus", ()))
            .await
            .expect("durable");
        client
            .signal_entity(&id, Operation::named("start", 42))
            .await
            .expect("durable");
        let started = until_state::<Vec<String>>(&client, &id, |s| s.is_some_and(|v| v.len() == 1))
            .await
            .expect("a state");
        let status = client
            .wait_for_completion(&started[0], WAIT)
            .await
            .expect("runs");
        assert_eq!(status.output_as::<i64>().expect("output"), 42);
        let log = until_logged(&client, &id, 2).await;
        assert!(
            log[0]
                .error
                .as_deref()
                .is_some_and(|e| e.contains("no_such_orchestrator")),
            "{log:?}"
        );
        // Exactly the two orchestrations the successful operations started exist.
        assert_eq!(over_budget_instances(&client).await, 2);
        runtime.shutdown().await;
        drop(client);

        // After a restart: what was committed stays, once.
        let (runtime, client) = store.restart(cache_settings(cache)).await;
        client
            .signal_entity(&budget, Budget::spend_op(1))
            .await
            .expect("durable");
        until_state::<Ledger>(&client, &ledger, |s| s == Some(&Ledger(15))).await;
        let state = client
            .read_entity_state::<Budget>(&budget)
            .await
            .expect("reads")
            .expect("a state");
        assert_eq!(state.spent, 14);
        assert_eq!(state.alert.as_deref(), Some(alert.as_str()), "started once");
        assert_eq!(over_budget_instances(&client).await, 2);
        runtime.shutdown().await;
    }
}

/// What an operation sends is held to the payload limit, as what clients and orchestrations
/// send: an input over it fails the operation, and nothing is started or queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_input_over_the_payload_limit_fails_the_operation_that_sends_it() {
    let store = TestStore::new();
    let (runtime, client) = store
        .start_with(|builder| builder.max_payload_size(1024))
        .await;
    let id = EntityId::new("starter", "big");
    for operation in ["big_start", "big_signal"] {
        client
            .signal_entity(&id, Operation::named(operation, 4096))
            .await
            .expect("durable");
    }
    let log = until_logged(&client, &id, 2).await;
    for entry in &log {
        assert!(
            !entry.ok
                && entry
                    .error
                    .as_deref()
                    .is_some_and(|e| e.contains("payload limit")),
            "{log:?}"
        );
    }
    assert_eq!(over_budget_instances(&client).await, 0);
    runtime.shutdown().await;
    drop(client);
    let ledger = Ledger::entity_id("big");
    assert_eq!(
        query_text(
            &store,
            &format!(
                "SELECT CAST(COUNT(*) AS TEXT) FROM entity_messages WHERE entity_id = '{ledger}'"
            )
        )
        .as_deref(),
        Some("0"),
        "nothing was queued for the ledger"
    );
}
