//! Serving the API on its own: bind, refuse a key-less bind beyond loopback, shut down
//! gracefully.

use super::{HttpOptions, router};
use crate::client::Client;
use crate::runtime::Runtime;
use std::net::SocketAddr;
use tokio::net::{TcpListener, ToSocketAddrs};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Why the HTTP API could not be served.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The address could not be bound (in use, not local, no permission).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: String,
        /// The system's reason.
        #[source]
        source: std::io::Error,
    },
    /// The server would listen beyond loopback without a key: anyone who reaches the
    /// address could manage every instance.
    #[error(
        "refusing to serve the HTTP API on {addr} without a key: it is reachable beyond \
         loopback; set one with HttpOptions::key, or listen on 127.0.0.1"
    )]
    KeyRequired {
        /// The address bound.
        addr: SocketAddr,
    },
}

/// A running HTTP API server; stop it with [`shutdown`](Self::shutdown). Dropping it stops
/// it too, without waiting.
pub struct HttpServer {
    local_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl HttpServer {
    /// The address it listens on (with the port chosen, if `:0` was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops taking connections and waits for the requests in flight to be answered.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => tracing::warn!(error = %err, "HTTP API server ended with an error"),
                Err(err) => tracing::warn!(error = %err, "HTTP API server task failed"),
            }
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Serves the API of `client` on `addr` in a task of its own, until
/// [`HttpServer::shutdown`]. Refuses ([`HttpError::KeyRequired`]) to listen beyond loopback
/// without a key.
pub async fn serve(
    client: Client,
    addr: impl ToSocketAddrs + std::fmt::Display,
    options: HttpOptions,
) -> Result<HttpServer, HttpError> {
    let asked = addr.to_string();
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| HttpError::Bind {
            addr: asked.clone(),
            source,
        })?;
    let local_addr = listener.local_addr().map_err(|source| HttpError::Bind {
        addr: asked,
        source,
    })?;
    // Checked on the address actually bound: a name that resolves beyond loopback counts.
    if !local_addr.ip().to_canonical().is_loopback() && !options.has_key() {
        return Err(HttpError::KeyRequired { addr: local_addr });
    }
    let app = router(client, options);
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await
    });
    tracing::info!(addr = %local_addr, "serving the Durable Functions HTTP API");
    Ok(HttpServer {
        local_addr,
        stop: Some(stop),
        task: Some(task),
    })
}

impl Runtime {
    /// Serves the Durable Functions HTTP API of this runtime on `addr` (see
    /// [`http`](crate::http)); [`serve`] with this runtime's client.
    ///
    /// ```no_run
    /// # async fn demo(runtime: durable_runtime::Runtime) -> Result<(), durable_runtime::http::HttpError> {
    /// use durable_runtime::http::HttpOptions;
    /// let server = runtime.serve_http("0.0.0.0:7071", HttpOptions::new().key("s3cret")).await?;
    /// # server.shutdown().await; Ok(()) }
    /// ```
    pub async fn serve_http(
        &self,
        addr: impl ToSocketAddrs + std::fmt::Display,
        options: HttpOptions,
    ) -> Result<HttpServer, HttpError> {
        serve(self.client(), addr, options).await
    }
}
