//! The Durable Functions HTTP API (feature `http`, on by default): the original's built-in
//! routes under [`BASE_PATH`], over the public [`Client`], so that existing Durable Functions
//! HTTP clients, the Python and JavaScript `DurableOrchestrationClient`s and scripts work
//! against a durable program unchanged.
//!
//! Mount it in your own axum app with [`router`], or serve it alone with [`serve`] (or
//! [`Runtime::serve_http`](crate::Runtime::serve_http)):
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use durable_runtime::Runtime;
//! use durable_runtime::http::HttpOptions;
//!
//! let runtime = Runtime::builder().sqlite("durable.db").start().await?;
//! let server = runtime.serve_http("127.0.0.1:7071", HttpOptions::new()).await?;
//! println!("serving on http://{}", server.local_addr());
//! // ... until it is time to stop:
//! server.shutdown().await;
//! runtime.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! | route | what | answers |
//! |---|---|---|
//! | `POST /orchestrators/{name}[/{instanceId}]` | start (body: the input) | 202 + `Location`, `Retry-After`, the management URLs; 400 unknown orchestrator, invalid id or JSON; 409 id in use |
//! | `GET /instances/{id}` | status (`showHistory`, `showHistoryOutput`, `showInput`, `returnInternalServerErrorOnFailure`) | 200 finished, 202 running (+ `Location`, `Retry-After`), 404 unknown, 500 failed if asked |
//! | `GET /instances` | list (`runtimeStatus`, `createdTimeFrom`, `createdTimeTo`, `instanceIdPrefix`, `showInput`, `top`; paging by `x-ms-continuation-token`) | 200 |
//! | `POST /instances/{id}/raiseEvent/{event}` | raise an event (body: its data) | 202; 404; 410 finished |
//! | `POST /instances/{id}/terminate?reason=` | terminate | 202; 404; 410 finished |
//! | `POST /instances/{id}/suspend?reason=`, `/resume?reason=` | suspend, resume | 202; 404; 409 not applicable; 410 finished |
//! | `POST /instances/{id}/rewind?reason=` | rewind a failed instance | 202; 404; 409/410 not failed |
//! | `POST /instances/{id}/restart?restartWithNewInstanceId=` | restart (new id by default) | 202 + the management URLs; 404; 409 |
//! | `DELETE /instances/{id}` | purge one | 200 `{"instancesDeleted":1}`; 404; 409 not finished |
//! | `GET /instances/{id}/history` | (ours, not the original's) the history as [`HistoryRecord`](crate::HistoryRecord)s, the stable export format | 200; 404 |
//! | `DELETE /instances` | purge by filter (`createdTimeFrom` (required, as in the original), `createdTimeTo`, `runtimeStatus`) | 200 `{"instancesDeleted":n}`; 400 without `createdTimeFrom`; 404 none matched |
//! | `POST /entities/{name}/{key}?op=` | signal an entity (body: the operation's input; `op` optional) | 202; 400 unknown entity name, invalid name or key, reserved operation, bad JSON |
//! | `GET /entities/{name}/{key}` | an entity's state | 200 the state as JSON; 404 no such entity (or no state) |
//! | `GET /entities/{name}`, `GET /entities` | list entities that exist (`fetchState`, `top`, `lastOperationTimeFrom`, `lastOperationTimeTo`; paging by `x-ms-continuation-token`) | 200 `[{"entityId":{"name","key"},"lastOperationTime","state"?}]` |
//!
//! Where we answer differently from the original, on purpose:
//! - A request that does not apply to the instance's status gets 409 and changes nothing
//!   (suspending a suspended instance, resuming a running one, rewinding one that has not
//!   failed, purging one that has not finished); the original answers 202 (or 200) and drops
//!   the request later, so a script cannot tell.
//! - Starting with the id of an existing instance is 409: the original replaces an instance
//!   in any state by default; here a finished instance is run again with `restart`, and a
//!   running one is never replaced silently.
//! - `timeout` and `pollingInterval` on start and restart (wait for completion) are not
//!   supported: the answer is always the 202, and clients poll `Location`.
//! - `X-Forwarded-Host` and `X-Forwarded-Proto` are always honoured when building the
//!   management URLs (the original needs a setting); the first value of a list is used.
//!   Behind a proxy that does not overwrite them, a client can choose the host its own URLs
//!   name. The URLs carry the key as `code=` when the request used one.
//! - A page of `GET /instances` is bounded by `top` (at most 1,000 instances), not by bytes:
//!   with large inputs and outputs, ask for smaller pages or `showInput=false`.
//!
//! Every error is a JSON body `{"code": "...", "message": "..."}`. Requests need the key, if
//! the server has one ([`HttpOptions::key`]), in `code=` or the `x-functions-key` header
//! (401 without it). Bodies are limited ([`HttpOptions::body_limit`], 413 over it) and must
//! be JSON (415 otherwise); each request has a time limit ([`HttpOptions::request_timeout`],
//! 503 past it).
//!
//! The server holds no engine logic: each route is one [`Client`] call, so everything the API
//! offers, a Rust program can do too.

mod body;
mod entities;
mod error;
mod instances;
mod json;
mod orchestrations;
mod query;
mod router;
mod serve;
mod time;
mod urls;

pub use router::router;
pub use serve::{HttpError, HttpServer, serve};
pub use time::{format_ms as format_time, parse_ms as parse_time};

use crate::client::Client;
use std::sync::Arc;
use std::time::Duration;

/// Where the API's routes live, as in Durable Functions.
pub const BASE_PATH: &str = "/runtime/webhooks/durabletask";

/// The default request body limit: 4 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 4 * 1024 * 1024;

/// The default time limit of one request: 30 s.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How the HTTP API is served.
///
/// ```
/// use durable_runtime::http::HttpOptions;
/// use std::time::Duration;
/// let options = HttpOptions::new()
///     .key("s3cret")
///     .body_limit(1024 * 1024)
///     .request_timeout(Duration::from_secs(10));
/// # let _ = options;
/// ```
#[derive(Clone, Debug)]
pub struct HttpOptions {
    key: Option<Arc<str>>,
    body_limit: usize,
    request_timeout: Duration,
    retry_after: Duration,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            key: None,
            body_limit: DEFAULT_BODY_LIMIT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            retry_after: Duration::from_secs(10),
        }
    }
}

impl HttpOptions {
    /// The defaults: no key (loopback only), a 4 MiB body limit, a 30 s request timeout.
    pub fn new() -> Self {
        Self::default()
    }

    /// The key every request must carry, in `code=KEY` or the `x-functions-key` header. A
    /// server that listens beyond loopback refuses to start without one
    /// ([`HttpError::KeyRequired`]). The URLs the API hands out carry it (`code=`), as the
    /// original's do.
    pub fn key(mut self, key: impl Into<String>) -> Self {
        let key = key.into();
        self.key = (!key.is_empty()).then(|| Arc::from(key));
        self
    }

    /// The largest request body, in bytes (default [`DEFAULT_BODY_LIMIT`]); a larger one is
    /// refused with 413 before it is read in full.
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// How long one request may take (default [`DEFAULT_REQUEST_TIMEOUT`]); past it, the
    /// answer is 503. A write the request made may still complete (it is not cancelled
    /// half-way): a retried start with an explicit id then answers 409.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// The `Retry-After` a 202 suggests for polling (default 10 s; whole seconds).
    pub fn retry_after(mut self, interval: Duration) -> Self {
        self.retry_after = interval;
        self
    }

    /// Whether a key is set.
    pub fn has_key(&self) -> bool {
        self.key.is_some()
    }
}

/// What every handler shares.
#[derive(Clone)]
struct ApiState {
    client: Client,
    options: HttpOptions,
}
