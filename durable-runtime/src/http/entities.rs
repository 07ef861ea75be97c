//! `/entities`: signal an entity, read its state, list entities, each one [`Client`] call,
//! in the shapes of the original's entity routes:
//!
//! - `POST /entities/{name}/{key}?op=NAME` (body: the operation's input) → 202;
//! - `GET /entities/{name}/{key}` → 200 with the state as JSON, 404 when the entity has none;
//! - `GET /entities/{name}` and `GET /entities` (`fetchState`, `top`,
//!   `lastOperationTimeFrom`, `lastOperationTimeTo`; paging by `x-ms-continuation-token`) →
//!   200 with `[{"entityId": {"name", "key"}, "lastOperationTime", "state"?}]`.
//!
//! [`Client`]: crate::Client

use super::ApiState;
use super::body::json_body;
use super::error::ApiError;
use super::instances::{MAX_PAGE, idempotency_key};
use super::orchestrations::path;
use super::query::{Params, continuation_token, set_continuation_token};
use super::time::format_ms;
use crate::entity::EntityId;
use crate::payload::Payload;
use crate::store::{EntityQuery, EntityRecord};
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;

type QueryParams = Result<Query<Vec<(String, String)>>, QueryRejection>;

/// A refused entity name or key.
fn invalid(message: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "InvalidEntityId", message)
}

/// An entity name from a path: not empty, no `@` (it would make `@name@key` ambiguous), no
/// control characters.
fn checked_name(name: &str) -> Result<(), ApiError> {
    if name.is_empty() {
        return Err(invalid("the entity name is empty".into()));
    }
    if name.contains('@') {
        return Err(invalid(format!(
            "entity name '{}' contains '@'",
            name.escape_debug()
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(invalid(format!(
            "entity name '{}' has control characters",
            name.escape_debug()
        )));
    }
    Ok(())
}

/// The entity id of a `{name}/{key}` path, refused (400) before any store call if it could
/// not be one: an empty name or key, control characters, `@` in the name, too long.
fn entity_id(params: Result<Path<(String, String)>, PathRejection>) -> Result<EntityId, ApiError> {
    let (name, key) = path(params)?;
    checked_name(&name)?;
    if key.is_empty() {
        return Err(invalid("the entity key is empty".into()));
    }
    if key.chars().any(char::is_control) {
        return Err(invalid(format!(
            "entity key '{}' has control characters",
            key.escape_debug()
        )));
    }
    let id = EntityId::new(name, key);
    id.check().map_err(|err| invalid(err.to_string()))?;
    Ok(id)
}

/// `POST /entities/{name}/{key}?op=NAME`: sends the operation (its input: the body, `null`
/// when empty), one way; 202 once it is durable. `op` is optional, as in the original
/// (the operation is then the empty name, which the entity answers as it answers any
/// operation it does not know). An entity name no `#[entity]` registers is a 400. An
/// `Idempotency-Key` header makes a retried request queue the operation once (as raiseEvent).
pub(crate) async fn signal(
    State(state): State<ApiState>,
    params: Result<Path<(String, String)>, PathRejection>,
    query: QueryParams,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    // Everything that can be refused is checked before anything is written.
    let id = entity_id(params)?;
    let params = Params::from_query(query)?;
    let operation = params.get("op").unwrap_or_default().to_string();
    if operation.chars().any(char::is_control) {
        return Err(ApiError::bad_request(format!(
            "operation name '{}' has control characters",
            operation.escape_debug()
        )));
    }
    let input = json_body(&headers, body)?;
    // A retried request (a timeout whose write landed) is queued once.
    match idempotency_key(&headers)? {
        Some(key) => {
            state
                .client
                .signal_entity_by_name_once(&id, &operation, input, key)
                .await?
        }
        None => {
            state
                .client
                .signal_entity_by_name(&id, &operation, input)
                .await?
        }
    }
    tracing::debug!(entity = %id, %operation, "entity signalled over HTTP");
    Ok(StatusCode::ACCEPTED.into_response())
}

/// `POST /entities/{name}` (or with a trailing `/`): a signal without a key.
pub(crate) async fn signal_without_key() -> ApiError {
    invalid("a signal needs the entity's key: POST /entities/{name}/{key}?op=NAME".into())
}

/// `GET /entities/{name}/{key}`: 200 with the state as it was last committed (operations
/// still queued are not reflected); 404 when the entity has no state (never created, or
/// deleted).
pub(crate) async fn get_state(
    State(state): State<ApiState>,
    params: Result<Path<(String, String)>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = entity_id(params)?;
    match state.client.read_entity_state::<Value>(&id).await? {
        Some(entity_state) => Ok(Json(entity_state).into_response()),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "EntityNotFound",
            format!("no entity '{id}' (or it has no state)"),
        )),
    }
}

/// `GET /entities`: every entity.
pub(crate) async fn list_all(
    State(state): State<ApiState>,
    query: QueryParams,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    list(state, None, query, headers).await
}

/// `GET /entities/{name}`: the entities of one name.
pub(crate) async fn list_named(
    State(state): State<ApiState>,
    name: Result<Path<String>, PathRejection>,
    query: QueryParams,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let name = path(name)?;
    checked_name(&name)?;
    list(state, Some(name), query, headers).await
}

/// One page of entities that exist (have a state), in id order; the next page's token in
/// `x-ms-continuation-token`.
async fn list(
    state: ApiState,
    name: Option<String>,
    query: QueryParams,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let params = Params::from_query(query)?;
    let fetch_state = params.flag("fetchState", false)?;
    let query = EntityQuery {
        // Ids are `@name@key` and names hold no `@`: `name@` selects exactly that name, not
        // the names it is a prefix of.
        name_prefix: name.map(|name| format!("{name}@")),
        // As in the original, a listing shows the entities that exist: those with a state.
        with_state_only: true,
        last_operation_from_ms: params.time("lastOperationTimeFrom")?,
        last_operation_to_ms: params.time("lastOperationTimeTo")?,
        page_size: params.count("top")?.unwrap_or(100).min(MAX_PAGE) as usize,
        continuation_token: continuation_token(&headers)?,
    };
    let page = state.client.list_entities(&query).await?;
    let body: Vec<EntityBody> = page
        .entities
        .into_iter()
        .map(|record| EntityBody::new(record, fetch_state))
        .collect();
    let mut response = (StatusCode::OK, Json(body)).into_response();
    set_continuation_token(&mut response, page.continuation_token.as_deref());
    Ok(response)
}

/// One entity of a listing, as the original shows it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EntityBody {
    entity_id: EntityIdBody,
    last_operation_time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<Payload>,
}

#[derive(Serialize)]
struct EntityIdBody {
    name: String,
    key: String,
}

impl EntityBody {
    fn new(record: EntityRecord, fetch_state: bool) -> Self {
        let entity_id = match record.entity_id.parse::<EntityId>() {
            Ok(id) => EntityIdBody {
                name: id.name().to_string(),
                key: id.key().to_string(),
            },
            // Stored ids were checked when written; one that does not parse is shown whole
            // rather than hidden from the listing.
            Err(err) => {
                tracing::warn!(entity = %record.entity_id, error = %err, "a stored entity id does not parse");
                EntityIdBody {
                    name: record.entity_id,
                    key: String::new(),
                }
            }
        };
        EntityBody {
            entity_id,
            last_operation_time: format_ms(record.updated_ms),
            state: if fetch_state { record.state } else { None },
        }
    }
}
