//! Helpers of the HTTP API tests: a runtime serving the API on an ephemeral loopback port,
//! a `reqwest` client, and the orchestrations the tests drive.
#![allow(dead_code)]

use crate::support::{TestStore, WAIT};
use durable_runtime::http::{BASE_PATH, HttpOptions, HttpServer};
use durable_runtime::prelude::*;
use durable_runtime::{InstanceQuery, InstanceStatus};
use reqwest::StatusCode;
use serde_json::Value;

#[activity]
pub async fn say_hello(city: String) -> Result<String, ActivityError> {
    Ok(format!("Hello {city}!"))
}

/// Fails its first call for each key, then returns the key.
#[activity]
pub async fn fails_once(key: String) -> Result<String, ActivityError> {
    static CALLS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let mut calls = CALLS.lock().unwrap_or_else(|e| e.into_inner());
    if calls.contains(&key) {
        return Ok(key);
    }
    calls.push(key.clone());
    Err(ActivityError::new(format!("{key}: first call fails")))
}

#[orchestrator]
pub async fn hello(ctx: OrchestrationContext, city: String) -> Result<String, OrchestrationError> {
    Ok(ctx.call_activity(say_hello, city).await?)
}

/// Waits for the event `approve` and returns what it carried.
#[orchestrator]
pub async fn approval(ctx: OrchestrationContext) -> Result<Value, OrchestrationError> {
    let answer: Value = ctx.wait_for_event("approve").await?;
    Ok(answer)
}

/// Fails on its activity's first call (so a rewind completes it).
#[orchestrator]
pub async fn flaky(ctx: OrchestrationContext, key: String) -> Result<String, OrchestrationError> {
    Ok(ctx.call_activity(fails_once, key).await?)
}

#[orchestrator]
pub async fn noop(ctx: OrchestrationContext, n: u32) -> u32 {
    let _ = &ctx;
    n + 1
}

/// A runtime serving the API.
pub struct Served {
    pub store: TestStore,
    pub runtime: Runtime,
    pub client: Client,
    pub server: HttpServer,
    pub http: reqwest::Client,
    pub base: String,
}

impl Served {
    /// A runtime on a fresh store, with `settings`, serving the API on 127.0.0.1:0.
    pub async fn start(
        settings: impl Fn(durable_runtime::RuntimeBuilder) -> durable_runtime::RuntimeBuilder,
        options: HttpOptions,
    ) -> Served {
        let store = TestStore::new();
        let (runtime, client) = store.start_with(&settings).await;
        Self::serve(store, runtime, client, options).await
    }

    pub async fn serve(
        store: TestStore,
        runtime: Runtime,
        client: Client,
        options: HttpOptions,
    ) -> Served {
        let server = runtime
            .serve_http("127.0.0.1:0", options)
            .await
            .expect("the API serves");
        let base = format!("http://{}{BASE_PATH}", server.local_addr());
        Served {
            store,
            runtime,
            client,
            server,
            http: reqwest::Client::new(),
            base,
        }
    }

    /// Stops the server and the runtime; the store stays.
    pub async fn stop(self) -> TestStore {
        self.server.shutdown().await;
        self.runtime.shutdown().await;
        self.store
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `POST` of a JSON body to `path`.
    pub async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("the server answers")
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .send()
            .await
            .expect("the server answers")
    }

    /// GET `path`, decoding the JSON answer.
    pub async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> T {
        self.get(path).await.json().await.expect("JSON")
    }

    pub async fn delete(&self, path: &str) -> reqwest::Response {
        self.http
            .delete(self.url(path))
            .send()
            .await
            .expect("the server answers")
    }

    /// Starts `orchestrator` over HTTP, returning the 202's management payload.
    pub async fn start_instance(
        &self,
        orchestrator: &str,
        id: Option<&str>,
        input: &Value,
    ) -> Value {
        let path = match id {
            Some(id) => format!("/orchestrators/{orchestrator}/{id}"),
            None => format!("/orchestrators/{orchestrator}"),
        };
        let response = self.post(&path, input).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        response.json().await.expect("a JSON body")
    }

    /// Polls `url` (a `Location`) until it answers 200; returns the body.
    pub async fn poll_until_done(&self, url: &str) -> Value {
        poll_until_done(&self.http, url).await
    }

    /// Everything stored about every instance: statuses and histories, to compare before and
    /// after requests that must change nothing.
    pub async fn snapshot(&self) -> Vec<InstanceStatus> {
        snapshot(&self.client).await
    }
}

/// Polls `url` until it answers 200 (checking each answer is 200 or 202); returns the body.
pub async fn poll_until_done(http: &reqwest::Client, url: &str) -> Value {
    let polled = async {
        loop {
            let response = http.get(url).send().await.expect("the server answers");
            match response.status() {
                StatusCode::OK => return response.json::<Value>().await.expect("JSON"),
                StatusCode::ACCEPTED => {
                    assert!(response.headers().contains_key("location"));
                    assert!(response.headers().contains_key("retry-after"));
                }
                other => panic!("polling {url}: {other}: {:?}", response.text().await),
            }
            // A poll's interval (what Retry-After is for), not a synchronisation.
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(WAIT, polled)
        .await
        .expect("the instance finishes")
}

/// Every instance with its history, ordered by id.
pub async fn snapshot(client: &Client) -> Vec<InstanceStatus> {
    let mut all = Vec::new();
    let mut query = InstanceQuery {
        page_size: 1000,
        ..InstanceQuery::default()
    };
    loop {
        let page = client.list(&query).await.expect("lists");
        for status in page.instances {
            let full = client
                .get_status_with_history(&status.instance_id)
                .await
                .expect("reads")
                .expect("exists");
            all.push(full);
        }
        match page.continuation_token {
            Some(token) => query.continuation_token = Some(token),
            None => return all,
        }
    }
}

/// Asserts an error answer: its status, and a JSON body with `code` and `message`.
pub async fn assert_error(response: reqwest::Response, status: StatusCode, code: &str) -> String {
    let got = response.status();
    let body: Value = response.json().await.expect("an error body is JSON");
    assert_eq!(got, status, "{body}");
    assert_eq!(body["code"], code, "{body}");
    let message = body["message"].as_str().expect("a message").to_string();
    assert!(!message.is_empty());
    message
}
