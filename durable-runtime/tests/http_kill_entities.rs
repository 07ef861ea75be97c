//! A signal the HTTP API answered 202 survives `kill -9` of the server process and runs once:
//! a server process serves the API on an ephemeral port, concurrent clients signal numbered
//! operations to one entity (each number once), and the process is killed with SIGKILL
//! mid-way, several times; a new server process takes the store over each time. At the end
//! every acknowledged number is in the entity's tally exactly once, and no number (even one
//! whose answer was lost with the process) is there twice.
#![cfg(feature = "http")]

mod support;

use durable_runtime::Runtime;
use durable_runtime::http::{BASE_PATH, HttpOptions};
use durable_runtime::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use support::entities::until_state;
use support::{TestStore, WAIT};

const KILLS: usize = 3;
const CLIENTS: u64 = 3;

/// How many times each number was recorded.
#[entity]
async fn tally(ctx: &mut EntityContext<BTreeMap<u64, u32>>) -> Result<(), EntityError> {
    let n: u64 = ctx.input()?;
    *ctx.state_mut().entry(n).or_default() += 1;
    Ok(())
}

#[test]
#[ignore = "run as a child process by acknowledged_entity_signals_survive_kill_9"]
fn entity_http_server_process() {
    let Ok(store) = std::env::var("DURABLE_HTTP_ENTITY_KILL_STORE") else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().expect("tokio");
    rt.block_on(async {
        let runtime = Runtime::builder()
            .sqlite(store)
            .start()
            .await
            .expect("runtime");
        let server = runtime
            .serve_http("127.0.0.1:0", HttpOptions::new())
            .await
            .expect("serves");
        println!("listening {}", server.local_addr());
        // Serves until killed.
        std::future::pending::<()>().await;
    });
}

#[test]
fn acknowledged_entity_signals_survive_kill_9() {
    let store = TestStore::new();
    let rt = tokio::runtime::Runtime::new().expect("tokio");
    let acked = Arc::new(Mutex::new(BTreeSet::new()));
    // Every number is sent once, across incarnations: a number whose answer was lost is not
    // sent again (a signal has no idempotency key), so it is in the tally at most once.
    let next = Arc::new(AtomicU64::new(1));
    let mut rng = support::Lcg::from_clock();
    for incarnation in 0..KILLS {
        let mut server = support::spawn_worker(
            "entity_http_server_process",
            &[("DURABLE_HTTP_ENTITY_KILL_STORE", store.path().as_os_str())],
        );
        let stdout = server.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let addr = loop {
            let line = lines
                .next()
                .expect("the server prints its address")
                .expect("reads");
            if let Some((_, addr)) = line.split_once("listening ") {
                break addr.trim().to_string();
            }
        };
        let base = format!("http://{addr}{BASE_PATH}");
        let kill_after = rng.next_in(10, 40);
        rt.block_on(drive(
            &base,
            acked.clone(),
            next.clone(),
            kill_after,
            &mut server,
        ));
        let _ = server.wait();
        eprintln!(
            "incarnation {incarnation}: killed after {kill_after} acknowledgements; {} so far",
            acked.lock().unwrap_or_else(|e| e.into_inner()).len()
        );
    }

    // In process now, on the same store.
    rt.block_on(async {
        let (runtime, client) = store.restart(|b| b).await;
        let id = EntityId::new("tally", "numbers");
        // A last number after everything sent: once it is in, every operation queued before
        // it ran (an entity runs its queue in order).
        let last = next.fetch_add(1, Ordering::SeqCst);
        client
            .signal_entity_by_name(&id, "record", last)
            .await
            .expect("durable");
        let tally = until_state::<BTreeMap<u64, u32>>(&client, &id, |s| {
            s.is_some_and(|s| s.contains_key(&last))
        })
        .await
        .expect("a tally");
        let acked = acked.lock().unwrap_or_else(|e| e.into_inner()).clone();
        assert!(!acked.is_empty());
        for n in &acked {
            assert_eq!(tally.get(n), Some(&1), "acknowledged {n} recorded once");
        }
        assert!(
            tally.values().all(|count| *count == 1),
            "a number recorded twice: {tally:?}"
        );
        assert!(
            tally.keys().all(|n| *n <= last),
            "only numbers that were sent"
        );
        drop(client);
        runtime.shutdown().await;
    });
}

/// One incarnation: `CLIENTS` clients signal numbers, and the server is killed once
/// `kill_after` were acknowledged in all, while the clients keep sending (requests in flight
/// then may or may not have been applied; they are not counted as acknowledged).
async fn drive(
    base: &str,
    acked: Arc<Mutex<BTreeSet<u64>>>,
    next: Arc<AtomicU64>,
    kill_after: u64,
    server: &mut std::process::Child,
) {
    let http = reqwest::Client::new();
    let count = Arc::new(AtomicU64::new(0));
    let (kill, mut killed) = tokio::sync::watch::channel(false);
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..CLIENTS {
        let (http, base, acked, next, count, kill) = (
            http.clone(),
            base.to_string(),
            acked.clone(),
            next.clone(),
            count.clone(),
            kill.clone(),
        );
        clients.spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::SeqCst);
                let Ok(response) = http
                    .post(format!("{base}/entities/tally/numbers?op=record"))
                    .json(&n)
                    .send()
                    .await
                else {
                    return; // the server is gone
                };
                if response.status() != reqwest::StatusCode::ACCEPTED {
                    // Unblock the incarnation before failing.
                    let _ = kill.send(true);
                    panic!("signal {n}: {}", response.status());
                }
                acked.lock().unwrap_or_else(|e| e.into_inner()).insert(n);
                if count.fetch_add(1, Ordering::SeqCst) + 1 == kill_after {
                    let _ = kill.send(true);
                }
            }
        });
    }
    let run = async {
        let _ = killed.wait_for(|k| *k).await;
        server.kill().expect("kill -9");
        while let Some(joined) = clients.join_next().await {
            joined.expect("a client does not panic");
        }
    };
    tokio::time::timeout(WAIT, run)
        .await
        .expect("an incarnation ends");
}
