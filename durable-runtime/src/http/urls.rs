//! The URLs the API hands out (`Location`, the management payload), built from the request's
//! `Host` / `X-Forwarded-Proto` / `X-Forwarded-Host`, so that they work behind a proxy.

use super::BASE_PATH;
use super::error::ApiError;
use axum::http::HeaderMap;
use serde::Serialize;

/// Where the API is reached by the client of one request: `http://host:port` + base path.
pub(crate) struct ApiUrls {
    base: String,
    /// `code=KEY`, appended to each URL when the server has a key (as the original does), so
    /// that a client can follow them as they are.
    code: Option<String>,
}

impl ApiUrls {
    /// The URLs of a request with `headers`, on a server with `key`.
    pub(crate) fn from_headers(headers: &HeaderMap, key: Option<&str>) -> Result<Self, ApiError> {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|value| value.to_str().ok())
                // A proxy chain lists one value per hop: the first is the client's.
                .and_then(|value| value.split(',').next())
                .map(str::trim)
                .filter(|value| !value.is_empty())
        };
        let proto = match header("x-forwarded-proto") {
            Some(proto) if proto.eq_ignore_ascii_case("https") => "https",
            _ => "http",
        };
        let host = header("x-forwarded-host")
            .or_else(|| header("host"))
            .ok_or_else(|| ApiError::bad_request("the request has no Host header"))?;
        // The host goes into URLs and a `Location` header: nothing that could change either's
        // meaning.
        let valid = host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']' | '_'));
        if !valid {
            return Err(ApiError::bad_request(format!(
                "the request's host '{host}' is not a host name"
            )));
        }
        Ok(ApiUrls {
            base: format!("{proto}://{host}{BASE_PATH}"),
            code: key.map(|key| format!("code={}", encode(key))),
        })
    }

    fn with_code(&self, url: String, has_query: bool) -> String {
        match &self.code {
            Some(code) if has_query => format!("{url}&{code}"),
            Some(code) => format!("{url}?{code}"),
            None => url,
        }
    }

    /// The status URL of `instance_id` (also its `Location`).
    pub(crate) fn status(&self, instance_id: &str) -> String {
        self.with_code(self.instance(instance_id), false)
    }

    fn instance(&self, instance_id: &str) -> String {
        format!("{}/instances/{}", self.base, encode(instance_id))
    }

    /// The management payload of `instance_id`: the body of a start's 202.
    pub(crate) fn management(&self, instance_id: &str) -> ManagementUrls {
        let instance = self.instance(instance_id);
        let op = |op: &str, reason: bool| {
            if reason {
                self.with_code(format!("{instance}/{op}?reason={{text}}"), true)
            } else {
                self.with_code(format!("{instance}/{op}"), false)
            }
        };
        ManagementUrls {
            id: instance_id.to_string(),
            status_query_get_uri: self.status(instance_id),
            send_event_post_uri: self
                .with_code(format!("{instance}/raiseEvent/{{eventName}}"), false),
            terminate_post_uri: op("terminate", true),
            rewind_post_uri: op("rewind", true),
            purge_history_delete_uri: self.status(instance_id),
            restart_post_uri: op("restart", false),
            suspend_post_uri: op("suspend", true),
            resume_post_uri: op("resume", true),
        }
    }
}

/// The body of a start's `202 Accepted`: the instance's id and the URLs that manage it,
/// with the original's field names. `{text}` and `{eventName}` are placeholders for the
/// caller to fill in, as in the original.
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ManagementUrls {
    pub id: String,
    pub status_query_get_uri: String,
    pub send_event_post_uri: String,
    pub terminate_post_uri: String,
    pub rewind_post_uri: String,
    pub purge_history_delete_uri: String,
    pub restart_post_uri: String,
    pub suspend_post_uri: String,
    pub resume_post_uri: String,
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub(crate) fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Percent-decodes a query value (`+` is a space); `None` if it is not UTF-8.
pub(crate) fn decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(text.get(i + 1..i + 3).unwrap_or("zz"), 16) {
                    Ok(byte) => {
                        out.push(byte);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn urls_follow_the_forwarded_headers_and_carry_the_key() {
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("127.0.0.1:7071"));
        let urls = ApiUrls::from_headers(&headers, None).expect("urls");
        assert_eq!(
            urls.status("a b"),
            "http://127.0.0.1:7071/runtime/webhooks/durabletask/instances/a%20b"
        );
        headers.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        headers.insert(
            "x-forwarded-host",
            HeaderValue::from_static("api.example.com, proxy"),
        );
        let urls = ApiUrls::from_headers(&headers, Some("k&y")).expect("urls");
        let m = urls.management("x");
        assert_eq!(
            m.terminate_post_uri,
            "https://api.example.com/runtime/webhooks/durabletask/instances/x/terminate?reason={text}&code=k%26y"
        );
        assert_eq!(
            m.send_event_post_uri,
            "https://api.example.com/runtime/webhooks/durabletask/instances/x/raiseEvent/{eventName}?code=k%26y"
        );
        assert_eq!(decode("k%26y+z%2"), Some("k&y z%2".to_string()));
        headers.insert("x-forwarded-host", HeaderValue::from_static("evil.com/x?"));
        assert!(ApiUrls::from_headers(&headers, None).is_err());
    }
}
