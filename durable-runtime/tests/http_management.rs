//! The Durable Functions HTTP API's management routes over real HTTP: terminate, suspend,
//! resume, rewind, restart and purge, each with its documented error codes, on the hot cache
//! and on replay (no cache).
#![cfg(feature = "http")]

#[path = "support/http.rs"]
mod http_support;
mod support;

use durable_runtime::RuntimeStatus;
use durable_runtime::http::HttpOptions;
use http_support::{Served, assert_error};
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{CACHES, cache_settings as settings};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminate_suspend_and_resume_answer_as_documented() {
    for cache in CACHES {
        let served = Served::start(settings(cache), HttpOptions::new()).await;
        served
            .start_instance("approval", Some("m"), &Value::Null)
            .await;

        let suspended = served
            .post("/instances/m/suspend?reason=lunch", &Value::Null)
            .await;
        assert_eq!(suspended.status(), StatusCode::ACCEPTED);
        support::until_status(&served.client, "m", RuntimeStatus::Suspended).await;
        let body: Value = served.get_json("/instances/m").await;
        assert_eq!(body["runtimeStatus"], "Suspended");
        let twice = served.post("/instances/m/suspend", &Value::Null).await;
        assert_error(twice, StatusCode::CONFLICT, "NotApplicable").await;

        let resumed = served
            .post("/instances/m/resume?reason=back", &Value::Null)
            .await;
        assert_eq!(resumed.status(), StatusCode::ACCEPTED);
        let again = served.post("/instances/m/resume", &Value::Null).await;
        assert_error(again, StatusCode::CONFLICT, "NotApplicable").await;
        // Suspend and resume reach the history through the instance's steps: wait for them
        // before the terminate, which ends the instance and would consume them unrecorded.
        support::until_recorded(&served.client, "m", "the resume", 1, |e| {
            matches!(e, durable_runtime::HistoryEvent::ExecutionResumed { .. })
        })
        .await;

        let terminated = served
            .post(
                "/instances/m/terminate?reason=no%20longer%20needed",
                &Value::Null,
            )
            .await;
        assert_eq!(terminated.status(), StatusCode::ACCEPTED);
        let done = served.poll_until_done(&served.url("/instances/m")).await;
        assert_eq!(done["runtimeStatus"], "Terminated");
        assert_eq!(done["output"], "no longer needed");
        let history: Value = served.get_json("/instances/m?showHistory=true").await;
        let types: Vec<&str> = history["historyEvents"]
            .as_array()
            .expect("events")
            .iter()
            .filter_map(|e| e["EventType"].as_str())
            .collect();
        assert!(types.contains(&"ExecutionSuspended"), "{types:?}");
        assert!(types.contains(&"ExecutionResumed"), "{types:?}");
        assert_eq!(types.last(), Some(&"ExecutionTerminated"));

        let before = served.snapshot().await;
        for op in ["terminate", "suspend", "resume", "rewind"] {
            let late = served
                .post(&format!("/instances/m/{op}"), &Value::Null)
                .await;
            assert_error(late, StatusCode::GONE, "InstanceFinished").await;
            let unknown = served
                .post(&format!("/instances/zz/{op}"), &Value::Null)
                .await;
            assert_error(unknown, StatusCode::NOT_FOUND, "InstanceNotFound").await;
        }
        assert_eq!(served.snapshot().await, before);
        served.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewind_and_restart_run_the_instance_again() {
    for cache in CACHES {
        let served = Served::start(settings(cache), HttpOptions::new()).await;
        let key = format!("rewind-{cache:?}");
        served.start_instance("flaky", Some("r"), &json!(key)).await;
        let failed = served.poll_until_done(&served.url("/instances/r")).await;
        assert_eq!(failed["runtimeStatus"], "Failed");
        let rewound = served
            .post("/instances/r/rewind?reason=fixed", &Value::Null)
            .await;
        assert_eq!(rewound.status(), StatusCode::ACCEPTED);
        let done = served.poll_until_done(&served.url("/instances/r")).await;
        assert_eq!(done["runtimeStatus"], "Completed");
        assert_eq!(done["output"], json!(key));
        // Completed: not rewindable (410).
        let again = served.post("/instances/r/rewind", &Value::Null).await;
        assert_error(again, StatusCode::GONE, "InstanceFinished").await;

        // Restart under a new id (the default): a new instance, the old one as it was.
        served.start_instance("noop", Some("n"), &json!(41)).await;
        served.poll_until_done(&served.url("/instances/n")).await;
        let before = served
            .client
            .get_status_with_history("n")
            .await
            .expect("reads");
        let restarted = served.post("/instances/n/restart", &Value::Null).await;
        assert_eq!(restarted.status(), StatusCode::ACCEPTED);
        let location = restarted.headers()["location"]
            .to_str()
            .expect("ASCII")
            .to_string();
        let body: Value = restarted.json().await.expect("JSON");
        let new_id = body["id"].as_str().expect("an id").to_string();
        assert_ne!(new_id, "n");
        assert_eq!(location, served.url(&format!("/instances/{new_id}")));
        let done = served.poll_until_done(&location).await;
        assert_eq!(done["output"], 42);
        assert_eq!(
            served
                .client
                .get_status_with_history("n")
                .await
                .expect("reads"),
            before
        );

        // Restart under its own id.
        let same = served
            .post(
                "/instances/n/restart?restartWithNewInstanceId=false",
                &Value::Null,
            )
            .await;
        assert_eq!(same.status(), StatusCode::ACCEPTED);
        let body: Value = same.json().await.expect("JSON");
        assert_eq!(body["id"], "n");
        let done = served.poll_until_done(&served.url("/instances/n")).await;
        assert_eq!(done["output"], 42);

        // Running: not restartable under its id (409); unknown: 404.
        served
            .start_instance("approval", Some("busy"), &Value::Null)
            .await;
        let busy = served
            .post(
                "/instances/busy/restart?restartWithNewInstanceId=false",
                &Value::Null,
            )
            .await;
        assert_error(busy, StatusCode::CONFLICT, "NotApplicable").await;
        let unknown = served.post("/instances/zz/restart", &Value::Null).await;
        assert_error(unknown, StatusCode::NOT_FOUND, "InstanceNotFound").await;
        served.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_filters_and_pages_through_every_instance_once() {
    let served = Served::start(|b| b, HttpOptions::new()).await;
    for i in 0..7 {
        served
            .start_instance("noop", Some(&format!("batch-{i}")), &json!(i))
            .await;
    }
    served
        .start_instance("approval", Some("other"), &Value::Null)
        .await;
    for i in 0..7 {
        served
            .poll_until_done(&served.url(&format!("/instances/batch-{i}")))
            .await;
    }

    // Pages of 3 through the continuation header: every instance once.
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut request = served
            .http
            .get(served.url("/instances?top=3&showInput=false"));
        if let Some(token) = &token {
            request = request.header("x-ms-continuation-token", token);
        }
        let response = request.send().await.expect("answers");
        assert_eq!(response.status(), StatusCode::OK);
        token = response
            .headers()
            .get("x-ms-continuation-token")
            .map(|v| v.to_str().expect("ASCII").to_string());
        let page: Vec<Value> = response.json().await.expect("a JSON array");
        assert!(page.len() <= 3);
        for status in &page {
            assert!(
                status["input"].is_null(),
                "showInput=false leaves inputs out"
            );
            seen.push(status["instanceId"].as_str().expect("an id").to_string());
        }
        if token.is_none() {
            break;
        }
    }
    let mut expected: Vec<String> = (0..7).map(|i| format!("batch-{i}")).collect();
    expected.push("other".into());
    assert_eq!(seen, expected);

    let running: Vec<Value> = served
        .get_json("/instances?runtimeStatus=Running,Pending")
        .await;
    assert_eq!(running.len(), 1);
    assert_eq!(running[0]["instanceId"], "other");

    let prefixed: Vec<Value> = served
        .get_json("/instances/?instanceIdPrefix=batch-&runtimeStatus=Completed")
        .await;
    assert_eq!(prefixed.len(), 7);
    // Inputs are shown unless asked not to, as in the original.
    assert_eq!(prefixed[3]["input"], 3);

    let future: Vec<Value> = served
        .get_json("/instances?createdTimeFrom=2999-01-01T00:00:00Z")
        .await;
    assert!(future.is_empty());
    let past: Vec<Value> = served.get_json("/instances?createdTimeFrom=2000-01-01T00:00:00Z&createdTimeTo=2999-01-01T00:00:00.000%2B00:00").await;
    assert_eq!(past.len(), 8);

    for bad in [
        "/instances?runtimeStatus=Done",
        "/instances?createdTimeFrom=yesterday",
        "/instances?top=-1",
    ] {
        assert_error(served.get(bad).await, StatusCode::BAD_REQUEST, "BadRequest").await;
    }
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_deletes_finished_instances_one_or_by_filter() {
    let served = Served::start(|b| b, HttpOptions::new()).await;
    for i in 0..4 {
        served
            .start_instance("noop", Some(&format!("p{i}")), &json!(i))
            .await;
    }
    served
        .start_instance("approval", Some("live"), &Value::Null)
        .await;
    for i in 0..4 {
        served
            .poll_until_done(&served.url(&format!("/instances/p{i}")))
            .await;
    }

    let purged = served.delete("/instances/p0").await;
    assert_eq!(purged.status(), StatusCode::OK);
    let body: Value = purged.json().await.expect("JSON");
    assert_eq!(body["instancesDeleted"], 1);
    assert_error(
        served.get("/instances/p0").await,
        StatusCode::NOT_FOUND,
        "InstanceNotFound",
    )
    .await;
    assert_error(
        served.delete("/instances/p0").await,
        StatusCode::NOT_FOUND,
        "InstanceNotFound",
    )
    .await;

    // Running: refused, kept.
    let before = served
        .client
        .get_status_with_history("live")
        .await
        .expect("reads");
    assert_error(
        served.delete("/instances/live").await,
        StatusCode::CONFLICT,
        "NotApplicable",
    )
    .await;
    assert_eq!(
        served
            .client
            .get_status_with_history("live")
            .await
            .expect("reads"),
        before
    );

    let by_filter = served
        .delete("/instances?createdTimeFrom=2000-01-01T00:00:00Z&runtimeStatus=Completed")
        .await;
    assert_eq!(by_filter.status(), StatusCode::OK);
    let body: Value = by_filter.json().await.expect("JSON");
    assert_eq!(body["instancesDeleted"], 3);
    let left: Vec<Value> = served.get_json("/instances").await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["instanceId"], "live");
    // Nothing more matches: 404, as in the original.
    let none = served
        .delete("/instances?createdTimeFrom=2000-01-01T00:00:00Z&runtimeStatus=Completed")
        .await;
    assert_error(none, StatusCode::NOT_FOUND, "NotFound").await;
    served.stop().await;
}
