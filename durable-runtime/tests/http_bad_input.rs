//! R4, bad input over HTTP: malformed JSON, a non-JSON content type, oversize bodies, unknown
//! orchestrators and instances, invalid instance ids (empty, too long, control characters,
//! `/`, percent-encoded tricks), an event to a finished instance, a missing or wrong key.
//! Each gets its documented status code and a JSON error body; the server keeps serving; and
//! nothing already stored changes.
#![cfg(feature = "http")]

#[path = "support/http.rs"]
mod http_support;
mod support;

use durable_runtime::http::HttpOptions;
use http_support::{Served, assert_error};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A store with a finished and a waiting instance, served with `options`.
async fn seeded(options: HttpOptions) -> Served {
    let served = Served::start(|b| b, options).await;
    served
        .client
        .start_by_name("hello", Some("done".into()), "Lima")
        .await
        .expect("starts");
    served
        .client
        .start_by_name("approval", Some("waiting".into()), ())
        .await
        .expect("starts");
    served
        .client
        .wait_for_completion("done", support::WAIT)
        .await
        .expect("completes");
    support::until_status(
        &served.client,
        "waiting",
        durable_runtime::RuntimeStatus::Running,
    )
    .await;
    served
}

/// A request with a raw body and content type.
async fn post_raw(
    served: &Served,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> reqwest::Response {
    served
        .http
        .post(served.url(path))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("the server answers")
}

/// The server still serves: a start and its completion.
async fn still_serving(served: &Served, id: &str) {
    served.start_instance("noop", Some(id), &json!(1)).await;
    let done = served
        .poll_until_done(&served.url(&format!("/instances/{id}")))
        .await;
    assert_eq!(done["output"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_are_refused_with_their_status_and_change_nothing() {
    let served = seeded(HttpOptions::new().body_limit(1024)).await;
    let before = served.snapshot().await;

    let malformed = post_raw(
        &served,
        "/orchestrators/hello/x1",
        "application/json",
        b"{not json".to_vec(),
    )
    .await;
    assert_error(malformed, StatusCode::BAD_REQUEST, "BadRequest").await;
    let trailing = post_raw(
        &served,
        "/orchestrators/hello/x1",
        "application/json",
        b"\"a\" \"b\"".to_vec(),
    )
    .await;
    assert_error(trailing, StatusCode::BAD_REQUEST, "BadRequest").await;
    let not_utf8 = post_raw(
        &served,
        "/orchestrators/hello/x1",
        "application/json",
        vec![0xff, 0xfe],
    )
    .await;
    assert_error(not_utf8, StatusCode::BAD_REQUEST, "BadRequest").await;
    let text = post_raw(
        &served,
        "/orchestrators/hello/x1",
        "text/plain",
        b"\"Tokyo\"".to_vec(),
    )
    .await;
    assert_error(
        text,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "UnsupportedMediaType",
    )
    .await;
    let form = post_raw(
        &served,
        "/orchestrators/hello/x1",
        "application/x-www-form-urlencoded",
        b"a=b".to_vec(),
    )
    .await;
    assert_error(
        form,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "UnsupportedMediaType",
    )
    .await;

    let big = serde_json::to_vec(&"x".repeat(2048)).expect("encodes");
    let oversize = post_raw(
        &served,
        "/orchestrators/hello/x1",
        "application/json",
        big.clone(),
    )
    .await;
    assert_error(oversize, StatusCode::PAYLOAD_TOO_LARGE, "PayloadTooLarge").await;
    let oversize_event = post_raw(
        &served,
        "/instances/waiting/raiseEvent/approve",
        "application/json",
        big,
    )
    .await;
    assert_error(
        oversize_event,
        StatusCode::PAYLOAD_TOO_LARGE,
        "PayloadTooLarge",
    )
    .await;
    let malformed_event = post_raw(
        &served,
        "/instances/waiting/raiseEvent/approve",
        "application/json",
        b"[1,".to_vec(),
    )
    .await;
    assert_error(malformed_event, StatusCode::BAD_REQUEST, "BadRequest").await;
    let text_event = post_raw(
        &served,
        "/instances/waiting/raiseEvent/approve",
        "text/plain",
        b"1".to_vec(),
    )
    .await;
    assert_error(
        text_event,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "UnsupportedMediaType",
    )
    .await;

    assert_eq!(
        served.snapshot().await,
        before,
        "a refused request changed the store"
    );
    still_serving(&served, "after-bodies").await;
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_body_limit_is_4_mib() {
    let served = seeded(HttpOptions::new()).await;
    let before = served.snapshot().await;
    let over = serde_json::to_vec(&"x".repeat(4 * 1024 * 1024)).expect("encodes");
    let response = post_raw(
        &served,
        "/orchestrators/hello/big",
        "application/json",
        over,
    )
    .await;
    assert_error(response, StatusCode::PAYLOAD_TOO_LARGE, "PayloadTooLarge").await;
    assert_eq!(served.snapshot().await, before);
    // Just under it is taken.
    let under = serde_json::to_vec(&"x".repeat(4 * 1024 * 1024 - 16)).expect("encodes");
    let response = post_raw(
        &served,
        "/orchestrators/noop/fits",
        "application/json",
        b"3".to_vec(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let response = post_raw(
        &served,
        "/instances/waiting/raiseEvent/big",
        "application/json",
        under,
    )
    .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_names_and_instances_are_refused() {
    let served = seeded(HttpOptions::new()).await;
    let before = served.snapshot().await;
    let unknown = served
        .post("/orchestrators/no_such_orchestrator", &json!(1))
        .await;
    let message = assert_error(unknown, StatusCode::BAD_REQUEST, "UnknownOrchestrator").await;
    assert!(message.contains("no_such_orchestrator"), "{message}");
    assert_error(
        served.get("/instances/nobody").await,
        StatusCode::NOT_FOUND,
        "InstanceNotFound",
    )
    .await;
    for op in [
        "terminate",
        "suspend",
        "resume",
        "rewind",
        "restart",
        "raiseEvent/e",
    ] {
        let response = served
            .post(&format!("/instances/nobody/{op}"), &json!(1))
            .await;
        assert_error(response, StatusCode::NOT_FOUND, "InstanceNotFound").await;
    }
    assert_error(
        served.delete("/instances/nobody").await,
        StatusCode::NOT_FOUND,
        "InstanceNotFound",
    )
    .await;
    // An event to a finished instance: 410 Gone.
    let late = served
        .post("/instances/done/raiseEvent/approve", &json!(1))
        .await;
    assert_error(late, StatusCode::GONE, "InstanceFinished").await;
    // Routes and methods the API does not have.
    assert_error(
        served.get("/nothing/here").await,
        StatusCode::NOT_FOUND,
        "NotFound",
    )
    .await;
    let wrong_method = served.get("/orchestrators/hello").await;
    assert_error(
        wrong_method,
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
    )
    .await;
    let bad_event = served
        .post("/instances/waiting/raiseEvent/%0A", &json!(1))
        .await;
    assert_error(bad_event, StatusCode::BAD_REQUEST, "BadRequest").await;

    assert_eq!(served.snapshot().await, before);
    still_serving(&served, "after-unknown").await;
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_instance_ids_are_400_on_every_route() {
    let served = seeded(HttpOptions::new()).await;
    let before = served.snapshot().await;
    let long = "x".repeat(300);
    let invalid = [
        "%0A",           // a newline
        "a%00b",         // NUL
        "tab%09",        // a tab
        "a%2Fb",         // `/`, percent-encoded
        "..%2F..%2Fetc", // path traversal
        "a%5Cb",         // `\`
        "a%3Fb",         // `?`
        "a%23b",         // `#`
        "a%7F",          // DEL
        long.as_str(),   // over 256 bytes
    ];
    for id in invalid {
        let start = served
            .post(&format!("/orchestrators/hello/{id}"), &json!("x"))
            .await;
        assert_error(start, StatusCode::BAD_REQUEST, "InvalidInstanceId").await;
        let status = served.get(&format!("/instances/{id}")).await;
        assert_error(status, StatusCode::BAD_REQUEST, "InvalidInstanceId").await;
        let terminate = served
            .post(&format!("/instances/{id}/terminate"), &Value::Null)
            .await;
        assert_error(terminate, StatusCode::BAD_REQUEST, "InvalidInstanceId").await;
        let event = served
            .post(&format!("/instances/{id}/raiseEvent/e"), &json!(1))
            .await;
        assert_error(event, StatusCode::BAD_REQUEST, "InvalidInstanceId").await;
        let purge = served.delete(&format!("/instances/{id}")).await;
        assert_error(purge, StatusCode::BAD_REQUEST, "InvalidInstanceId").await;
    }
    // Empty: `/orchestrators/hello/` names an empty id.
    let empty = served.post("/orchestrators/hello/", &json!("x")).await;
    assert_error(empty, StatusCode::BAD_REQUEST, "InvalidInstanceId").await;
    // Not UTF-8 once decoded.
    let not_utf8 = served.get("/instances/%FF%FE").await;
    assert_error(not_utf8, StatusCode::BAD_REQUEST, "BadRequest").await;
    // Decoded once, not twice: `%252F` is the id `%2F`, which does not exist.
    let double = served.get("/instances/%252F").await;
    assert_error(double, StatusCode::NOT_FOUND, "InstanceNotFound").await;

    assert_eq!(served.snapshot().await, before);
    still_serving(&served, "after-ids").await;
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_wrong_key_is_401_and_changes_nothing() {
    let served = seeded(HttpOptions::new().key("k3y")).await;
    let before = served.snapshot().await;
    let requests = [
        served
            .http
            .post(served.url("/orchestrators/hello/k"))
            .json(&json!("x")),
        served
            .http
            .post(served.url("/instances/waiting/raiseEvent/approve?code=nope"))
            .json(&json!(1)),
        served
            .http
            .post(served.url("/instances/waiting/terminate"))
            .header("x-functions-key", "K3Y"),
        served.http.delete(served.url("/instances/done?code=")),
        served.http.delete(served.url("/instances?code=k3")),
        served.http.get(served.url("/instances/done")),
    ];
    for request in requests {
        let response = request.send().await.expect("answers");
        assert_error(response, StatusCode::UNAUTHORIZED, "Unauthorized").await;
    }
    assert_eq!(served.snapshot().await, before);
    let ok = served
        .http
        .get(served.url("/instances/done?code=k3y"))
        .send()
        .await
        .expect("answers");
    assert_eq!(ok.status(), StatusCode::OK);
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_that_lost_its_filter_or_its_id_purges_nothing() {
    let served = seeded(HttpOptions::new()).await;
    let before = served.snapshot().await;
    // No `createdTimeFrom`: the original's 400, not a purge of every finished instance. An
    // empty id (`instances/{id}` with `{id}` empty) and the id `.` (which clients normalise
    // away) both end up at `instances/`.
    for path in [
        "/instances",
        "/instances/",
        "/instances/.",
        "/instances?runtimeStatus=Completed",
    ] {
        let purge = served.delete(path).await;
        assert_error(purge, StatusCode::BAD_REQUEST, "BadRequest").await;
    }
    assert_eq!(served.snapshot().await, before, "nothing was purged");
    // `.` and `..` cannot be instance ids, so no URL the API hands out contains one.
    for id in [".", ".."] {
        let refused = served
            .client
            .start_by_name("hello", Some(id.into()), "x")
            .await;
        assert!(
            matches!(
                refused,
                Err(durable_runtime::Error::InvalidInstanceId { .. })
            ),
            "{id:?}: {refused:?}"
        );
    }
    still_serving(&served, "after-purges").await;
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_ascii_time_or_idempotency_key_is_a_400() {
    let served = seeded(HttpOptions::new()).await;
    let before = served.snapshot().await;
    for path in [
        "/instances?createdTimeFrom=2025-11-0%C3%A9",
        "/instances?createdTimeTo=2025-11-27T23:14:0%C3%A9",
    ] {
        let list = served.get(path).await;
        assert_error(list, StatusCode::BAD_REQUEST, "BadRequest").await;
    }
    let purge = served
        .delete("/instances?createdTimeFrom=2025-11-27T23:14:00%2B0%C3%A90")
        .await;
    assert_error(purge, StatusCode::BAD_REQUEST, "BadRequest").await;
    // A key that cannot be read is refused rather than ignored (ignoring it would record a
    // retried event twice).
    let keyed = served
        .http
        .post(served.url("/instances/waiting/raiseEvent/approve"))
        .header("content-type", "application/json")
        .header(
            "idempotency-key",
            reqwest::header::HeaderValue::from_bytes("clé".as_bytes()).expect("a header value"),
        )
        .body("true")
        .send()
        .await
        .expect("answers");
    assert_error(keyed, StatusCode::BAD_REQUEST, "BadRequest").await;
    assert_eq!(served.snapshot().await, before, "nothing was recorded");
    still_serving(&served, "after-non-ascii").await;
    served.stop().await;
}
