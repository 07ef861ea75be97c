//! Commands over a server's Durable Functions HTTP API.

use crate::target::{CliError, EntityFilter, ListFilter};
use durable_runtime::http::{BASE_PATH, format_time};
use durable_runtime::{EntityId, HistoryRecord};
use reqwest::{RequestBuilder, Response, StatusCode};
use serde_json::Value;

pub struct HttpTarget {
    http: reqwest::Client,
    base: String,
    key: Option<String>,
}

impl HttpTarget {
    pub fn new(url: &str, key: Option<&str>) -> Result<Self, CliError> {
        let url = url.trim_end_matches('/');
        if !url.starts_with("http://") {
            return Err(CliError::Usage(format!(
                "--url must be an http:// URL (this build speaks plain HTTP; put a TLS proxy in \
                 front for https), not '{url}'"
            )));
        }
        // A URL given with the base path already is taken as it is.
        let base = if url.ends_with(BASE_PATH) {
            url.to_string()
        } else {
            format!("{url}{BASE_PATH}")
        };
        Ok(HttpTarget {
            http: reqwest::Client::new(),
            base,
            key: key.filter(|key| !key.is_empty()).map(str::to_string),
        })
    }

    fn instance(&self, id: &str) -> String {
        format!("{}/instances/{}", self.base, encode(id))
    }

    /// Sends `request` (with the key), and returns the response if it succeeded; otherwise
    /// the server's error message.
    async fn send(&self, request: RequestBuilder) -> Result<Response, CliError> {
        let request = match &self.key {
            Some(key) => request.header("x-functions-key", key),
            None => request,
        };
        let response = request.send().await.map_err(|err| {
            CliError::Http(format!("cannot reach the server at {}: {err}", self.base))
        })?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        let message = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|body| body["message"].as_str().map(str::to_string))
            .unwrap_or_else(|| {
                if text.is_empty() {
                    "no message".into()
                } else {
                    text
                }
            });
        Err(CliError::Api { status, message })
    }

    async fn json<T: serde::de::DeserializeOwned>(response: Response) -> Result<T, CliError> {
        response.json().await.map_err(|err| {
            CliError::Http(format!(
                "the server's answer is not what was expected: {err}"
            ))
        })
    }

    pub async fn start(
        &self,
        name: &str,
        id: Option<String>,
        input: Value,
    ) -> Result<String, CliError> {
        let url = match &id {
            Some(id) => format!(
                "{}/orchestrators/{}/{}",
                self.base,
                encode(name),
                encode(id)
            ),
            None => format!("{}/orchestrators/{}", self.base, encode(name)),
        };
        let response = self.send(self.http.post(url).json(&input)).await?;
        let body: Value = Self::json(response).await?;
        body["id"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| CliError::Http("the server's answer to a start has no id".into()))
    }

    pub async fn status(&self, id: &str) -> Result<Value, CliError> {
        let response = self.send(self.http.get(self.instance(id))).await?;
        Self::json(response).await
    }

    pub async fn list_page(
        &self,
        filter: &ListFilter,
        page_size: u32,
        token: Option<String>,
    ) -> Result<(Vec<Value>, Option<String>), CliError> {
        let mut query = filter_query(filter);
        query.push(("top", page_size.to_string()));
        if let Some(prefix) = &filter.prefix {
            query.push(("instanceIdPrefix", prefix.clone()));
        }
        let mut request = self
            .http
            .get(format!("{}/instances", self.base))
            .query(&query);
        if let Some(token) = token {
            request = request.header("x-ms-continuation-token", token);
        }
        let response = self.send(request).await?;
        let next = response
            .headers()
            .get("x-ms-continuation-token")
            .and_then(|value| value.to_str().ok())
            .map(str::to_string);
        Ok((Self::json(response).await?, next))
    }

    pub async fn history(&self, id: &str) -> Result<Vec<HistoryRecord>, CliError> {
        let response = self
            .send(self.http.get(format!("{}/history", self.instance(id))))
            .await?;
        Self::json(response).await
    }

    pub async fn raise_event(&self, id: &str, name: &str, data: Value) -> Result<(), CliError> {
        let url = format!("{}/raiseEvent/{}", self.instance(id), encode(name));
        self.send(self.http.post(url).json(&data)).await?;
        Ok(())
    }

    pub async fn manage(&self, op: &str, id: &str, reason: &str) -> Result<(), CliError> {
        let url = format!("{}/{op}", self.instance(id));
        self.send(self.http.post(url).query(&[("reason", reason)]))
            .await?;
        Ok(())
    }

    pub async fn restart(&self, id: &str, new_id: bool) -> Result<String, CliError> {
        let url = format!("{}/restart", self.instance(id));
        let request = self
            .http
            .post(url)
            .query(&[("restartWithNewInstanceId", new_id.to_string())]);
        let body: Value = Self::json(self.send(request).await?).await?;
        body["id"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| CliError::Http("the server's answer to a restart has no id".into()))
    }

    fn entity(&self, id: &EntityId) -> String {
        format!(
            "{}/entities/{}/{}",
            self.base,
            encode(id.name()),
            encode(id.key())
        )
    }

    /// The entity's state; `None` when the server answers 404 (no such entity).
    pub async fn entity_state(&self, id: &EntityId) -> Result<Option<Value>, CliError> {
        match self.send(self.http.get(self.entity(id))).await {
            Ok(response) => Ok(Some(Self::json(response).await?)),
            Err(CliError::Api { status, .. }) if status == StatusCode::NOT_FOUND.as_u16() => {
                Ok(None)
            }
            Err(err) => Err(err),
        }
    }

    pub async fn signal_entity(
        &self,
        id: &EntityId,
        op: &str,
        input: Value,
    ) -> Result<(), CliError> {
        let request = self
            .http
            .post(self.entity(id))
            .query(&[("op", op)])
            .json(&input);
        self.send(request).await?;
        Ok(())
    }

    pub async fn entity_page(
        &self,
        filter: &EntityFilter,
        page_size: u32,
        token: Option<String>,
    ) -> Result<(Vec<Value>, Option<String>), CliError> {
        let url = match &filter.name {
            Some(name) => format!("{}/entities/{}", self.base, encode(name)),
            None => format!("{}/entities", self.base),
        };
        let mut query = vec![
            ("top", page_size.to_string()),
            ("fetchState", filter.fetch_state.to_string()),
        ];
        if let Some(from) = filter.from {
            query.push(("lastOperationTimeFrom", format_time(from)));
        }
        if let Some(to) = filter.to {
            query.push(("lastOperationTimeTo", format_time(to)));
        }
        let mut request = self.http.get(url).query(&query);
        if let Some(token) = token {
            request = request.header("x-ms-continuation-token", token);
        }
        let response = self.send(request).await?;
        let next = response
            .headers()
            .get("x-ms-continuation-token")
            .and_then(|value| value.to_str().ok())
            .map(str::to_string);
        Ok((Self::json(response).await?, next))
    }

    pub async fn purge(&self, id: &str) -> Result<u64, CliError> {
        let body: Value = Self::json(self.send(self.http.delete(self.instance(id))).await?).await?;
        Ok(body["instancesDeleted"].as_u64().unwrap_or(0))
    }

    pub async fn purge_by(&self, filter: &ListFilter) -> Result<u64, CliError> {
        let mut query = filter_query(filter);
        // The API requires `createdTimeFrom` (so that a request that lost its filter purges
        // nothing); the command line's filter was given on purpose, from the beginning of time.
        if filter.from.is_none() {
            query.push(("createdTimeFrom", format_time(0)));
        }
        let request = self
            .http
            .delete(format!("{}/instances", self.base))
            .query(&query);
        match self.send(request).await {
            Ok(response) => {
                let body: Value = Self::json(response).await?;
                Ok(body["instancesDeleted"].as_u64().unwrap_or(0))
            }
            // The API answers 404 when nothing matched: for the CLI, that is 0 purged.
            Err(CliError::Api { status, .. }) if status == StatusCode::NOT_FOUND.as_u16() => Ok(0),
            Err(err) => Err(err),
        }
    }
}

/// The query parameters of a status/time filter.
fn filter_query(filter: &ListFilter) -> Vec<(&'static str, String)> {
    let mut query = Vec::new();
    if !filter.statuses.is_empty() {
        let statuses: Vec<&str> = filter.statuses.iter().map(|s| s.as_str()).collect();
        query.push(("runtimeStatus", statuses.join(",")));
    }
    if let Some(from) = filter.from {
        query.push(("createdTimeFrom", format_time(from)));
    }
    if let Some(to) = filter.to {
        query.push(("createdTimeTo", format_time(to)));
    }
    query
}

/// Percent-encodes a path segment.
fn encode(text: &str) -> String {
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
