//! `POST /orchestrators/{name}[/{instanceId}]`: starting an instance by its orchestrator's
//! registered name.

use super::ApiState;
use super::body::json_body;
use super::error::ApiError;
use super::urls::ApiUrls;
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Path parameters that do not decode (not UTF-8) are a 400 with a JSON body.
pub(crate) fn path<T>(path: Result<Path<T>, PathRejection>) -> Result<T, ApiError> {
    path.map(|Path(value)| value).map_err(|rejection| {
        ApiError::bad_request(format!(
            "the path does not parse: {}",
            rejection.body_text()
        ))
    })
}

pub(crate) async fn start_without_id(
    State(state): State<ApiState>,
    name: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    start(state, path(name)?, None, headers, body).await
}

pub(crate) async fn start_with_id(
    State(state): State<ApiState>,
    params: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let (name, id) = path(params)?;
    start(state, name, Some(id), headers, body).await
}

/// `POST /orchestrators/{name}/`: an instance id given empty.
pub(crate) async fn start_empty_id(
    State(state): State<ApiState>,
    name: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    start(state, path(name)?, Some(String::new()), headers, body).await
}

async fn start(
    state: ApiState,
    name: String,
    instance_id: Option<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    // Everything that can be refused is checked before anything is written.
    let urls = ApiUrls::from_headers(&headers, state.options.key.as_deref())?;
    let input = json_body(&headers, body)?;
    let id = state
        .client
        .start_by_name(&name, instance_id, input)
        .await?;
    tracing::debug!(instance = %id, orchestrator = %name, "started over HTTP");
    Ok(accepted_with_urls(&state, &urls, &id))
}

/// A 202 pointing at `id`: `Location` and `Retry-After` headers, the management URLs as the
/// body (a start's and a restart's answer).
pub(crate) fn accepted_with_urls(state: &ApiState, urls: &ApiUrls, id: &str) -> Response {
    let management = urls.management(id);
    let mut response = (StatusCode::ACCEPTED, Json(&management)).into_response();
    set_polling_headers(state, &mut response, &management.status_query_get_uri);
    response
}

/// `Location` (where to poll) and `Retry-After` (how soon), as on every 202 of the original.
pub(crate) fn set_polling_headers(state: &ApiState, response: &mut Response, location: &str) {
    let headers = response.headers_mut();
    // The URL is built from a validated host and percent-encoded parts: always a valid value.
    if let Ok(value) = HeaderValue::from_str(location) {
        headers.insert(header::LOCATION, value);
    }
    let seconds = state.options.retry_after.as_secs().max(1);
    headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
}
