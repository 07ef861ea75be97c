//! Raised events survive `kill -9`: an event whose `raise_event` returned is delivered even if
//! the process dies right after. A worker process raises numbered events one by one and prints
//! each acknowledgement; the parent kills it at random points and restarts it from the next
//! number. An acknowledged event that got lost would never be sent again, and the instance,
//! which waits for every number, would never finish.
//!
//! Acknowledgements already in the pipe when a kill is sent still count, so an incarnation may
//! get further than the parent meant, up to the end of the workload. A kill that did not land
//! mid-run proves nothing: when an incarnation finishes its round before enough kills landed,
//! the next one starts a fresh round (another collector instance), until they have.

mod support;

use durable_runtime::prelude::*;
use durable_runtime::{HistoryEvent, Payload};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use support::TestStore;

const EVENTS: u64 = 300;
const KILLS: usize = 20;
/// Rounds are expected to be rare (a round is over 20 times what a kill waits for); the bound
/// only keeps a broken worker from looping forever.
const MAX_ROUNDS: u64 = 5;

/// SIGKILL's number (9 on every Unix), without a dependency on `libc` for one constant.
const SIGKILL: i32 = 9;

fn collector_id(round: u64) -> String {
    format!("collector-{round}")
}

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
    let (Ok(store), Ok(first), Ok(round)) = (
        std::env::var("DURABLE_EV_STORE"),
        std::env::var("DURABLE_EV_FIRST"),
        std::env::var("DURABLE_EV_ROUND"),
    ) else {
        return;
    };
    let first: u64 = first.parse().expect("first number");
    let collector = collector_id(round.parse().expect("round"));
    let rt = tokio::runtime::Runtime::new().expect("tokio");
    rt.block_on(async {
        let runtime = Runtime::builder()
            .sqlite(store)
            .start()
            .await
            .expect("runtime");
        let client = runtime.client();
        match client
            .start_with_id(collect_numbers, collector.as_str(), EVENTS)
            .await
        {
            Ok(_) | Err(durable_runtime::Error::InstanceAlreadyExists(_)) => {}
            Err(err) => panic!("start failed: {err}"),
        }
        for n in first..=EVENTS {
            // Keyed by the number: one raised again after a kill (its first raise was in
            // flight and may have committed) is recorded once.
            client
                .raise_event_once(&collector, "number", n, &n.to_string())
                .await
                .expect("raised");
            println!("acknowledged {n}");
        }
        let status = client
            .wait_for_completion(&collector, Duration::from_secs(60))
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
    use std::os::unix::process::ExitStatusExt;
    let store = TestStore::new();
    let mut rng = support::Lcg::from_clock();
    let (mut round, mut next_first) = (0, 1);
    // Numbers that were in flight (raised, not acknowledged) when a process was killed, by
    // round.
    let mut in_flight: BTreeSet<(u64, u64)> = BTreeSet::new();
    // Kills that ended an incarnation before it finished its round.
    let mut landed = 0;
    for incarnation in 0.. {
        let (first, round_env) = (next_first.to_string(), round.to_string());
        let mut child = support::spawn_worker(
            "event_raiser_process",
            &[
                ("DURABLE_EV_STORE", store.path().as_os_str()),
                ("DURABLE_EV_FIRST", first.as_ref()),
                ("DURABLE_EV_ROUND", round_env.as_ref()),
            ],
        );
        let kill_after = (landed < KILLS).then(|| rng.next_in(3, 14));
        let stdout = child.stdout.take().expect("piped stdout");
        let mut acknowledged_here = 0;
        let mut kill_sent = false;
        let mut done = false;
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("read worker output");
            if let Some(n) = line.strip_prefix("acknowledged ") {
                next_first = n.parse::<u64>().expect("number") + 1;
                acknowledged_here += 1;
                if !kill_sent && Some(acknowledged_here) == kill_after {
                    child.kill().expect("kill -9");
                    kill_sent = true;
                    // Keep reading: acknowledgements printed before the kill landed are still
                    // in the pipe, and they count.
                }
            }
            if line == "all done" {
                done = true;
            }
        }
        let exit = child.wait().expect("reap worker");
        // A kill sent after the worker exited (it finished its round first) does not land.
        if exit.signal() == Some(SIGKILL) && !done {
            landed += 1;
            // Raises are sequential, so at most this one was sent but not acknowledged.
            in_flight.insert((round, next_first));
            println!(
                "incarnation {incarnation}: killed in round {round} after acknowledging up to {}",
                next_first - 1
            );
            continue;
        }
        // A kill may still catch a worker that finished its round while it shuts down.
        let late_kill = kill_sent && exit.signal() == Some(SIGKILL);
        assert!(exit.success() || late_kill, "worker failed: {exit}");
        assert!(
            done,
            "an incarnation that was not killed must finish its round"
        );
        if landed >= KILLS {
            break;
        }
        println!(
            "incarnation {incarnation}: finished round {round} with {landed} kills landed; next round"
        );
        round += 1;
        next_first = 1;
        assert!(
            round < MAX_ROUNDS,
            "{MAX_ROUNDS} rounds ran out before {KILLS} kills landed"
        );
    }
    // The loop ends only on an incarnation that finished its round (every acknowledged
    // event delivered) after KILLS kills landed mid-run.
    println!("{landed} kills landed in {} rounds", round + 1);

    // In every round, each number is recorded exactly once, even one that was in flight at a
    // kill and was raised again with the same idempotency key.
    let conn = durable_runtime::store::sqlite::open_read_only(store.path()).expect("open");
    let mut stmt = conn
        .prepare("SELECT event FROM history WHERE instance_id = ?1")
        .expect("query");
    for round in 0..=round {
        let mut recorded: BTreeMap<u64, usize> = BTreeMap::new();
        for json in stmt
            .query_map([collector_id(round)], |row| row.get::<_, String>(0))
            .expect("rows")
        {
            let event: HistoryEvent = serde_json::from_str(&json.expect("row")).expect("event");
            if let HistoryEvent::EventRaised { input, .. } = event {
                let n: u64 = Payload::decode(&input).expect("number");
                *recorded.entry(n).or_default() += 1;
            }
        }
        assert_eq!(
            recorded.len() as u64,
            EVENTS,
            "every number recorded in round {round}"
        );
        for (n, times) in &recorded {
            assert_eq!(
                *times,
                1,
                "{n} recorded {times} times in round {round} (in flight at a kill: {})",
                in_flight.contains(&(round, *n))
            );
        }
    }
}
