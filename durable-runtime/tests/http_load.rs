//! Load over HTTP: 50 concurrent clients each start and poll 100 instances (5,000 in all)
//! through the API. None is lost, no request answers 5xx, and every instance completes with
//! its own output.
#![cfg(feature = "http")]

#[path = "support/http.rs"]
mod http_support;
mod support;

use durable_runtime::http::HttpOptions;
use http_support::Served;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

const CLIENTS: usize = 50;
const PER_CLIENT: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_clients_start_and_poll_5000_instances_none_lost_no_5xx() {
    let served = Served::start(|b| b, HttpOptions::new()).await;
    let mut clients = tokio::task::JoinSet::new();
    for c in 0..CLIENTS {
        let http = reqwest::Client::new();
        let base = served.base.clone();
        clients.spawn(async move {
            let mut server_errors = 0;
            for i in 0..PER_CLIENT {
                let n = c * PER_CLIENT + i;
                let response = http
                    .post(format!("{base}/orchestrators/noop/load-{n:05}"))
                    .json(&json!(n))
                    .send()
                    .await
                    .expect("the server answers");
                assert_eq!(response.status(), StatusCode::ACCEPTED, "start {n}");
                let location = response.headers()["location"]
                    .to_str()
                    .expect("ASCII")
                    .to_string();
                loop {
                    let polled = http.get(&location).send().await.expect("answers");
                    let status = polled.status();
                    if status.is_server_error() {
                        server_errors += 1;
                    }
                    if status == StatusCode::OK {
                        let body: Value = polled.json().await.expect("JSON");
                        assert_eq!(body["output"], json!(n + 1), "instance {n}");
                        break;
                    }
                    assert_eq!(status, StatusCode::ACCEPTED, "poll {n}");
                    // The poll's interval: what Retry-After is for.
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
            server_errors
        });
    }
    let finished = async {
        let mut errors = 0;
        while let Some(result) = clients.join_next().await {
            errors += result.expect("a client task does not panic");
        }
        errors
    };
    let errors = tokio::time::timeout(Duration::from_secs(300), finished)
        .await
        .expect("the load finishes");
    assert_eq!(errors, 0, "5xx answers");

    // Every instance is there once, completed: paged through the API.
    let mut completed = 0;
    let mut token: Option<String> = None;
    loop {
        let mut request = served
            .http
            .get(served.url("/instances?runtimeStatus=Completed&top=1000&instanceIdPrefix=load-"));
        if let Some(token) = &token {
            request = request.header("x-ms-continuation-token", token);
        }
        let response = request.send().await.expect("answers");
        token = response
            .headers()
            .get("x-ms-continuation-token")
            .map(|v| v.to_str().expect("ASCII").to_string());
        let page: Vec<Value> = response.json().await.expect("JSON");
        completed += page.len();
        if token.is_none() {
            break;
        }
    }
    assert_eq!(completed, CLIENTS * PER_CLIENT);
    served.stop().await;
}
