//! `/instances`: status, list, events and management of instances, each one [`Client`] call.
//!
//! [`Client`]: crate::Client

use super::ApiState;
use super::body::json_body;
use super::error::ApiError;
use super::json::{PurgeBody, Show, StatusBody};
use super::orchestrations::{accepted_with_urls, path, set_polling_headers};
use super::query::{Params, continuation_token, set_continuation_token};
use super::urls::ApiUrls;
use crate::instance::{InstanceQuery, RuntimeStatus, instance_id_problem};
use crate::store::PurgeFilter;
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

/// The most instances one listing page holds, whatever `top` asks.
pub(crate) const MAX_PAGE: u32 = 1000;

type QueryParams = Result<Query<Vec<(String, String)>>, QueryRejection>;

/// An instance id from a path, refused (400) if it could not be one, before any store call.
fn instance_id(path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    let id = super::orchestrations::path(path)?;
    checked_id(id)
}

fn checked_id(id: String) -> Result<String, ApiError> {
    match instance_id_problem(&id) {
        Some(reason) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "InvalidInstanceId",
            format!("invalid instance id '{}': {reason}", id.escape_debug()),
        )),
        None => Ok(id),
    }
}

/// `GET /instances/{id}`.
pub(crate) async fn status(
    State(state): State<ApiState>,
    id: Result<Path<String>, PathRejection>,
    query: QueryParams,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = instance_id(id)?;
    let params = Params::from_query(query)?;
    let show = Show {
        input: params.flag("showInput", true)?,
        history: params.flag("showHistory", false)?,
        history_output: params.flag("showHistoryOutput", false)?,
    };
    let fail_as_500 = params.flag("returnInternalServerErrorOnFailure", false)?;
    let urls = ApiUrls::from_headers(&headers, state.options.key.as_deref())?;
    let status = if show.history {
        state.client.get_status_with_history(&id).await?
    } else {
        state.client.get_status(&id).await?
    };
    let Some(status) = status else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "InstanceNotFound",
            format!("no instance with id '{id}'"),
        ));
    };
    let runtime_status = status.runtime_status;
    let body = Json(StatusBody::new(status, show));
    let response = match runtime_status {
        RuntimeStatus::Failed if fail_as_500 => {
            (StatusCode::INTERNAL_SERVER_ERROR, body).into_response()
        }
        finished if StatusBody::is_finished(finished) => (StatusCode::OK, body).into_response(),
        _ => {
            let mut response = (StatusCode::ACCEPTED, body).into_response();
            set_polling_headers(&state, &mut response, &urls.status(&id));
            response
        }
    };
    Ok(response)
}

/// `GET /instances/{id}/history` (an extension of ours, not in the original): the instance's
/// history as [`HistoryRecord`](crate::HistoryRecord)s, the stable export format (what
/// `durable history --json` prints).
pub(crate) async fn history(
    State(state): State<ApiState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = instance_id(id)?;
    let Some(status) = state.client.get_status_with_history(&id).await? else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "InstanceNotFound",
            format!("no instance with id '{id}'"),
        ));
    };
    Ok(Json(status.history.unwrap_or_default()).into_response())
}

/// `GET /instances`: one page, the next page's token in `x-ms-continuation-token`.
pub(crate) async fn list(
    State(state): State<ApiState>,
    query: QueryParams,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let params = Params::from_query(query)?;
    // On by default, as in the original (`showInput=false` leaves inputs out).
    let show_input = params.flag("showInput", true)?;
    let token = continuation_token(&headers)?;
    let query = InstanceQuery {
        statuses: params.statuses("runtimeStatus")?,
        created_from_ms: params.time("createdTimeFrom")?,
        created_to_ms: params.time("createdTimeTo")?,
        instance_id_prefix: params.text("instanceIdPrefix").map(str::to_string),
        name: None,
        page_size: params.count("top")?.unwrap_or(100).min(MAX_PAGE),
        continuation_token: token,
    };
    let page = state.client.list(&query).await?;
    let show = Show {
        input: show_input,
        history: false,
        history_output: false,
    };
    let body: Vec<StatusBody> = page
        .instances
        .into_iter()
        .map(|status| StatusBody::new(status, show))
        .collect();
    let mut response = (StatusCode::OK, Json(body)).into_response();
    set_continuation_token(&mut response, page.continuation_token.as_deref());
    Ok(response)
}

/// The longest `Idempotency-Key` taken: it is stored with the event it guards.
const MAX_IDEMPOTENCY_KEY: usize = 256;

/// The request's `Idempotency-Key` (none if absent or empty). A key that is not visible ASCII
/// is refused, not ignored: ignoring it would record a retried request twice.
pub(crate) fn idempotency_key(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    match headers.get("idempotency-key") {
        None => Ok(None),
        Some(value) => match value.to_str() {
            Ok("") => Ok(None),
            Ok(key) if key.len() <= MAX_IDEMPOTENCY_KEY => Ok(Some(key)),
            _ => Err(ApiError::bad_request(format!(
                "the Idempotency-Key header must be visible ASCII of at most \
                 {MAX_IDEMPOTENCY_KEY} bytes"
            ))),
        },
    }
}

/// `POST /instances/{id}/raiseEvent/{event}`; an `Idempotency-Key` header makes a retried
/// request record the event once.
pub(crate) async fn raise_event(
    State(state): State<ApiState>,
    params: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let (id, event) = path(params)?;
    let id = checked_id(id)?;
    if event.is_empty() || event.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "the event name is empty or has control characters",
        ));
    }
    let data = json_body(&headers, body)?;
    match idempotency_key(&headers)? {
        Some(key) => {
            state
                .client
                .raise_event_once(&id, &event, data, key)
                .await?
        }
        None => state.client.raise_event(&id, &event, data).await?,
    }
    Ok(StatusCode::ACCEPTED.into_response())
}

/// The `reason` of a management call (empty when not given).
fn reason(query: QueryParams) -> Result<String, ApiError> {
    let params = Params::from_query(query)?;
    Ok(params.get("reason").unwrap_or_default().to_string())
}

/// `POST /instances/{id}/terminate?reason=`.
pub(crate) async fn terminate(
    State(state): State<ApiState>,
    id: Result<Path<String>, PathRejection>,
    query: QueryParams,
) -> Result<Response, ApiError> {
    let id = instance_id(id)?;
    state.client.terminate(&id, &reason(query)?).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

/// `POST /instances/{id}/suspend?reason=`.
pub(crate) async fn suspend(
    State(state): State<ApiState>,
    id: Result<Path<String>, PathRejection>,
    query: QueryParams,
) -> Result<Response, ApiError> {
    let id = instance_id(id)?;
    state.client.suspend(&id, &reason(query)?).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

/// `POST /instances/{id}/resume?reason=`.
pub(crate) async fn resume(
    State(state): State<ApiState>,
    id: Result<Path<String>, PathRejection>,
    query: QueryParams,
) -> Result<Response, ApiError> {
    let id = instance_id(id)?;
    state.client.resume(&id, &reason(query)?).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

/// `POST /instances/{id}/rewind?reason=`.
pub(crate) async fn rewind(
    State(state): State<ApiState>,
    id: Result<Path<String>, PathRejection>,
    query: QueryParams,
) -> Result<Response, ApiError> {
    let id = instance_id(id)?;
    state.client.rewind(&id, &reason(query)?).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

/// `POST /instances/{id}/restart?restartWithNewInstanceId=` (default `true`, as in the
/// original): 202 with the management URLs of the instance that runs.
pub(crate) async fn restart(
    State(state): State<ApiState>,
    id: Result<Path<String>, PathRejection>,
    query: QueryParams,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = instance_id(id)?;
    let params = Params::from_query(query)?;
    let new_id = params.flag("restartWithNewInstanceId", true)?;
    let urls = ApiUrls::from_headers(&headers, state.options.key.as_deref())?;
    let running = state.client.restart(&id, new_id).await?;
    Ok(accepted_with_urls(&state, &urls, &running))
}

/// `DELETE /instances/{id}`.
pub(crate) async fn purge(
    State(state): State<ApiState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = instance_id(id)?;
    state.client.purge(&id).await?;
    Ok(Json(PurgeBody {
        instances_deleted: 1,
    })
    .into_response())
}

/// `DELETE /instances?createdTimeFrom=&createdTimeTo=&runtimeStatus=`: 404 when nothing
/// matched, as in the original. `createdTimeFrom` is required, as in the original: a request
/// that lost its parameters (or an empty instance id that made `instances/{id}` into
/// `instances/`) must not purge every finished instance.
pub(crate) async fn purge_by_filter(
    State(state): State<ApiState>,
    query: QueryParams,
) -> Result<Response, ApiError> {
    let params = Params::from_query(query)?;
    let Some(created_from_ms) = params.time("createdTimeFrom")? else {
        return Err(ApiError::bad_request(
            "purging by filter needs 'createdTimeFrom' (the original's rule: an empty filter \
             would purge every finished instance)",
        ));
    };
    let filter = PurgeFilter {
        created_from_ms: Some(created_from_ms),
        created_to_ms: params.time("createdTimeTo")?,
        updated_to_ms: None,
        statuses: params.statuses("runtimeStatus")?,
    };
    let purged = state.client.purge_by(&filter).await?;
    if purged == 0 {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            "no finished instance matches the filter",
        ));
    }
    Ok(Json(PurgeBody {
        instances_deleted: purged,
    })
    .into_response())
}
