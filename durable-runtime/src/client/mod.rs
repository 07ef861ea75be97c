//! `Client`: start instances, query them, wait for them (here); manage them (`management.rs`:
//! scheduled starts, terminate, suspend, resume, restart, rewind; `purge.rs`: purges;
//! `entities.rs`: durable entities).

mod entities;
mod management;
mod purge;

pub use management::StartOptions;
pub(crate) use purge::purge_matching;

use crate::error::Error;
use crate::function::OrchestratorFn;
use crate::health::Health;
use crate::instance::{InstancePage, InstanceQuery, InstanceStatus};
use crate::payload::Payload;
use crate::store::{ErrorClass, NewInstance, StoreError, Write};
use crate::worker::Shared;
use serde::Serialize;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// What [`Client::start`] and [`Client::start_with_id`] return: resolves to the new instance's
/// id once its start is durable.
pub type StartFuture<'a> = Pin<Box<dyn Future<Output = Result<String, Error>> + Send + 'a>>;

/// Starts and manages orchestration instances. Cheap to clone.
///
/// ```no_run
/// use durable_runtime::prelude::*;
///
/// #[orchestrator]
/// async fn greet(ctx: OrchestrationContext, name: String) -> String {
///     format!("hello {name}")
/// }
///
/// # async fn demo(client: Client) -> Result<(), durable_runtime::Error> {
/// let id = client.start(greet, "Ada".to_string()).await?;
/// let status = client.wait_for_completion(&id, Duration::from_secs(5)).await?;
/// let greeting: String = status.output_as()?;
/// # let _ = greeting; Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    shared: Arc<Shared>,
    /// A handle without workers ([`RuntimeBuilder::open_client`](crate::RuntimeBuilder::open_client)):
    /// starts by name need not find the orchestrator linked in.
    detached: bool,
}

impl Client {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Client {
            shared,
            detached: false,
        }
    }

    pub(crate) fn detached(shared: Arc<Shared>) -> Self {
        Client {
            shared,
            detached: true,
        }
    }

    /// Starts `orchestrator` with `input` under a fresh instance id, returned once the start is
    /// durable. `orchestrator` is the function marked `#[orchestrator]` (see
    /// [`OrchestratorFn`]); for a function without the attribute this is
    /// [`Error::NotAnOrchestrator`]. A store that cannot take writes now (a full disk) answers
    /// at once with [`Error::StoreUnavailable`]: nothing was started.
    pub fn start<F: OrchestratorFn<M>, M>(
        &self,
        orchestrator: F,
        input: F::Input,
    ) -> StartFuture<'_> {
        self.start_with_id(orchestrator, new_instance_id(), input)
    }

    /// Starts `orchestrator` under `instance_id`; an id already in use is
    /// [`Error::InstanceAlreadyExists`].
    pub fn start_with_id<F: OrchestratorFn<M>, M>(
        &self,
        orchestrator: F,
        instance_id: impl Into<String>,
        input: F::Input,
    ) -> StartFuture<'_> {
        let _ = orchestrator;
        // Everything that depends on `F` happens here, so that the future does not: a function
        // that is not an orchestrator is one compile error at the argument, not one more at
        // the `.await`.
        let start = match crate::registry::orchestrator_of::<F>() {
            None => Err(Error::NotAnOrchestrator(std::any::type_name::<F>())),
            Some(registration) => self.encode("input", &input).map(|input| {
                (
                    registration.name,
                    registration.version.map(str::to_string),
                    input,
                )
            }),
        };
        let instance_id = instance_id.into();
        Box::pin(async move {
            let (name, version, input) = start?;
            self.create(name, version, instance_id, input, None).await
        })
    }

    /// Starts the orchestrator registered as `name` (for inputs from HTTP or a CLI). The input
    /// is checked against the orchestrator's type when it runs: a mismatch fails the instance
    /// with a message naming the type. A name no orchestrator of this program has is
    /// [`Error::UnknownOrchestrator`] (on a handle without workers, see
    /// [`RuntimeBuilder::open_client`](crate::RuntimeBuilder::open_client), it is left to
    /// the runtime that runs the instance). To start it later, see
    /// [`start_by_name_with`](Self::start_by_name_with).
    pub async fn start_by_name(
        &self,
        name: &str,
        instance_id: Option<String>,
        input: impl Serialize,
    ) -> Result<String, Error> {
        let options = StartOptions {
            instance_id,
            scheduled_start: None,
        };
        self.start_by_name_with(name, input, options).await
    }

    /// The registered name and version a start by `name` runs.
    fn orchestrator_named<'a>(&self, name: &'a str) -> Result<(&'a str, Option<String>), Error> {
        match self.shared.registry.orchestrator(name) {
            Some(registration) => Ok((registration.name, registration.version.map(str::to_string))),
            // A handle without workers cannot know what the runtime that runs the instance
            // links in: that runtime checks the name.
            None if self.detached && !name.is_empty() => Ok((name, None)),
            None => Err(Error::UnknownOrchestrator(name.to_string())),
        }
    }

    /// Creates an instance; with `start_at_ms` in the future, its start waits for a timer.
    async fn create(
        &self,
        name: &str,
        version: Option<String>,
        instance_id: String,
        input: Payload,
        start_at_ms: Option<i64>,
    ) -> Result<String, Error> {
        validate_instance_id(&instance_id)?;
        let new = NewInstance {
            instance_id: instance_id.clone(),
            execution_id: new_instance_id().into(),
            name: name.to_string(),
            version,
            input,
            created_ms: self.shared.clock.now_ms(),
        };
        let write = match start_at_ms {
            Some(start_at_ms) if start_at_ms > new.created_ms => Write::ScheduleInstance {
                instance: new,
                start_at_ms,
            },
            _ => Write::CreateInstance(new),
        };
        match self.shared.commit(write).await {
            Ok(_) => Ok(instance_id),
            Err(StoreError::InstanceExists(id)) => Err(Error::InstanceAlreadyExists(id)),
            Err(err) => Err(self.write_failed(err)),
        }
    }

    /// The error a client write that failed with `err` returns. A transient error is not
    /// retried here (the caller decides, and must not hang on a full disk): it is
    /// [`Error::StoreUnavailable`], and marks the store degraded.
    fn write_failed(&self, err: StoreError) -> Error {
        if err.class() == ErrorClass::Transient {
            self.shared.health.write_refused(&err);
            Error::StoreUnavailable(err)
        } else {
            err.into()
        }
    }

    /// Whether the runtime's writes are getting through (see
    /// [`Runtime::health`](crate::Runtime::health)): for a health probe that holds only a
    /// client.
    pub fn health(&self) -> Health {
        self.shared.health.current()
    }

    /// Encodes a payload, refusing one over the runtime's payload limit.
    fn encode(&self, what: &'static str, value: &impl Serialize) -> Result<Payload, Error> {
        let payload = Payload::encode(value).map_err(Error::Serialize)?;
        let limit = self.shared.limits.max_payload_bytes;
        let size = payload.as_str().len();
        if size > limit {
            return Err(Error::PayloadTooLarge { what, size, limit });
        }
        Ok(payload)
    }

    /// Sends the event `name` with `data` to a running instance, returning once it is durable.
    /// The instance receives it through `ctx.wait_for_event(name)` (buffered until it waits).
    /// An unknown instance is [`Error::InstanceNotFound`]; a finished one,
    /// [`Error::InstanceFinished`]; a store that cannot take writes now,
    /// [`Error::StoreUnavailable`] (the event was not recorded).
    pub async fn raise_event(
        &self,
        instance_id: &str,
        name: &str,
        data: impl Serialize,
    ) -> Result<(), Error> {
        self.raise(instance_id, name, &data, None).await
    }

    /// [`raise_event`](Self::raise_event) for callers that may send the same event twice (an
    /// HTTP request retried after a timeout): an event raised to this instance with the same
    /// `idempotency_key` before is not recorded again, and the call succeeds.
    ///
    /// ```no_run
    /// # async fn demo(client: durable_runtime::Client) -> Result<(), durable_runtime::Error> {
    /// client.raise_event_once("order-42", "approved", true, "request-7f3a").await?;
    /// client.raise_event_once("order-42", "approved", true, "request-7f3a").await?; // no-op
    /// # Ok(()) }
    /// ```
    pub async fn raise_event_once(
        &self,
        instance_id: &str,
        name: &str,
        data: impl Serialize,
        idempotency_key: &str,
    ) -> Result<(), Error> {
        self.raise(instance_id, name, &data, Some(idempotency_key.to_string()))
            .await
    }

    async fn raise(
        &self,
        instance_id: &str,
        name: &str,
        data: &impl Serialize,
        idempotency_key: Option<String>,
    ) -> Result<(), Error> {
        let input = self.encode("event data", data)?;
        let write = Write::RaiseEvent {
            instance_id: instance_id.to_string(),
            name: name.to_string(),
            input,
            idempotency_key,
        };
        match self.shared.commit(write).await {
            // Sent now, or (a repeated idempotency key) sent before.
            Ok(_) => Ok(()),
            Err(err @ StoreError::InstanceNotFound(_)) => Err(store_error(err)),
            Err(StoreError::InstanceFinished {
                instance_id,
                status,
            }) => Err(Error::InstanceFinished {
                instance_id,
                status,
            }),
            Err(err) => Err(self.write_failed(err)),
        }
    }

    /// The instance's status, or `None` if no instance has this id.
    pub async fn get_status(&self, instance_id: &str) -> Result<Option<InstanceStatus>, Error> {
        Ok(self.shared.store.read_instance(instance_id).await?)
    }

    /// The instance's status with its full history.
    pub async fn get_status_with_history(
        &self,
        instance_id: &str,
    ) -> Result<Option<InstanceStatus>, Error> {
        let Some(mut status) = self.get_status(instance_id).await? else {
            return Ok(None);
        };
        status.history = Some(self.shared.store.read_history(instance_id).await?);
        Ok(Some(status))
    }

    /// Waits until the instance completes, fails or is terminated, and returns its status.
    ///
    /// Wakes on the commit that finishes it, in this process; a finish this process does not
    /// see (another worker process sharing the store) is noticed by re-reading the status at
    /// least every [`COMPLETION_POLL_INTERVAL`].
    pub async fn wait_for_completion(
        &self,
        instance_id: &str,
        timeout: Duration,
    ) -> Result<InstanceStatus, Error> {
        let waited = tokio::time::timeout(timeout, async {
            let not_found = || Error::InstanceNotFound(instance_id.to_string());
            loop {
                // Watch before reading, so a finish between the read and the wait is not missed.
                let finished = self.shared.dispatcher.watch(instance_id);
                // The status alone until it is terminal: the whole row carries the input (and
                // a large one would be read at every wake-up).
                let runtime_status = self
                    .shared
                    .store
                    .read_runtime_status(instance_id)
                    .await?
                    .ok_or_else(not_found)?;
                if runtime_status.is_terminal() {
                    let status = self.get_status(instance_id).await?.ok_or_else(not_found)?;
                    // Not terminal any more only if restarted meanwhile: wait for that run.
                    if status.runtime_status.is_terminal() {
                        return Ok(status);
                    }
                }
                // A wake-up is a hint to read again, never a status in itself.
                let _ = tokio::time::timeout(COMPLETION_POLL_INTERVAL, finished).await;
            }
        })
        .await;
        self.shared.dispatcher.forget_abandoned_waits(instance_id);
        waited.unwrap_or_else(|_| {
            Err(Error::Timeout {
                instance_id: instance_id.to_string(),
                timeout,
            })
        })
    }

    /// One page of instances matching `query`.
    pub async fn list(&self, query: &InstanceQuery) -> Result<InstancePage, Error> {
        Ok(self.shared.store.list_instances(query).await?)
    }
}

/// The client's error for a store error: the typed refusals a caller can act on, or the store
/// error itself.
fn store_error(err: StoreError) -> Error {
    match err {
        StoreError::InstanceNotFound(id) => Error::InstanceNotFound(id),
        StoreError::NotApplicable {
            operation,
            instance_id,
            status,
        } => Error::NotApplicable {
            operation,
            instance_id,
            status,
        },
        StoreError::InstanceExists(id) => Error::InstanceAlreadyExists(id),
        other => Error::Store(other),
    }
}

/// The longest [`Client::wait_for_completion`] goes without reading the instance's status.
pub const COMPLETION_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// A fresh instance id: 32 hex digits, like Durable Functions' GUIDs without dashes.
fn new_instance_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Ids travel in URLs and file listings: refuse what would break either.
fn validate_instance_id(id: &str) -> Result<(), Error> {
    match crate::instance::instance_id_problem(id) {
        Some(reason) => Err(Error::InvalidInstanceId {
            id: id.to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_ids_are_validated() {
        assert!(validate_instance_id("order-42").is_ok());
        assert!(validate_instance_id("").is_err());
        assert!(validate_instance_id("a/b").is_err());
        assert!(validate_instance_id("a\nb").is_err());
        assert!(validate_instance_id(&"x".repeat(257)).is_err());
    }

    #[test]
    fn fresh_ids_are_unique_and_valid() {
        let a = new_instance_id();
        assert_ne!(a, new_instance_id());
        assert!(validate_instance_id(&a).is_ok());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_client_only_handle_keeps_nothing_in_memory_for_its_writes() {
        let dir = tempfile::tempdir().expect("temp dir");
        let client = crate::Runtime::builder()
            .sqlite(dir.path().join("store.db"))
            .open_client()
            .await
            .expect("opens");
        for i in 0..200 {
            let id = client
                .start_by_name("anything", Some(format!("i{i}")), i)
                .await
                .expect("started");
            client.raise_event(&id, "e", i).await.expect("raised");
        }
        // Everything is in the store for the next runtime; nothing waits in this process's
        // dispatcher (a long-lived management service would grow without bound).
        assert_eq!(client.shared.dispatcher.backlog(), (0, 0));
        let last = client.get_status("i199").await.expect("reads");
        assert_eq!(
            last.map(|status| status.runtime_status),
            Some(crate::RuntimeStatus::Pending)
        );
    }
}
