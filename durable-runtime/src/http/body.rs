//! Request bodies: JSON only, within the configured size limit.

use super::error::ApiError;
use crate::payload::Payload;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};

/// The JSON document a request carries (`null` for an empty body, as the original takes a
/// start without input). A body over the limit is a 413; an explicit non-JSON content type,
/// a 415; JSON that does not parse, a 400.
pub(crate) fn json_body(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Payload, ApiError> {
    let body = body.map_err(|rejection| {
        let status = rejection.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                status,
                "PayloadTooLarge",
                "the request body is larger than the server's limit",
            )
        } else {
            ApiError::new(status, "BadRequest", rejection.body_text())
        }
    })?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Payload::null());
    }
    // Liberal in what we accept: no content type at all is taken as JSON (some scripts send
    // none); only an explicit other type is refused.
    if let Some(content_type) = headers.get(header::CONTENT_TYPE) {
        let essence = content_type
            .to_str()
            .unwrap_or_default()
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        let json = essence == "application/json"
            || essence == "text/json"
            || (essence.starts_with("application/") && essence.ends_with("+json"));
        if !json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UnsupportedMediaType",
                format!(
                    "the request body must be JSON (Content-Type: application/json), not '{essence}'"
                ),
            ));
        }
    }
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::bad_request("the request body is not UTF-8 text"))?;
    Payload::from_json(text)
        .map_err(|err| ApiError::bad_request(format!("the request body is not valid JSON: {err}")))
}
