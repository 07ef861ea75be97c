//! The Durable Functions HTTP API over real HTTP: every route's success and its documented
//! error codes, on the hot cache and on replay (no cache, and a runtime restarted between
//! requests).
#![cfg(feature = "http")]

#[path = "support/http.rs"]
mod http_support;
mod support;

use durable_runtime::http::HttpOptions;
use http_support::{Served, assert_error};
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{CACHES, cache_settings as settings};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_answers_202_with_the_management_urls_and_polling_reaches_200() {
    for cache in CACHES {
        let served = Served::start(settings(cache), HttpOptions::new()).await;
        let response = served
            .post("/orchestrators/hello/order-1", &json!("Tokyo"))
            .await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        let location = response.headers()["location"]
            .to_str()
            .expect("ASCII")
            .to_string();
        assert_eq!(response.headers()["retry-after"], "10");
        let body: Value = response.json().await.expect("JSON");
        let instance = served.url("/instances/order-1");
        assert_eq!(body["id"], "order-1");
        assert_eq!(body["statusQueryGetUri"], instance);
        assert_eq!(location, instance);
        assert_eq!(body["purgeHistoryDeleteUri"], instance);
        assert_eq!(
            body["sendEventPostUri"],
            format!("{instance}/raiseEvent/{{eventName}}")
        );
        for op in ["terminate", "rewind", "suspend", "resume"] {
            assert_eq!(
                body[format!("{op}PostUri")],
                format!("{instance}/{op}?reason={{text}}"),
                "{op}"
            );
        }
        assert_eq!(body["restartPostUri"], format!("{instance}/restart"));

        let done = served.poll_until_done(&location).await;
        assert_eq!(done["runtimeStatus"], "Completed");
        assert_eq!(done["output"], "Hello Tokyo!");
        assert_eq!(done["input"], "Tokyo");
        assert_eq!(done["name"], "hello");
        assert_eq!(done["instanceId"], "order-1");
        assert!(done["customStatus"].is_null());
        assert!(done["createdTime"].as_str().expect("a time").ends_with('Z'));
        assert!(done.get("historyEvents").is_none());

        // Without an id: a fresh one, in the payload and the Location.
        let body = served.start_instance("hello", None, &json!("Paris")).await;
        let id = body["id"].as_str().expect("an id");
        assert_eq!(id.len(), 32);
        let done = served
            .poll_until_done(&served.url(&format!("/instances/{id}")))
            .await;
        assert_eq!(done["output"], "Hello Paris!");

        // An id in use: 409, and the first instance is untouched.
        let before = served.snapshot().await;
        let again = served
            .post("/orchestrators/hello/order-1", &json!("Oslo"))
            .await;
        assert_error(again, StatusCode::CONFLICT, "InstanceAlreadyExists").await;
        assert_eq!(served.snapshot().await, before);
        served.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_history_input_and_output_as_asked() {
    for cache in CACHES {
        let served = Served::start(settings(cache), HttpOptions::new()).await;
        served
            .start_instance("hello", Some("h"), &json!("Rome"))
            .await;
        served.poll_until_done(&served.url("/instances/h")).await;

        let plain: Value = served.get_json("/instances/h?showHistory=true").await;
        let events = plain["historyEvents"].as_array().expect("history events");
        let types: Vec<&str> = events
            .iter()
            .map(|e| e["EventType"].as_str().expect("a type"))
            .collect();
        assert_eq!(
            types,
            ["ExecutionStarted", "TaskCompleted", "ExecutionCompleted"]
        );
        assert_eq!(events[0]["FunctionName"], "hello");
        assert_eq!(events[0]["Input"], "Rome");
        assert_eq!(events[1]["FunctionName"], "say_hello");
        assert!(events[1]["ScheduledTime"].is_string());
        assert!(events[1]["Timestamp"].is_string());
        assert!(
            events[1].get("Result").is_none(),
            "results need showHistoryOutput"
        );
        assert_eq!(events[2]["OrchestrationStatus"], "Completed");

        // Python's spelling of booleans, as its client sends them.
        let full: Value = served
            .get_json("/instances/h?showHistory=True&showHistoryOutput=True&showInput=False")
            .await;
        let events = full["historyEvents"].as_array().expect("history events");
        assert_eq!(events[1]["Result"], "Hello Rome!");
        assert_eq!(events[2]["Result"], "Hello Rome!");
        assert!(events[0].get("Input").is_none());
        assert!(full["input"].is_null());

        let bad = served.get("/instances/h?showHistory=maybe").await;
        assert_error(bad, StatusCode::BAD_REQUEST, "BadRequest").await;
        served.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_codes_follow_the_instance() {
    let served = Served::start(|b| b, HttpOptions::new()).await;
    let unknown = served.get("/instances/nobody").await;
    assert_error(unknown, StatusCode::NOT_FOUND, "InstanceNotFound").await;

    served
        .start_instance("approval", Some("waits"), &Value::Null)
        .await;
    let running = served.get("/instances/waits").await;
    assert_eq!(running.status(), StatusCode::ACCEPTED);
    assert_eq!(
        running.headers()["location"],
        served.url("/instances/waits").as_str()
    );
    assert!(running.headers().contains_key("retry-after"));

    served
        .start_instance("flaky", Some("fails"), &json!("status-codes"))
        .await;
    let failed = served
        .poll_until_done(&served.url("/instances/fails"))
        .await;
    assert_eq!(failed["runtimeStatus"], "Failed");
    assert!(
        failed["output"]
            .as_str()
            .expect("the failure")
            .contains("first call fails"),
        "{failed}"
    );
    let as_500 = served
        .get("/instances/fails?returnInternalServerErrorOnFailure=true")
        .await;
    assert_eq!(as_500.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body: Value = as_500.json().await.expect("the status");
    assert_eq!(body["runtimeStatus"], "Failed");
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raised_events_reach_the_instance_across_a_restart() {
    for cache in CACHES {
        let served = Served::start(settings(cache), HttpOptions::new()).await;
        let body = served
            .start_instance("approval", Some("a1"), &Value::Null)
            .await;
        let send = body["sendEventPostUri"]
            .as_str()
            .expect("a URL")
            .replace("{eventName}", "approve");
        // Restarted in the middle: the instance is rebuilt by replay.
        let store = served.stop().await;
        let (runtime, client) = store.restart(settings(cache)).await;
        let served = Served::serve(store, runtime, client, HttpOptions::new()).await;
        let send = send.replace(
            &send[..send.find("/runtime").expect("the base path")],
            &served.base[..served.base.find("/runtime").expect("the base path")],
        );
        let raised = served
            .http
            .post(&send)
            .json(&json!({"by": "ada"}))
            .send()
            .await
            .expect("answers");
        assert_eq!(raised.status(), StatusCode::ACCEPTED);
        let done = served.poll_until_done(&served.url("/instances/a1")).await;
        assert_eq!(done["output"], json!({"by": "ada"}));

        // Finished: 410, and nothing recorded.
        let before = served.snapshot().await;
        let late = served
            .post("/instances/a1/raiseEvent/approve", &json!(1))
            .await;
        assert_error(late, StatusCode::GONE, "InstanceFinished").await;
        let unknown = served
            .post("/instances/zz/raiseEvent/approve", &json!(1))
            .await;
        assert_error(unknown, StatusCode::NOT_FOUND, "InstanceNotFound").await;
        assert_eq!(served.snapshot().await, before);
        served.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_sent_twice_with_one_idempotency_key_is_recorded_once() {
    let served = Served::start(|b| b, HttpOptions::new()).await;
    served
        .start_instance("approval", Some("once"), &Value::Null)
        .await;
    served
        .client
        .suspend("once", "hold events")
        .await
        .expect("suspends");
    for _ in 0..2 {
        let raised = served
            .http
            .post(served.url("/instances/once/raiseEvent/approve"))
            .header("Idempotency-Key", "req-1")
            .json(&json!(7))
            .send()
            .await
            .expect("answers");
        assert_eq!(raised.status(), StatusCode::ACCEPTED);
    }
    served.client.resume("once", "go").await.expect("resumes");
    let done = served.poll_until_done(&served.url("/instances/once")).await;
    assert_eq!(done["output"], 7);
    let history = support::history(&served.client, "once").await;
    let events = history
        .iter()
        .filter(|r| matches!(r.event, durable_runtime::HistoryEvent::EventRaised { .. }))
        .count();
    assert_eq!(events, 1);
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn urls_follow_the_forwarded_host_and_protocol() {
    let served = Served::start(|b| b, HttpOptions::new()).await;
    let response = served
        .http
        .post(served.url("/orchestrators/noop/fw"))
        .header("X-Forwarded-Proto", "https")
        .header("X-Forwarded-Host", "durable.example.com")
        .json(&json!(1))
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let expected = "https://durable.example.com/runtime/webhooks/durabletask/instances/fw";
    assert_eq!(response.headers()["location"], expected);
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["statusQueryGetUri"], expected);
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_is_required_when_set_and_beyond_loopback() {
    let served = Served::start(|b| b, HttpOptions::new().key("s3cret")).await;
    let missing = served.post("/orchestrators/noop/k1", &json!(1)).await;
    assert_error(missing, StatusCode::UNAUTHORIZED, "Unauthorized").await;
    let wrong = served
        .http
        .post(served.url("/orchestrators/noop/k1?code=guess"))
        .json(&json!(1))
        .send()
        .await
        .expect("answers");
    assert_error(wrong, StatusCode::UNAUTHORIZED, "Unauthorized").await;
    let wrong_header = served
        .http
        .get(served.url("/instances"))
        .header("x-functions-key", "s3cre")
        .send()
        .await
        .expect("answers");
    assert_error(wrong_header, StatusCode::UNAUTHORIZED, "Unauthorized").await;
    assert!(served.snapshot().await.is_empty(), "nothing was started");

    let started = served
        .http
        .post(served.url("/orchestrators/noop/k1?code=s3cret"))
        .json(&json!(1))
        .send()
        .await
        .expect("answers");
    assert_eq!(started.status(), StatusCode::ACCEPTED);
    let body: Value = started.json().await.expect("JSON");
    // The URLs handed out carry the key, so they can be followed as they are.
    let status = body["statusQueryGetUri"].as_str().expect("a URL");
    assert!(status.ends_with("/instances/k1?code=s3cret"), "{status}");
    assert!(
        body["terminatePostUri"]
            .as_str()
            .expect("a URL")
            .ends_with("/terminate?reason={text}&code=s3cret")
    );
    let done = served.poll_until_done(status).await;
    assert_eq!(done["output"], 2);
    let by_header = served
        .http
        .get(served.url("/instances/k1"))
        .header("x-functions-key", "s3cret")
        .send()
        .await
        .expect("answers");
    assert_eq!(by_header.status(), StatusCode::OK);

    // Beyond loopback without a key: refused at startup.
    let refused = served
        .runtime
        .serve_http("0.0.0.0:0", HttpOptions::new())
        .await;
    assert!(
        matches!(
            refused,
            Err(durable_runtime::http::HttpError::KeyRequired { .. })
        ),
        "{:?}",
        refused.err()
    );
    let with_key = served
        .runtime
        .serve_http("0.0.0.0:0", HttpOptions::new().key("k"))
        .await
        .expect("serves with a key");
    with_key.shutdown().await;
    served.stop().await;
}

/// A request past its time limit answers 503; the write it made is not cancelled half-way
/// (it lands once the store takes it), and the server goes on serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_over_the_time_limit_answers_503_and_its_write_still_lands() {
    use durable_runtime::store::Write;
    use support::hooked::{BoxFut, Phase};
    let (open, opened) = tokio::sync::watch::channel(false);
    let hook: support::hooked::Hook = std::sync::Arc::new(move |phase, write: &Write| -> BoxFut {
        let mut opened = opened.clone();
        let held = phase == Phase::Before && matches!(write, Write::RaiseEvent { .. });
        Box::pin(async move {
            if held {
                let _ = opened.wait_for(|open| *open).await;
            }
            None
        })
    });
    let store = support::TestStore::new();
    let runtime = store.hooked_builder(hook).start().await.expect("starts");
    let client = runtime.client();
    let options = HttpOptions::new().request_timeout(std::time::Duration::from_millis(200));
    let served = Served::serve(store, runtime, client, options).await;
    served
        .start_instance("approval", Some("slow"), &Value::Null)
        .await;

    let response = served
        .post("/instances/slow/raiseEvent/approve", &json!("late"))
        .await;
    assert_error(response, StatusCode::SERVICE_UNAVAILABLE, "RequestTimeout").await;
    // Still serving while the write is held.
    let status = served.get("/instances/slow").await;
    assert_eq!(status.status(), StatusCode::ACCEPTED);

    let _ = open.send(true);
    let done = served.poll_until_done(&served.url("/instances/slow")).await;
    assert_eq!(done["output"], "late");
    served.stop().await;
}
