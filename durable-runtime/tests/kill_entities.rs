//! R3: entity operations survive `kill -9` exactly once. A worker process sends numbered
//! signals to several counters from concurrent senders while its own runtime processes them,
//! and prints each acknowledgement; the parent kills it at random points (mid-batch: sending
//! and processing overlap) and restarts it from each sender's next number. Each counter keeps
//! the numbers it applied and how many times it applied one: an acknowledged signal lost, or
//! one applied twice, shows in the final states.

mod support;

use durable_runtime::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use support::TestStore;

const SENDERS: u64 = 3;
const COUNTERS: u64 = 4;
/// Signals each sender sends over all incarnations.
const PER_SENDER: u64 = 400;
const KILLS: usize = 6;

/// A counter that remembers what it applied: each signal is `(number, incarnation)`, unique
/// (a number in flight at a kill is sent again by the next incarnation: a second signal).
#[derive(Default, Serialize, Deserialize)]
struct Tally {
    count: u64,
    seen: BTreeSet<(u64, u64)>,
}

#[entity]
async fn tally(ctx: &mut EntityContext<Tally>) -> Result<(), EntityError> {
    let n: (u64, u64) = ctx.input()?;
    let state = ctx.state_mut();
    state.count += 1;
    state.seen.insert(n);
    Ok(())
}

/// The number sender `sender` sends as its `index`-th signal.
fn number(sender: u64, index: u64) -> u64 {
    sender * 1_000_000 + index
}

fn counter_of(n: u64) -> EntityId {
    EntityId::new("tally", format!("c{}", n % COUNTERS))
}

#[test]
#[ignore = "run as a child process by acknowledged_signals_are_applied_exactly_once_across_kill_9"]
fn entity_signal_process() {
    let (Ok(store), Ok(firsts), Ok(incarnation)) = (
        std::env::var("DURABLE_EK_STORE"),
        std::env::var("DURABLE_EK_FIRSTS"),
        std::env::var("DURABLE_EK_INCARNATION"),
    ) else {
        return;
    };
    let incarnation: u64 = incarnation.parse().expect("incarnation");
    let firsts: Vec<u64> = firsts
        .split(',')
        .map(|f| f.parse().expect("first index"))
        .collect();
    let rt = tokio::runtime::Runtime::new().expect("tokio");
    rt.block_on(async {
        let runtime = Runtime::builder()
            .sqlite(store)
            .start()
            .await
            .expect("runtime");
        let client = runtime.client();
        let senders = (0..SENDERS).map(|sender| {
            let client = client.clone();
            let first = firsts[sender as usize];
            tokio::spawn(async move {
                for index in first..PER_SENDER {
                    let n = number(sender, index);
                    client
                        .signal_entity_by_name(&counter_of(n), "add", (n, incarnation))
                        .await
                        .expect("durable");
                    println!("acknowledged {sender} {index}");
                }
            })
        });
        for sender in futures::future::join_all(senders).await {
            sender.expect("sender");
        }
        // Every signal is durable: wait until none is left queued.
        let drained = async {
            loop {
                let page = client
                    .list_entities(&durable_runtime::store::EntityQuery::default())
                    .await
                    .expect("lists");
                if page.entities.len() as u64 == COUNTERS
                    && page.entities.iter().all(|e| e.pending_operations == 0)
                {
                    return;
                }
                tokio::task::yield_now().await;
            }
        };
        tokio::time::timeout(support::WAIT, drained)
            .await
            .expect("every queued operation runs");
        println!("all done");
        runtime.shutdown().await;
    });
}

#[test]
fn acknowledged_signals_are_applied_exactly_once_across_kill_9() {
    let store = TestStore::new();
    let mut rng = support::Lcg::from_clock();
    let mut next = vec![0u64; SENDERS as usize];
    let mut acknowledged = BTreeSet::new();
    // Numbers sent but not acknowledged when a process was killed: applied or not.
    let mut in_flight = BTreeSet::new();
    let mut finished = false;
    let mut killed_count = 0;
    for incarnation in 0..=KILLS {
        let firsts = next
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let tag = incarnation.to_string();
        let mut child = support::spawn_worker(
            "entity_signal_process",
            &[
                ("DURABLE_EK_STORE", store.path().as_os_str()),
                ("DURABLE_EK_FIRSTS", firsts.as_ref()),
                ("DURABLE_EK_INCARNATION", tag.as_ref()),
            ],
        );
        let kill_after = (incarnation < KILLS).then(|| rng.next_in(20, 150));
        let stdout = child.stdout.take().expect("piped stdout");
        let mut acknowledged_here = 0;
        let mut killed = false;
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("read worker output");
            if let Some(rest) = line.strip_prefix("acknowledged ") {
                let (sender, index) = rest.split_once(' ').expect("sender and index");
                let sender: usize = sender.parse().expect("sender");
                let index: u64 = index.parse().expect("index");
                acknowledged.insert((number(sender as u64, index), incarnation as u64));
                next[sender] = index + 1;
                acknowledged_here += 1;
                if !killed && Some(acknowledged_here) == kill_after {
                    child.kill().expect("kill -9");
                    killed = true;
                    // Acknowledgements printed before the kill landed are still in the pipe.
                }
            }
            if line.ends_with("all done") {
                finished = true;
            }
        }
        let exit = child.wait().expect("reap worker");
        if killed {
            killed_count += 1;
            // Each sender is sequential: at most its next number was in flight.
            for (sender, index) in next.iter().enumerate() {
                if *index < PER_SENDER {
                    in_flight.insert((number(sender as u64, *index), incarnation as u64));
                }
            }
            println!("incarnation {incarnation}: killed at {next:?}");
        } else {
            assert!(exit.success(), "worker failed: {exit}");
            break;
        }
    }
    assert!(finished, "the last incarnation must process everything");
    assert_eq!(killed_count, KILLS, "every kill landed mid-way");

    let conn = durable_runtime::store::sqlite::open_read_only(store.path()).expect("open");
    let mut applied = BTreeSet::new();
    for counter in 0..COUNTERS {
        let state: String = conn
            .query_row(
                "SELECT state FROM entities WHERE entity_id = ?1",
                [format!("@tally@c{counter}")],
                |row| row.get(0),
            )
            .expect("each counter has a state");
        let tally: Tally = serde_json::from_str(&state).expect("state decodes");
        assert_eq!(
            tally.count,
            tally.seen.len() as u64,
            "counter c{counter} applied a signal twice"
        );
        for signal in tally.seen {
            assert_eq!(
                signal.0 % COUNTERS,
                counter,
                "{signal:?} reached the wrong counter"
            );
            applied.insert(signal);
        }
    }
    let numbers: BTreeSet<u64> = acknowledged.iter().map(|(n, _)| *n).collect();
    let missing: Vec<u64> = (0..SENDERS)
        .flat_map(|sender| (0..PER_SENDER).map(move |index| number(sender, index)))
        .filter(|n| !numbers.contains(n))
        .collect();
    assert!(missing.is_empty(), "never acknowledged: {missing:?}");
    let lost: Vec<_> = acknowledged.difference(&applied).collect();
    assert!(lost.is_empty(), "acknowledged signals lost: {lost:?}");
    // What was applied beyond the acknowledged: only signals in flight at a kill (durable, but
    // the process died before it could say so).
    let extra: BTreeSet<_> = applied.difference(&acknowledged).copied().collect();
    assert!(
        extra.is_subset(&in_flight),
        "applied but never sent: {:?}",
        extra.difference(&in_flight).collect::<Vec<_>>()
    );
    println!(
        "{} acknowledged, {} in flight at kills of which {} were applied",
        acknowledged.len(),
        in_flight.len(),
        extra.len()
    );
}
