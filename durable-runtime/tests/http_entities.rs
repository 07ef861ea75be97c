//! The entity routes over real HTTP: signal (`POST /entities/{name}/{key}?op=`), state
//! (`GET /entities/{name}/{key}`), list (`GET /entities[/{name}]`). Signals are applied once
//! each, on both engine paths and across a restart; listings page through every entity once;
//! bad input gets its status code and a JSON error body, and changes nothing in the store.
#![cfg(feature = "http")]

#[path = "support/http.rs"]
mod http_support;
mod support;

use durable_runtime::http::{HttpOptions, parse_time};
use durable_runtime::prelude::*;
use durable_runtime::store::EntityQuery;
use http_support::{Served, assert_error};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use support::entities::until_state;
use support::{CACHES, WAIT, cache_settings};

/// A counter: `add` adds its input, `delete` deletes the state.
#[entity]
async fn counter(ctx: &mut EntityContext<i64>) -> Result<(), EntityError> {
    match ctx.operation_name() {
        "add" => {
            let amount: i64 = ctx.input()?;
            *ctx.state_mut() += amount;
        }
        "delete" => ctx.delete_state(),
        other => return Err(EntityError::new(format!("no operation '{other}'"))),
    }
    Ok(())
}

/// A name that starts with another entity's name: listing `counter` must not show it.
#[entity(name = "counterpart")]
async fn counterpart(ctx: &mut EntityContext<i64>) {
    *ctx.state_mut() += 1;
}

/// Records its inputs in order, whatever the operation's name (even none).
#[entity(name = "sequence")]
async fn sequence_entity(ctx: &mut EntityContext<Vec<Value>>) {
    if let Ok(value) = ctx.input::<Value>() {
        ctx.state_mut().push(value);
    }
}

/// Polls `GET /entities/{path}` until it answers 200 with `expected`.
async fn until_http_state(served: &Served, path: &str, expected: &Value) {
    let polled = async {
        loop {
            let response = served.get(&format!("/entities/{path}")).await;
            match response.status() {
                StatusCode::OK => {
                    let body: Value = response.json().await.expect("JSON");
                    if &body == expected {
                        return;
                    }
                }
                StatusCode::NOT_FOUND => {
                    assert_error(response, StatusCode::NOT_FOUND, "EntityNotFound").await;
                }
                other => panic!("GET /entities/{path}: {other}"),
            }
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(WAIT, polled)
        .await
        .unwrap_or_else(|_| panic!("entity {path} did not reach {expected} within {WAIT:?}"));
}

/// Every entity of a listing at `path`, following `x-ms-continuation-token` with `top`;
/// the pages' sizes are checked against `top`.
async fn list_all_pages(served: &Served, path: &str, top: usize) -> Vec<Value> {
    let mut all = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut request = served
            .http
            .get(served.url(path))
            .query(&[("top", top.to_string()), ("fetchState", "true".into())]);
        if let Some(token) = &token {
            request = request.header("x-ms-continuation-token", token);
        }
        let response = request.send().await.expect("the server answers");
        assert_eq!(response.status(), StatusCode::OK);
        token = response
            .headers()
            .get("x-ms-continuation-token")
            .map(|value| value.to_str().expect("a text header").to_string());
        let page: Vec<Value> = response.json().await.expect("a JSON array");
        assert!(page.len() <= top, "a page holds at most top={top}");
        let end = token.is_none();
        all.extend(page);
        if end {
            return all;
        }
    }
}

/// `(name, key)` of a listed entity.
fn id_of(entity: &Value) -> (String, String) {
    (
        entity["entityId"]["name"]
            .as_str()
            .expect("a name")
            .to_string(),
        entity["entityId"]["key"]
            .as_str()
            .expect("a key")
            .to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signals_over_http_are_applied_once_each_and_read_back_on_both_paths() {
    for cache in CACHES {
        let served = Served::start(cache_settings(cache), HttpOptions::new()).await;
        let missing = served.get("/entities/counter/a").await;
        assert_error(missing, StatusCode::NOT_FOUND, "EntityNotFound").await;
        for amount in 1..=20 {
            let response = served
                .post("/entities/counter/a?op=add", &json!(amount))
                .await;
            assert_eq!(response.status(), StatusCode::ACCEPTED, "cache {cache:?}");
            assert!(response.bytes().await.expect("a body").is_empty());
        }
        // 1 + 2 + ... + 20: each signal applied exactly once.
        until_http_state(&served, "counter/a", &json!(210)).await;
        let state = served
            .client
            .read_entity_state::<i64>(&EntityId::new("counter", "a"))
            .await
            .expect("reads");
        assert_eq!(state, Some(210), "cache {cache:?}");

        // Deleted: it no longer exists, for the state route and for listings.
        let response = served
            .post("/entities/counter/a?op=delete", &json!(null))
            .await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        until_state::<i64>(&served.client, &EntityId::new("counter", "a"), |s| {
            s.is_none()
        })
        .await;
        let gone = served.get("/entities/counter/a").await;
        assert_error(gone, StatusCode::NOT_FOUND, "EntityNotFound").await;
        let listed: Vec<Value> = served.get_json("/entities/counter").await;
        assert!(
            listed.is_empty(),
            "a deleted entity is not listed: {listed:?}"
        );
        served.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_signals_survive_a_restart_and_run_once() {
    for cache in CACHES {
        let served = Served::start(cache_settings(cache), HttpOptions::new()).await;
        for _ in 0..30 {
            let response = served
                .post("/entities/counter/restart?op=add", &json!(1))
                .await;
            assert_eq!(response.status(), StatusCode::ACCEPTED);
        }
        // Stopped right after the 202s: whatever had not run yet runs after the restart,
        // and whatever had run is not run again.
        let store = served.stop().await;
        let (runtime, client) = store.restart(cache_settings(cache)).await;
        let served = Served::serve(store, runtime, client, HttpOptions::new()).await;
        until_http_state(&served, "counter/restart", &json!(30)).await;
        let log = served
            .client
            .entity_log(&EntityId::new("counter", "restart"))
            .await
            .expect("reads the log");
        assert_eq!(log.len(), 30, "each signal ran once (cache {cache:?})");
        served.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn op_is_optional_and_keys_may_hold_any_printable_character() {
    let served = Served::start(|b| b, HttpOptions::new()).await;
    // No `op`, as the original allows: the operation has the empty name.
    let response = served.post("/entities/sequence/s1", &json!({"n": 1})).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    // No body: the input is null. No content type: taken as JSON.
    let response = served
        .http
        .post(served.url("/entities/sequence/s1?op=push"))
        .send()
        .await
        .expect("the server answers");
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let response = served
        .http
        .post(served.url("/entities/sequence/s1?OP=push"))
        .body("\"third\"")
        .send()
        .await
        .expect("the server answers");
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    until_http_state(&served, "sequence/s1", &json!([{"n": 1}, null, "third"])).await;

    // A key with `/`, `@`, spaces and non-ASCII, percent-encoded in the path.
    let key = "eu/west one@é";
    let path = "counter/eu%2Fwest%20one%40%C3%A9";
    let response = served
        .post(&format!("/entities/{path}?op=add"), &json!(7))
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    until_http_state(&served, path, &json!(7)).await;
    let listed: Vec<Value> = served.get_json("/entities/counter?fetchState=True").await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(id_of(&listed[0]), ("counter".to_string(), key.to_string()));
    assert_eq!(listed[0]["state"], 7);
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_returns_every_entity_once_and_filters_by_name_and_time() {
    let served = Served::start(|b| b, HttpOptions::new()).await;
    let before_ms = parse_time("2000-01-01T00:00:00Z").expect("a time");
    for key in 0..23 {
        served
            .client
            .signal_entity_by_name(&EntityId::new("counter", format!("k{key:02}")), "add", key)
            .await
            .expect("durable");
    }
    for key in 0..4 {
        served
            .client
            .signal_entity_by_name(&EntityId::new("counterpart", format!("p{key}")), "", ())
            .await
            .expect("durable");
    }
    // Signalled but deleted at once: it has no state, so it does not exist.
    let deleted = EntityId::new("counter", "deleted");
    served
        .client
        .signal_entity_by_name(&deleted, "add", 1)
        .await
        .expect("durable");
    served
        .client
        .signal_entity_by_name(&deleted, "delete", ())
        .await
        .expect("durable");
    for key in 0..23 {
        until_state::<i64>(
            &served.client,
            &EntityId::new("counter", format!("k{key:02}")),
            |s| s == Some(&key),
        )
        .await;
    }
    for key in 0..4 {
        until_state::<i64>(
            &served.client,
            &EntityId::new("counterpart", format!("p{key}")),
            |s| s == Some(&1),
        )
        .await;
    }
    // The delete is the last of its entity's operations: once it logged two, both ran.
    support::entities::until_logged(&served.client, &deleted, 2).await;

    let counters = list_all_pages(&served, "/entities/counter", 4).await;
    let keys: Vec<String> = counters.iter().map(|e| id_of(e).1).collect();
    let expected: Vec<String> = (0..23).map(|key| format!("k{key:02}")).collect();
    assert_eq!(
        keys, expected,
        "each counter once, in key order, no other name"
    );
    for (entity, key) in counters.iter().zip(0..) {
        assert_eq!(entity["entityId"]["name"], "counter");
        assert_eq!(entity["state"], key);
        let time = entity["lastOperationTime"].as_str().expect("a time");
        assert!(parse_time(time).expect("RFC 3339") > before_ms);
    }
    let everything = list_all_pages(&served, "/entities", 5).await;
    let ids: BTreeSet<(String, String)> = everything.iter().map(id_of).collect();
    assert_eq!(ids.len(), everything.len(), "no entity twice");
    assert_eq!(ids.len(), 27);
    assert_eq!(
        ids.iter().filter(|(name, _)| name == "counterpart").count(),
        4
    );

    // Without fetchState, no state; `top` bounds the page.
    let response = served.get("/entities/counterpart?top=2").await;
    assert!(response.headers().contains_key("x-ms-continuation-token"));
    let page: Vec<Value> = response.json().await.expect("JSON");
    assert_eq!(page.len(), 2);
    assert!(page.iter().all(|e| e.get("state").is_none()), "{page:?}");

    // Last-operation time bounds.
    let future: Vec<Value> = served
        .get_json("/entities?lastOperationTimeFrom=2999-01-01T00:00:00Z")
        .await;
    assert!(future.is_empty());
    let past: Vec<Value> = served
        .get_json("/entities?lastOperationTimeTo=2000-01-01T00:00:00Z")
        .await;
    assert!(past.is_empty());
    let window: Vec<Value> = served
        .get_json(
            "/entities/counterpart?lastOperationTimeFrom=2000-01-01T00:00:00Z\
             &lastOperationTimeTo=2999-01-01T00:00:00Z",
        )
        .await;
    assert_eq!(window.len(), 4);
    // The SDKs' literal `null` token means "from the start".
    let response = served
        .http
        .get(served.url("/entities/counterpart"))
        .header("x-ms-continuation-token", "null")
        .send()
        .await
        .expect("the server answers");
    let from_start: Vec<Value> = response.json().await.expect("JSON");
    assert_eq!(from_start.len(), 4);
    served.stop().await;
}

/// Everything stored about entities: each one's id, state, version, queue and log, and the
/// rows of the entity tables.
async fn entity_snapshot(served: &Served) -> (Vec<String>, [i64; 3]) {
    let mut described = Vec::new();
    let mut query = EntityQuery {
        page_size: 1000,
        ..EntityQuery::default()
    };
    loop {
        let page = served.client.list_entities(&query).await.expect("lists");
        for record in page.entities {
            let id: EntityId = record.entity_id.parse().expect("a stored id parses");
            let log = served.client.entity_log(&id).await.expect("reads the log");
            described.push(format!("{record:?} log={}", log.len()));
        }
        match page.continuation_token {
            Some(token) => query.continuation_token = Some(token),
            None => break,
        }
    }
    let conn = durable_runtime::store::sqlite::open_read_only(served.store.path()).expect("opens");
    let count = |table: &str| -> i64 {
        conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |row| {
            row.get(0)
        })
        .expect("counts")
    };
    let rows = [
        count("entities"),
        count("entity_messages"),
        count("entity_log"),
    ];
    (described, rows)
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_with_its_status_and_changes_nothing() {
    let served = Served::start(|b| b, HttpOptions::new().body_limit(1024)).await;
    let response = served
        .post("/entities/counter/seed?op=add", &json!(5))
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    until_http_state(&served, "counter/seed", &json!(5)).await;
    let before = entity_snapshot(&served).await;

    // Unknown entity name: nothing of this name is registered.
    let unknown = served.post("/entities/nosuch/k?op=add", &json!(1)).await;
    assert_error(unknown, StatusCode::BAD_REQUEST, "UnknownEntity").await;
    // Invalid names and keys.
    let long_key = "k".repeat(2000);
    for path in [
        "/entities/co%40unter/k?op=add",
        "/entities/counter/k%01?op=add",
        "/entities/count%0Aer/k?op=add",
        "/entities/counter/%7F?op=add",
        &format!("/entities/counter/{long_key}?op=add"),
        "/entities/counter/?op=add",
        "/entities/counter?op=add",
    ] {
        let response = served.post(path, &json!(1)).await;
        assert_error(response, StatusCode::BAD_REQUEST, "InvalidEntityId").await;
    }
    for path in [
        "/entities/co%40unter/k",
        "/entities/counter/k%00",
        "/entities/co%40unter",
        "/entities/c%09",
    ] {
        let response = served.get(path).await;
        assert_error(response, StatusCode::BAD_REQUEST, "InvalidEntityId").await;
    }
    // Operations: reserved for the runtime, or with control characters.
    let reserved = served
        .post("/entities/counter/seed?op=__durable.lock", &json!(null))
        .await;
    assert_error(reserved, StatusCode::BAD_REQUEST, "ReservedOperation").await;
    let control = served
        .post("/entities/counter/seed?op=a%0Ab", &json!(1))
        .await;
    assert_error(control, StatusCode::BAD_REQUEST, "BadRequest").await;
    // Bodies: malformed JSON, not JSON, over the limit, not UTF-8.
    let malformed = post_raw(
        &served,
        "/entities/counter/seed?op=add",
        "application/json",
        b"{1".to_vec(),
    )
    .await;
    assert_error(malformed, StatusCode::BAD_REQUEST, "BadRequest").await;
    let text = post_raw(
        &served,
        "/entities/counter/seed?op=add",
        "text/plain",
        b"1".to_vec(),
    )
    .await;
    assert_error(
        text,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "UnsupportedMediaType",
    )
    .await;
    let big = post_raw(
        &served,
        "/entities/counter/seed?op=add",
        "application/json",
        format!("\"{}\"", "x".repeat(4096)).into_bytes(),
    )
    .await;
    assert_error(big, StatusCode::PAYLOAD_TOO_LARGE, "PayloadTooLarge").await;
    let not_utf8 = post_raw(
        &served,
        "/entities/counter/seed?op=add",
        "application/json",
        vec![0xff],
    )
    .await;
    assert_error(not_utf8, StatusCode::BAD_REQUEST, "BadRequest").await;
    // Listing parameters.
    for query in [
        "top=0",
        "top=many",
        "fetchState=yes",
        "lastOperationTimeFrom=yesterday",
        "lastOperationTimeTo=2026-13-01T00:00:00Z",
    ] {
        let response = served.get(&format!("/entities/counter?{query}")).await;
        assert_error(response, StatusCode::BAD_REQUEST, "BadRequest").await;
    }
    let bad_token = served
        .http
        .get(served.url("/entities"))
        .header("x-ms-continuation-token", "%FF%FE")
        .send()
        .await
        .expect("the server answers");
    assert_error(bad_token, StatusCode::BAD_REQUEST, "BadRequest").await;
    // A method the routes do not take.
    let delete = served.delete("/entities/counter/seed").await;
    assert_error(delete, StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed").await;

    // Nothing changed, and the server still serves: a good signal is applied.
    assert_eq!(entity_snapshot(&served).await, before);
    let response = served
        .post("/entities/counter/seed?op=add", &json!(1))
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    until_http_state(&served, "counter/seed", &json!(6)).await;
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entity_routes_require_the_key_when_the_server_has_one() {
    let served = Served::start(|b| b, HttpOptions::new().key("s3cret")).await;
    let without = served.post("/entities/counter/k?op=add", &json!(1)).await;
    assert_error(without, StatusCode::UNAUTHORIZED, "Unauthorized").await;
    let wrong = served
        .http
        .get(served.url("/entities?code=guess"))
        .send()
        .await
        .expect("the server answers");
    assert_error(wrong, StatusCode::UNAUTHORIZED, "Unauthorized").await;
    let with = served
        .http
        .post(served.url("/entities/counter/k?op=add"))
        .header("x-functions-key", "s3cret")
        .json(&json!(3))
        .send()
        .await
        .expect("the server answers");
    assert_eq!(with.status(), StatusCode::ACCEPTED);
    until_state::<i64>(&served.client, &EntityId::new("counter", "k"), |s| {
        s == Some(&3)
    })
    .await;
    let read = served
        .http
        .get(served.url("/entities/counter/k?code=s3cret"))
        .send()
        .await
        .expect("the server answers");
    assert_eq!(read.status(), StatusCode::OK);
    assert_eq!(read.json::<Value>().await.expect("JSON"), json!(3));
    // Only the accepted signal ran.
    let log = served
        .client
        .entity_log(&EntityId::new("counter", "k"))
        .await
        .expect("reads the log");
    assert_eq!(log.len(), 1);
    served.stop().await;
}
