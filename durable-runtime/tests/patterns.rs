//! The basic patterns produce the right outputs, hot (cached) and replayed from history.

mod support;

use durable_runtime::prelude::*;
use durable_runtime::{HistoryEvent, InstanceQuery};
use serde::{Deserialize, Serialize};
use support::{TestStore, WAIT};

#[activity]
async fn say_hello(city: String) -> Result<String, ActivityError> {
    Ok(format!("Hello {city}!"))
}

#[orchestrator]
async fn hello_sequence(ctx: OrchestrationContext) -> Result<Vec<String>, OrchestrationError> {
    let mut out = Vec::new();
    for city in ["Tokyo", "Seattle", "London"] {
        out.push(ctx.call_activity(say_hello, city.to_string()).await?);
    }
    Ok(out)
}

#[activity]
async fn double(n: u64) -> u64 {
    n * 2
}

#[orchestrator]
async fn fan_out(ctx: OrchestrationContext, n: u64) -> Result<u64, OrchestrationError> {
    let results = ctx
        .when_all((0..n).map(|i| ctx.call_activity(double, i)))
        .await;
    let mut sum = 0;
    for r in results {
        sum += r?;
    }
    Ok(sum)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Order {
    id: u32,
    items: Vec<String>,
    total_cents: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Receipt {
    Accepted { order: Order, note: Option<String> },
    Rejected(String),
}

#[activity]
async fn accept(
    ctx: ActivityContext,
    order: Order,
    note: String,
) -> Result<Receipt, ActivityError> {
    assert!(!ctx.instance_id().is_empty());
    Ok(Receipt::Accepted {
        order,
        note: Some(note),
    })
}

#[activity]
async fn no_input() -> String {
    "constant".to_string()
}

#[orchestrator(name = "process_order", version = "2")]
async fn process_order_v2(
    ctx: OrchestrationContext,
    order: Order,
) -> Result<(Receipt, String), OrchestrationError> {
    let receipt = ctx
        .call_activity(accept, (order, "gift wrap".to_string()))
        .await?;
    let constant = ctx.call_activity(no_input, ()).await?;
    Ok((receipt, constant))
}

#[orchestrator]
async fn by_name(ctx: OrchestrationContext, city: String) -> Result<String, OrchestrationError> {
    Ok(ctx
        .call_activity_by_name::<String>("say_hello", city)
        .await?)
}

#[activity]
async fn never_returns() {
    std::future::pending::<()>().await
}

#[orchestrator]
async fn waits_forever(ctx: OrchestrationContext) -> Result<(), OrchestrationError> {
    Ok(ctx.call_activity(never_returns, ()).await?)
}

async fn run_patterns(builder: durable_runtime::RuntimeBuilder) {
    let runtime = builder.start().await.expect("runtime starts");
    let client = runtime.client();

    let id = client.start(hello_sequence, ()).await.expect("start");
    let status = client
        .wait_for_completion(&id, WAIT)
        .await
        .expect("completes");
    assert_eq!(
        status.runtime_status,
        RuntimeStatus::Completed,
        "{status:?}"
    );
    let greetings: Vec<String> = status.output_as().expect("output");
    assert_eq!(
        greetings,
        ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]
    );

    let id = client.start(fan_out, 1000).await.expect("start");
    let status = client
        .wait_for_completion(&id, WAIT)
        .await
        .expect("completes");
    assert_eq!(status.output_as::<u64>().expect("output"), 999_000);

    let order = Order {
        id: 7,
        items: vec!["tea".into(), "cups".into()],
        total_cents: 1250,
    };
    let id = client
        .start_with_id(process_order_v2, "order-7", order.clone())
        .await
        .expect("start");
    let status = client
        .wait_for_completion(&id, WAIT)
        .await
        .expect("completes");
    let (receipt, constant): (Receipt, String) = status.output_as().expect("output");
    assert_eq!(
        receipt,
        Receipt::Accepted {
            order,
            note: Some("gift wrap".into())
        }
    );
    assert_eq!(constant, "constant");
    assert_eq!(status.name, "process_order");
    assert_eq!(status.version.as_deref(), Some("2"));

    let id = client
        .start_by_name("by_name", None, "Oslo")
        .await
        .expect("start by name");
    let status = client
        .wait_for_completion(&id, WAIT)
        .await
        .expect("completes");
    assert_eq!(status.output_as::<String>().expect("output"), "Hello Oslo!");
    runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patterns_run_hot() {
    let store = TestStore::new();
    run_patterns(store.builder()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patterns_run_when_every_step_replays_from_history() {
    let store = TestStore::new();
    run_patterns(store.builder().cache_capacity(0)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_records_each_step() {
    let store = TestStore::new();
    let (runtime, client) = store.start().await;
    let id = client.start(hello_sequence, ()).await.expect("start");
    client
        .wait_for_completion(&id, WAIT)
        .await
        .expect("completes");
    let status = client
        .get_status_with_history(&id)
        .await
        .expect("reads")
        .expect("exists");
    let types: Vec<&str> = status
        .history
        .as_ref()
        .expect("history")
        .iter()
        .map(|r| r.event.event_type())
        .collect();
    assert_eq!(
        types,
        [
            "OrchestratorStarted",
            "ExecutionStarted",
            "TaskScheduled",
            "OrchestratorStarted",
            "TaskCompleted",
            "TaskScheduled",
            "OrchestratorStarted",
            "TaskCompleted",
            "TaskScheduled",
            "OrchestratorStarted",
            "TaskCompleted",
            "ExecutionCompleted",
        ]
    );
    let history = status.history.expect("history");
    assert!(history.iter().enumerate().all(|(i, r)| r.seq == i as u64));
    assert!(
        matches!(&history[2].event, HistoryEvent::TaskScheduled { name, .. } if name == "say_hello")
    );
    runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_survive_a_restart_and_can_be_listed() {
    let store = TestStore::new();
    let (runtime, client) = store.start().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            client
                .start_with_id(fan_out, format!("list-{i}"), 10)
                .await
                .expect("start"),
        );
    }
    for id in &ids {
        client
            .wait_for_completion(id, WAIT)
            .await
            .expect("completes");
    }
    drop(client);
    runtime.shutdown().await;

    // Once the store is released (on PostgreSQL, the schema's lock goes with its connection a
    // moment after shutdown returns).
    let (runtime, client) = store.restart(|builder| builder).await;
    let page = client
        .list(&InstanceQuery {
            instance_id_prefix: Some("list-".into()),
            statuses: vec![RuntimeStatus::Completed],
            page_size: 3,
            ..InstanceQuery::default()
        })
        .await
        .expect("lists");
    assert_eq!(page.instances.len(), 3);
    let token = page.continuation_token.expect("a second page");
    let rest = client
        .list(&InstanceQuery {
            instance_id_prefix: Some("list-".into()),
            continuation_token: Some(token),
            ..InstanceQuery::default()
        })
        .await
        .expect("lists");
    let mut listed: Vec<String> = page
        .instances
        .iter()
        .chain(&rest.instances)
        .map(|s| s.instance_id.clone())
        .collect();
    listed.sort();
    assert_eq!(listed, ids);
    assert!(rest.continuation_token.is_none());
    let none = client
        .list(&InstanceQuery {
            statuses: vec![RuntimeStatus::Failed],
            ..InstanceQuery::default()
        })
        .await
        .expect("lists");
    assert!(none.instances.is_empty());
    runtime.shutdown().await;
}

#[tokio::test]
async fn activities_stay_directly_callable() {
    assert_eq!(
        say_hello("Rome".to_string()).await,
        Ok("Hello Rome!".to_string())
    );
    assert_eq!(double(21).await, 42);
    let receipt = accept(
        ActivityContext::for_test("test", 0),
        Order {
            id: 1,
            items: vec![],
            total_cents: 0,
        },
        "n".into(),
    )
    .await
    .expect("accepts");
    assert!(matches!(receipt, Receipt::Accepted { .. }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_times_out_on_an_unfinished_instance() {
    let store = TestStore::new();
    let (runtime, client) = store.start().await;
    let id = client.start(waits_forever, ()).await.expect("start");
    let err = client
        .wait_for_completion(&id, Duration::from_millis(1))
        .await
        .expect_err("cannot finish in 1 ms");
    assert!(
        matches!(err, durable_runtime::Error::Timeout { .. }),
        "{err}"
    );
    let err = client
        .wait_for_completion("no-such-instance", WAIT)
        .await
        .expect_err("unknown");
    assert!(
        matches!(err, durable_runtime::Error::InstanceNotFound(_)),
        "{err}"
    );
    drop(client);
    drop(runtime);
}
