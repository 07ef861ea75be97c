//! Client management survives `kill -9`: a worker process suspends instances, raises their
//! event while they are suspended, and resumes them (terminating every fifth instead), printing
//! each acknowledged call; the parent kills it at random points and starts it again, and each
//! incarnation goes over every instance once more (a call that no longer applies is skipped).
//! In the end every instance finished as its calls said: each acknowledged event was processed
//! exactly once, nothing ran on a terminated instance, and no instance stayed suspended.

mod support;

use durable_runtime::prelude::*;
use durable_runtime::{HistoryEvent, Payload};
use support::TestStore;

const INSTANCES: u64 = 20;
const KILLS: usize = 6;

#[activity]
async fn double(n: u64) -> u64 {
    n * 2
}

#[orchestrator]
async fn doubles_its_event(ctx: OrchestrationContext) -> Result<u64, OrchestrationError> {
    let n = ctx.wait_for_event::<u64>("go").await?;
    Ok(ctx.call_activity(double, n).await?)
}

fn id(i: u64) -> String {
    format!("managed-{i}")
}

fn terminated(i: u64) -> bool {
    i % 5 == 4
}

/// A call that no longer applies (done by an earlier incarnation) is skipped.
fn skip_done(result: Result<(), durable_runtime::Error>) {
    match result {
        Ok(())
        | Err(durable_runtime::Error::NotApplicable { .. })
        | Err(durable_runtime::Error::InstanceFinished { .. }) => {}
        Err(err) => panic!("management call failed: {err}"),
    }
}

#[test]
#[ignore = "run as a child process by management_survives_kill_9"]
fn management_worker_process() {
    let Ok(store) = std::env::var("DURABLE_MGMT_STORE") else {
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
        for i in 0..INSTANCES {
            match client.start_with_id(doubles_its_event, id(i), ()).await {
                Ok(_) | Err(durable_runtime::Error::InstanceAlreadyExists(_)) => {}
                Err(err) => panic!("start failed: {err}"),
            }
        }
        for i in 0..INSTANCES {
            skip_done(client.suspend(&id(i), "maintenance").await);
            println!("ran suspended {i}");
            if terminated(i) {
                skip_done(client.terminate(&id(i), "not needed").await);
                println!("ran terminated {i}");
                continue;
            }
            skip_done(client.raise_event_once(&id(i), "go", i, "go").await);
            println!("ran raised {i}");
            skip_done(client.resume(&id(i), "maintenance over").await);
            println!("ran resumed {i}");
        }
        for i in 0..INSTANCES {
            let status = client
                .wait_for_completion(&id(i), Duration::from_secs(60))
                .await
                .expect("every instance finishes");
            if terminated(i) {
                assert_eq!(status.runtime_status, RuntimeStatus::Terminated);
            } else {
                assert_eq!(status.output_as::<u64>().expect("output"), i * 2);
            }
        }
        println!("all done");
        runtime.shutdown().await;
    });
}

#[test]
fn management_survives_kill_9() {
    let store = TestStore::new();
    // An incarnation acknowledges 2 or 3 calls per instance (suspend, then terminate, or raise
    // and resume): 56 in all.
    support::kill_repeatedly(
        "management_worker_process",
        &[("DURABLE_MGMT_STORE", store.path().as_os_str())],
        KILLS,
        (1, 50),
    );

    let conn = durable_runtime::store::sqlite::open_read_only(store.path()).expect("open");
    for i in 0..INSTANCES {
        let mut stmt = conn
            .prepare("SELECT event FROM history WHERE instance_id = ?1 ORDER BY seq")
            .expect("query");
        let events: Vec<HistoryEvent> = stmt
            .query_map([id(i)], |row| row.get::<_, String>(0))
            .expect("rows")
            .map(|json| serde_json::from_str(&json.expect("row")).expect("event"))
            .collect();
        let count = |name: &str| events.iter().filter(|e| e.event_type() == name).count();
        if terminated(i) {
            assert_eq!(count("EventRaised"), 0, "{i}: no event was raised");
            assert_eq!(
                count("TaskScheduled"),
                0,
                "{i}: nothing ran after the terminate"
            );
            assert_eq!(count("ExecutionTerminated"), 1, "{i}: {events:?}");
        } else {
            let raised: Vec<u64> = events
                .iter()
                .filter_map(|e| match e {
                    HistoryEvent::EventRaised { input, .. } => {
                        Some(Payload::decode(input).expect("number"))
                    }
                    _ => None,
                })
                .collect();
            assert_eq!(raised, vec![i], "{i}: the event is processed exactly once");
            assert_eq!(count("TaskCompleted"), 1, "{i}: {events:?}");
            assert_eq!(count("ExecutionCompleted"), 1, "{i}: {events:?}");
        }
    }
}
