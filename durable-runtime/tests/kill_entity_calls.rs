//! Orchestrations calling an entity survive `kill -9`: a worker process runs 20 orchestrations
//! that each call `add(1)` 25 times on one shared counter (and once on a counter of their
//! own), and is killed five times at random points. Each call is queued in the same commit as
//! the step that records it, and its result comes back with the entity's batch, so a replay
//! never sends it again and a crash never loses it: the shared counter ends at exactly 500.

mod support;

use durable_runtime::prelude::*;
use serde::{Deserialize, Serialize};
use support::TestStore;

const INSTANCES: u64 = 20;
const CALLS: u64 = 25;

#[derive(Default, Serialize, Deserialize)]
struct Counter(u64);

#[entity]
impl Counter {
    pub fn add(&mut self, n: u64) -> u64 {
        self.0 += n;
        self.0
    }
}

#[orchestrator]
async fn caller(ctx: OrchestrationContext, n: u64) -> Result<u64, OrchestrationError> {
    let shared = Counter::entity_id("shared");
    let own = Counter::entity_id(format!("own-{n}"));
    for _ in 0..CALLS {
        ctx.call_entity(&shared, Counter::add_op(1)).await?;
    }
    Ok(ctx.call_entity(&own, Counter::add_op(1)).await?)
}

#[test]
#[ignore = "run as a child process by entity_calls_from_orchestrations_run_exactly_once_across_kill_9"]
fn entity_caller_process() {
    let Ok(store) = std::env::var("DURABLE_EC_STORE") else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().expect("tokio");
    rt.block_on(async {
        let runtime = Runtime::builder()
            .sqlite(store)
            .start()
            .await
            .expect("runtime");
        let client = runtime.client();
        for n in 0..INSTANCES {
            match client.start_with_id(caller, format!("caller-{n}"), n).await {
                Ok(_) | Err(durable_runtime::Error::InstanceAlreadyExists(_)) => {}
                Err(err) => panic!("start failed: {err}"),
            }
        }
        for n in 0..INSTANCES {
            let status = client
                .wait_for_completion(&format!("caller-{n}"), support::WAIT)
                .await
                .expect("finishes");
            assert_eq!(
                status.runtime_status,
                RuntimeStatus::Completed,
                "{:?}",
                status.failure
            );
            // Its own counter got exactly one call.
            assert_eq!(status.output_as::<u64>().expect("output"), 1);
            println!("ran caller-{n}");
        }
        println!("all done");
        runtime.shutdown().await;
    });
}

#[test]
fn entity_calls_from_orchestrations_run_exactly_once_across_kill_9() {
    let store = TestStore::new();
    support::kill_repeatedly(
        "entity_caller_process",
        &[("DURABLE_EC_STORE", store.path().as_os_str())],
        5,
        (1, 4),
    );
    let conn = durable_runtime::store::sqlite::open_read_only(store.path()).expect("open");
    let shared: String = conn
        .query_row(
            "SELECT state FROM entities WHERE entity_id = '@counter@shared'",
            [],
            |row| row.get(0),
        )
        .expect("the shared counter exists");
    assert_eq!(
        shared,
        (INSTANCES * CALLS).to_string(),
        "every call applied exactly once"
    );
    let left: i64 = conn
        .query_row("SELECT COUNT(*) FROM entity_messages", [], |row| row.get(0))
        .expect("counts");
    assert_eq!(left, 0, "no operation left queued");
}
