use durable_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[entity(name = "tally")]
async fn counter(ctx: &mut EntityContext<i64>) -> Result<(), EntityError> {
    let n: i64 = ctx.input()?;
    *ctx.state_mut() += n;
    Ok(())
}

#[derive(Default, Serialize, Deserialize)]
struct Account {
    balance: i64,
}

#[entity]
impl Account {
    pub fn deposit(&mut self, amount: i64) {
        self.balance += amount;
    }

    pub async fn withdraw(&mut self, amount: i64) -> Result<i64, String> {
        if amount > self.balance {
            return Err("insufficient funds".into());
        }
        self.balance -= amount;
        Ok(self.balance)
    }

    pub fn balance(&self) -> i64 {
        self.balance
    }

    pub fn transfer_in(&mut self, from: String, amount: i64) {
        let _ = from;
        self.balance += amount;
    }

    pub fn close(self) {}
}

/// The determinism check accepts entity calls, signals and critical sections.
#[orchestrator]
async fn move_money(ctx: OrchestrationContext, amount: i64) -> Result<i64, OrchestrationError> {
    let (from, to) = (Account::entity_id("a"), Account::entity_id("b"));
    let lock = ctx.lock_entities(&[from.clone(), to.clone()]).await?;
    let left = ctx.call_entity(&from, Account::withdraw_op(amount)).await?;
    ctx.signal_entity(&to, Account::deposit_op(amount));
    lock.release();
    let total = ctx
        .call_entity(&EntityId::new("tally", "t"), Operation::named("add", 1))
        .await?;
    let _ = total;
    Ok(left)
}

async fn use_them(client: Client) -> Result<(), durable_runtime::Error> {
    let id = Account::entity_id("alice");
    client.signal_entity(&id, Account::deposit_op(5)).await?;
    let _: Operation<i64> = Account::withdraw_op(1);
    let _: Operation<i64> = Account::balance_op();
    client.signal_entity(&id, Account::transfer_in_op("bob".into(), 2)).await?;
    client.signal_entity(&id, Account::close_op()).await?;
    client
        .signal_entity(&EntityId::new("tally", "t"), Operation::named("add", 1))
        .await?;
    Ok(())
}

fn main() {
    let _ = use_them;
    let _ = move_money;
    assert_eq!(Account::ENTITY_NAME, "account");
}
