//! What the HTTP API acknowledged survives `kill -9` of the server process: a start answered
//! 202 and an event answered 202 are never lost, and an event sent again after a kill with its
//! `Idempotency-Key` (its first answer was lost with the process) is recorded once.
//!
//! A server process serves the API on an ephemeral port; the test starts instances and raises
//! numbered events at it from concurrent clients, and kills it with SIGKILL mid-way, several
//! times; each time a new server process takes over the store.
#![cfg(feature = "http")]

#[path = "support/http.rs"]
mod http_support;
mod support;

use durable_runtime::http::{BASE_PATH, HttpOptions};
use durable_runtime::prelude::*;
use durable_runtime::{HistoryEvent, Runtime};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::sync::{Arc, Mutex};
use support::{TestStore, WAIT};

const KILLS: usize = 4;
const EVENTS: u64 = 60;

/// Waits for every number up to `expected`, counting each once.
#[orchestrator]
async fn sum_numbers(ctx: OrchestrationContext, expected: u64) -> Result<u64, OrchestrationError> {
    let mut seen = BTreeSet::new();
    while (seen.len() as u64) < expected {
        seen.insert(ctx.wait_for_event::<u64>("number").await?);
    }
    Ok(seen.iter().sum())
}

#[test]
#[ignore = "run as a child process by acknowledged_http_requests_survive_kill_9"]
fn http_server_process() {
    let Ok(store) = std::env::var("DURABLE_HTTP_KILL_STORE") else {
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

/// Acknowledged so far, across incarnations.
#[derive(Default)]
struct Acked {
    starts: BTreeSet<String>,
    events: BTreeSet<u64>,
}

#[test]
fn acknowledged_http_requests_survive_kill_9() {
    let store = TestStore::new();
    let rt = tokio::runtime::Runtime::new().expect("tokio");
    let acked = Arc::new(Mutex::new(Acked::default()));
    let mut rng = support::Lcg::from_clock();
    for incarnation in 0..=KILLS {
        let mut server = support::spawn_worker(
            "http_server_process",
            &[("DURABLE_HTTP_KILL_STORE", store.path().as_os_str())],
        );
        let stdout = server.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let addr = loop {
            let line = lines
                .next()
                .expect("the server prints its address")
                .expect("reads");
            // The test harness's "test ... " may precede it on the line.
            if let Some((_, addr)) = line.split_once("listening ") {
                break addr.trim().to_string();
            }
        };
        let base = format!("http://{addr}{BASE_PATH}");
        eprintln!("incarnation {incarnation}: server at {base}");
        let last = incarnation == KILLS;
        let kill_after = rng.next_in(5, 25);
        rt.block_on(drive(
            &base,
            incarnation,
            acked.clone(),
            (!last).then_some(kill_after),
            &mut server,
        ));
        if !last {
            let _ = server.wait();
        } else {
            server.kill().expect("stops the last server");
            let _ = server.wait();
        }
    }

    // In process now, on the same store: everything acknowledged is there, once.
    rt.block_on(async {
        let (runtime, client) = store.restart(|b| b).await;
        let starts = acked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .starts
            .clone();
        for id in &starts {
            let status = client
                .wait_for_completion(id, WAIT)
                .await
                .expect("an acknowledged start completes");
            assert_eq!(status.runtime_status, RuntimeStatus::Completed, "{id}");
            let started = support::history(&client, id)
                .await
                .iter()
                .filter(|r| matches!(r.event, HistoryEvent::ExecutionStarted(_)))
                .count();
            assert_eq!(started, 1, "{id}");
        }
        // The collector completes only once it has every number: the last incarnation sent
        // again every number not acknowledged before.
        let collector = client
            .wait_for_completion("collector", WAIT)
            .await
            .expect("completes");
        assert_eq!(
            collector.output_as::<u64>().expect("sum"),
            EVENTS * (EVENTS + 1) / 2
        );
        let mut recorded: BTreeMap<u64, usize> = BTreeMap::new();
        for record in support::history(&client, "collector").await {
            if let HistoryEvent::EventRaised { input, .. } = record.event {
                *recorded
                    .entry(input.decode::<u64>().expect("a number"))
                    .or_default() += 1;
            }
        }
        assert!(
            recorded.values().all(|count| *count == 1),
            "an event recorded twice: {recorded:?}"
        );
        assert_eq!(recorded.len() as u64, EVENTS);
        drop(client);
        runtime.shutdown().await;
    });
}

/// One incarnation: 4 clients start instances, one raises numbers to the collector; after
/// `kill_after` acknowledgements the server is killed (requests in flight then fail and are
/// not counted). The last incarnation (`None`) sends every number not acknowledged yet.
async fn drive(
    base: &str,
    incarnation: usize,
    acked: Arc<Mutex<Acked>>,
    kill_after: Option<u64>,
    server: &mut std::process::Child,
) {
    let http = reqwest::Client::new();
    let collector = http
        .post(format!("{base}/orchestrators/sum_numbers/collector"))
        .json(&EVENTS)
        .send()
        .await
        .expect("the server answers");
    assert!(
        [reqwest::StatusCode::ACCEPTED, reqwest::StatusCode::CONFLICT]
            .contains(&collector.status()),
        "{}",
        collector.status()
    );
    let count = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (kill, killed) = tokio::sync::watch::channel(false);
    let mut clients = tokio::task::JoinSet::new();
    for c in 0..4 {
        let (http, base, acked, count, kill) = (
            http.clone(),
            base.to_string(),
            acked.clone(),
            count.clone(),
            kill.clone(),
        );
        clients.spawn(async move {
            for n in 0.. {
                if kill_after.is_none() && n >= 10 {
                    return;
                }
                let id = format!("k{incarnation}-{c}-{n}");
                let Ok(response) = http
                    .post(format!("{base}/orchestrators/noop/{id}"))
                    .json(&json!(n))
                    .send()
                    .await
                else {
                    return; // the server is gone
                };
                if response.status() != reqwest::StatusCode::ACCEPTED {
                    // Unblock the incarnation before failing.
                    let _ = kill.send(true);
                    panic!(
                        "start {id}: {} {:?}",
                        response.status(),
                        response.text().await
                    );
                }
                acked
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .starts
                    .insert(id);
                let done = count.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                if Some(done) == kill_after {
                    let _ = kill.send(true);
                }
            }
        });
    }
    {
        let (http, base, acked) = (http.clone(), base.to_string(), acked.clone());
        clients.spawn(async move {
            for n in 1..=EVENTS {
                if acked
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .events
                    .contains(&n)
                {
                    continue;
                }
                let Ok(response) = http
                    .post(format!("{base}/instances/collector/raiseEvent/number"))
                    .header("Idempotency-Key", n.to_string())
                    .json(&n)
                    .send()
                    .await
                else {
                    return;
                };
                assert_eq!(response.status(), reqwest::StatusCode::ACCEPTED);
                acked
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .events
                    .insert(n);
                if kill_after.is_some() && n % 7 == 0 {
                    // Leave numbers for later incarnations.
                    tokio::task::yield_now().await;
                }
            }
        });
    }
    let run = async {
        if kill_after.is_some() {
            let mut killed = killed;
            let _ = killed.wait_for(|k| *k).await;
            server.kill().expect("kill -9");
            println!("incarnation {incarnation}: killed");
        }
        while let Some(joined) = clients.join_next().await {
            joined.expect("a client does not panic");
        }
    };
    tokio::time::timeout(WAIT, run)
        .await
        .expect("an incarnation ends");
    let acked = acked.lock().unwrap_or_else(|e| e.into_inner());
    println!(
        "incarnation {incarnation}: {} starts and {} events acknowledged so far",
        acked.starts.len(),
        acked.events.len()
    );
}
