//! Raised events survive `kill -9`: an event whose `raise_event` returned is delivered even if
//! the process dies right after. A worker process raises numbered events one by one and prints
//! each acknowledgement; the parent kills it at random points and restarts it from the next
//! number. An acknowledged event that got lost would never be sent again, and the instance,
//! which waits for every number, would never finish.

mod support;

use durable_runtime::prelude::*;
use durable_runtime::{HistoryEvent, Payload};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use support::TestStore;

const EVENTS: u64 = 300;
const KILLS: usize = 20;

#[orchestrator]
async fn collect_numbers(
    ctx: OrchestrationContext,
    expected: u64,
) -> Result<u64, OrchestrationError> {
    // A number raised again after a kill (its first raise was in flight) is counted once.
    let mut seen = BTreeSet::new();
    while (seen.len() as u64) < expected {
        seen.insert(ctx.wait_for_event::<u64>("number").await?);
    }
    Ok(seen.iter().sum())
}

#[test]
#[ignore = "run as a child process by acknowledged_events_survive_kill_9"]
fn event_raiser_process() {
    let (Ok(store), Ok(first)) = (
        std::env::var("DURABLE_EV_STORE"),
        std::env::var("DURABLE_EV_FIRST"),
    ) else {
        return;
    };
    let first: u64 = first.parse().expect("first number");
    let rt = tokio::runtime::Runtime::new().expect("tokio");
    rt.block_on(async {
        let runtime = Runtime::builder()
            .sqlite(store)
            .start()
            .await
            .expect("runtime");
        let client = runtime.client();
        match client
            .start_with_id(collect_numbers, "collector", EVENTS)
            .await
        {
            Ok(_) | Err(durable_runtime::Error::InstanceAlreadyExists(_)) => {}
            Err(err) => panic!("start failed: {err}"),
        }
        for n in first..=EVENTS {
            // Keyed by the number: one raised again after a kill (its first raise was in
            // flight and may have committed) is recorded once.
            client
                .raise_event_once("collector", "number", n, &n.to_string())
                .await
                .expect("raised");
            println!("acknowledged {n}");
        }
        let status = client
            .wait_for_completion("collector", Duration::from_secs(60))
            .await
            .expect("every acknowledged event arrives");
        assert_eq!(
            status.output_as::<u64>().expect("output"),
            EVENTS * (EVENTS + 1) / 2
        );
        println!("all done");
        runtime.shutdown().await;
    });
}

#[test]
fn acknowledged_events_survive_kill_9() {
    let store = TestStore::new();
    let mut rng = support::Lcg::from_clock();
    let mut next_first = 1;
    // Numbers that were in flight (raised, not acknowledged) when a process was killed.
    let mut in_flight = BTreeSet::new();
    let mut finished = false;
    for incarnation in 0..=KILLS {
        let first = next_first.to_string();
        let mut child = support::spawn_worker(
            "event_raiser_process",
            &[
                ("DURABLE_EV_STORE", store.path().as_os_str()),
                ("DURABLE_EV_FIRST", first.as_ref()),
            ],
        );
        let kill_after = (incarnation < KILLS).then(|| rng.next_in(3, 14));
        let stdout = child.stdout.take().expect("piped stdout");
        let mut acknowledged_here = 0;
        let mut killed = false;
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("read worker output");
            if let Some(n) = line.strip_prefix("acknowledged ") {
                next_first = n.parse::<u64>().expect("number") + 1;
                acknowledged_here += 1;
                if !killed && Some(acknowledged_here) == kill_after {
                    child.kill().expect("kill -9");
                    killed = true;
                    // Keep reading: acknowledgements printed before the kill landed are still
                    // in the pipe, and they count.
                }
            }
            if line == "all done" {
                finished = true;
            }
        }
        let exit = child.wait().expect("reap worker");
        if killed {
            // Raises are sequential, so at most this one was sent but not acknowledged.
            in_flight.insert(next_first);
            println!(
                "incarnation {incarnation}: killed after acknowledging up to {}",
                next_first - 1
            );
        } else {
            assert!(exit.success(), "worker failed: {exit}");
            break;
        }
    }
    assert!(
        finished,
        "the last incarnation must see every event delivered"
    );

    // Each number is recorded exactly once, even one that was in flight at a kill and was
    // raised again with the same idempotency key.
    let conn = durable_runtime::store::sqlite::open_read_only(store.path()).expect("open");
    let mut stmt = conn
        .prepare("SELECT event FROM history WHERE instance_id = 'collector'")
        .expect("query");
    let mut recorded: BTreeMap<u64, usize> = BTreeMap::new();
    for json in stmt
        .query_map([], |row| row.get::<_, String>(0))
        .expect("rows")
    {
        let event: HistoryEvent = serde_json::from_str(&json.expect("row")).expect("event");
        if let HistoryEvent::EventRaised { input, .. } = event {
            let n: u64 = Payload::decode(&input).expect("number");
            *recorded.entry(n).or_default() += 1;
        }
    }
    assert_eq!(recorded.len() as u64, EVENTS, "every number recorded");
    for (n, times) in &recorded {
        assert_eq!(
            *times,
            1,
            "{n} recorded {times} times (in flight at a kill: {})",
            in_flight.contains(n)
        );
    }
}
