//! Query parameters, read as leniently as the original reads them: names case-insensitive,
//! booleans in any case (`true`, `True`: the Python client sends Python's spelling), status
//! lists comma-separated or repeated, times in RFC 3339.

use super::error::ApiError;
use super::time::parse_ms;
use super::urls::{decode, encode};
use crate::instance::RuntimeStatus;
use axum::extract::Query;
use axum::extract::rejection::QueryRejection;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;

/// A request's query parameters, in order.
pub(crate) struct Params(Vec<(String, String)>);

impl Params {
    /// The parameters of a request (an unparsable query string is a 400).
    pub(crate) fn from_query(
        query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    ) -> Result<Self, ApiError> {
        match query {
            Ok(Query(pairs)) => Ok(Params(pairs)),
            Err(rejection) => Err(ApiError::bad_request(format!(
                "the query string does not parse: {}",
                rejection.body_text()
            ))),
        }
    }

    /// Every value of `name` (compared case-insensitively).
    fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The value of `name`, if given (the last, if given more than once).
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// A text parameter; given empty, it counts as absent.
    pub(crate) fn text<'a>(&'a self, name: &str) -> Option<&'a str> {
        self.get(name).filter(|value| !value.is_empty())
    }

    /// A boolean parameter (`true`/`false`, any case); `default` when absent or empty.
    pub(crate) fn flag(&self, name: &str, default: bool) -> Result<bool, ApiError> {
        match self.text(name) {
            None => Ok(default),
            Some(value) if value.eq_ignore_ascii_case("true") => Ok(true),
            Some(value) if value.eq_ignore_ascii_case("false") => Ok(false),
            Some(value) => Err(ApiError::bad_request(format!(
                "query parameter '{name}' must be true or false, not '{value}'"
            ))),
        }
    }

    /// A time parameter (RFC 3339), in milliseconds since the epoch.
    pub(crate) fn time(&self, name: &str) -> Result<Option<i64>, ApiError> {
        self.text(name)
            .map(|value| {
                parse_ms(value).ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "query parameter '{name}' must be an ISO 8601 time \
                         (2026-11-27T23:14:00Z), not '{value}'"
                    ))
                })
            })
            .transpose()
    }

    /// A positive count parameter.
    pub(crate) fn count(&self, name: &str) -> Result<Option<u32>, ApiError> {
        self.text(name)
            .map(|value| match value.parse::<u32>() {
                Ok(count) if count > 0 => Ok(count),
                _ => Err(ApiError::bad_request(format!(
                    "query parameter '{name}' must be a positive number, not '{value}'"
                ))),
            })
            .transpose()
    }

    /// A list of runtime statuses: `runtimeStatus=Running,Completed` or repeated.
    pub(crate) fn statuses(&self, name: &str) -> Result<Vec<RuntimeStatus>, ApiError> {
        let mut statuses = Vec::new();
        for value in self.all(name) {
            for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                let status = item
                    .parse::<RuntimeStatus>()
                    .map_err(|err| ApiError::bad_request(err.to_string()))?;
                if !statuses.contains(&status) {
                    statuses.push(status);
                }
            }
        }
        Ok(statuses)
    }
}

/// The header that carries a listing's continuation token, both ways (as in the original).
pub(crate) const CONTINUATION_HEADER: &str = "x-ms-continuation-token";

/// The continuation token a listing request carries, if any. It travels percent-encoded:
/// ids may hold characters a header cannot.
pub(crate) fn continuation_token(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    Ok(headers
        .get(CONTINUATION_HEADER)
        .map(|value| {
            value
                .to_str()
                .ok()
                .and_then(decode)
                .ok_or_else(|| ApiError::bad_request("the continuation token is not valid"))
        })
        .transpose()?
        // The SDK clients send the literal `null` for "from the start".
        .filter(|token| !token.is_empty() && token != "null"))
}

/// Puts the next page's token on a listing's response.
pub(crate) fn set_continuation_token(response: &mut Response, token: Option<&str>) {
    if let Some(token) = token
        && let Ok(value) = HeaderValue::from_str(&encode(token))
    {
        response.headers_mut().insert(CONTINUATION_HEADER, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        Params(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn reads_leniently_and_refuses_clearly() {
        let p = params(&[
            ("ShowHistory", "True"),
            ("runtimeStatus", "Running, completed"),
            ("runtimeStatus", "Failed"),
            ("top", "0"),
            ("showInput", "yes"),
        ]);
        assert!(p.flag("showHistory", false).expect("a boolean"));
        assert!(!p.flag("absent", false).expect("the default"));
        assert_eq!(
            p.statuses("runtimeStatus").expect("statuses"),
            vec![
                RuntimeStatus::Running,
                RuntimeStatus::Completed,
                RuntimeStatus::Failed
            ]
        );
        assert!(p.count("top").is_err());
        assert!(p.flag("showInput", true).is_err());
        assert!(params(&[("s", "Done")]).statuses("s").is_err());
    }
}
