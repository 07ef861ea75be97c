//! The API's errors: each a status code and a JSON body `{"code": "...", "message": "..."}`.

use crate::error::Error;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// A refused or failed request, as the client sees it.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    /// A stable, machine-readable name (`InstanceNotFound`, `BadRequest`, ...).
    pub code: &'static str,
    pub message: String,
}

/// The JSON body of an error.
#[derive(Serialize)]
struct ErrorBody<'a> {
    code: &'a str,
    message: &'a str,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NotFound", message)
    }

    /// The error of a client call, with the status code the original documents for it.
    pub(crate) fn from_client(err: Error) -> Self {
        let message = err.to_string();
        let (status, code) = match &err {
            Error::InstanceNotFound(_) => (StatusCode::NOT_FOUND, "InstanceNotFound"),
            Error::UnknownOrchestrator(_) => (StatusCode::BAD_REQUEST, "UnknownOrchestrator"),
            Error::UnknownEntity(_) => (StatusCode::BAD_REQUEST, "UnknownEntity"),
            Error::InvalidEntityId(_) => (StatusCode::BAD_REQUEST, "InvalidEntityId"),
            Error::ReservedOperation(_) => (StatusCode::BAD_REQUEST, "ReservedOperation"),
            Error::WrongEntity { .. } => (StatusCode::BAD_REQUEST, "WrongEntity"),
            Error::InvalidInstanceId { .. } => (StatusCode::BAD_REQUEST, "InvalidInstanceId"),
            Error::InstanceAlreadyExists(_) => (StatusCode::CONFLICT, "InstanceAlreadyExists"),
            // The original answers 410 Gone to an operation on a finished instance.
            Error::InstanceFinished { .. } => (StatusCode::GONE, "InstanceFinished"),
            Error::NotApplicable { status, .. } if status.is_terminal() => {
                (StatusCode::GONE, "InstanceFinished")
            }
            Error::NotApplicable { .. } => (StatusCode::CONFLICT, "NotApplicable"),
            Error::PayloadTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "PayloadTooLarge"),
            Error::Serialize(_) => (StatusCode::BAD_REQUEST, "BadRequest"),
            Error::StoreUnavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "StoreUnavailable"),
            Error::ShutDown => (StatusCode::SERVICE_UNAVAILABLE, "ShuttingDown"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "InternalError"),
        };
        if status.is_server_error() {
            tracing::error!(error = %err, "HTTP API request failed");
        }
        ApiError::new(status, code, message)
    }
}

impl From<Error> for ApiError {
    fn from(err: Error) -> Self {
        ApiError::from_client(err)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            code: self.code,
            message: &self.message,
        };
        (self.status, Json(body)).into_response()
    }
}
