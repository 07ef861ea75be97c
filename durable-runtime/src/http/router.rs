//! The routes, and what wraps every request: the key check, the time limit, the body limit,
//! and JSON answers for unknown routes and methods.

use super::error::ApiError;
use super::{ApiState, BASE_PATH, HttpOptions, entities, instances, orchestrations};
use crate::client::Client;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

/// The API as a router to mount in an axum app; its routes are under [`BASE_PATH`].
///
/// ```no_run
/// # async fn demo(client: durable_runtime::Client) -> std::io::Result<()> {
/// use durable_runtime::http::{self, HttpOptions};
/// let app = axum::Router::new()
///     .route("/health", axum::routing::get(|| async { "ok" }))
///     .merge(http::router(client, HttpOptions::new()));
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:7071").await?;
/// axum::serve(listener, app).await
/// # }
/// ```
///
/// The key check applies to the API's routes only. Mounted this way, refusing a key-less
/// bind beyond loopback is the app's job ([`serve`](super::serve) does it).
pub fn router(client: Client, options: HttpOptions) -> Router {
    let body_limit = options.body_limit;
    let state = ApiState { client, options };
    let api = Router::new()
        .route(
            "/orchestrators/{name}",
            post(orchestrations::start_without_id),
        )
        .route(
            "/orchestrators/{name}/",
            post(orchestrations::start_empty_id),
        )
        .route(
            "/orchestrators/{name}/{id}",
            post(orchestrations::start_with_id),
        )
        .route(
            "/instances",
            get(instances::list).delete(instances::purge_by_filter),
        )
        .route(
            "/instances/",
            get(instances::list).delete(instances::purge_by_filter),
        )
        .route(
            "/instances/{id}",
            get(instances::status).delete(instances::purge),
        )
        .route(
            "/instances/{id}/raiseEvent/{event}",
            post(instances::raise_event),
        )
        .route("/instances/{id}/history", get(instances::history))
        .route("/instances/{id}/terminate", post(instances::terminate))
        .route("/instances/{id}/suspend", post(instances::suspend))
        .route("/instances/{id}/resume", post(instances::resume))
        .route("/instances/{id}/rewind", post(instances::rewind))
        .route("/instances/{id}/restart", post(instances::restart))
        .route("/entities", get(entities::list_all))
        .route("/entities/", get(entities::list_all))
        .route(
            "/entities/{name}",
            get(entities::list_named).post(entities::signal_without_key),
        )
        .route(
            "/entities/{name}/",
            get(entities::list_named).post(entities::signal_without_key),
        )
        .route(
            "/entities/{name}/{key}",
            get(entities::get_state).post(entities::signal),
        )
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(body_limit))
        // Outermost first: the key is checked before anything else runs, and the time
        // limit covers the rest.
        .layer(middleware::from_fn_with_state(state.clone(), time_limit))
        .layer(middleware::from_fn_with_state(state.clone(), require_key))
        .with_state(state);
    Router::new().nest(BASE_PATH, api)
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route in the Durable Functions HTTP API")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        "this route does not take this method",
    )
}

/// Refuses a request without the server's key (in `code=` or `x-functions-key`).
async fn require_key(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let Some(key) = &state.options.key else {
        return next.run(request).await;
    };
    let from_header = request
        .headers()
        .get("x-functions-key")
        .and_then(|value| value.to_str().ok())
        .map(str::to_string);
    let from_query = request.uri().query().and_then(|query| {
        query.split('&').find_map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            name.eq_ignore_ascii_case("code")
                .then(|| super::urls::decode(value))
                .flatten()
        })
    });
    let given = from_header.or(from_query);
    match given {
        Some(given) if constant_time_eq(given.as_bytes(), key.as_bytes()) => {
            next.run(request).await
        }
        Some(_) => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "the key given (code= or x-functions-key) is not the server's key",
        )
        .into_response(),
        None => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "this server requires a key: pass it as code=KEY or in the x-functions-key header",
        )
        .into_response(),
    }
}

/// Compares without stopping at the first difference, so the time taken says nothing about
/// how much of a guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Answers 503 to a request that takes longer than the server's request timeout.
async fn time_limit(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let timeout = state.options.request_timeout;
    match tokio::time::timeout(timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(?timeout, "HTTP API request timed out");
            let mut response = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "RequestTimeout",
                format!(
                    "the request did not complete within {timeout:?}; it may have taken effect"
                ),
            )
            .into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn keys_compare_exactly() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
