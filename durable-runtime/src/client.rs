//! `Client`: start instances, query them, wait for them.

use crate::error::Error;
use crate::history::now_ms;
use crate::instance::{InstancePage, InstanceQuery, InstanceStatus};
use crate::payload::Payload;
use crate::registry::Orchestrator;
use crate::store::{NewInstance, StoreError, Write, Written};
use crate::worker::Shared;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;

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
}

impl Client {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Client { shared }
    }

    /// Starts `orchestrator` with `input` under a fresh instance id, returned once the start is
    /// durable.
    pub async fn start<O: Orchestrator>(
        &self,
        orchestrator: O,
        input: O::Input,
    ) -> Result<String, Error> {
        self.start_with_id(orchestrator, new_instance_id(), input)
            .await
    }

    /// Starts `orchestrator` under `instance_id`; an id already in use is
    /// [`Error::InstanceAlreadyExists`].
    pub async fn start_with_id<O: Orchestrator>(
        &self,
        orchestrator: O,
        instance_id: impl Into<String>,
        input: O::Input,
    ) -> Result<String, Error> {
        let _ = orchestrator;
        let input = Payload::encode(&input).map_err(Error::Serialize)?;
        self.create(
            O::NAME,
            O::VERSION.map(str::to_string),
            instance_id.into(),
            input,
        )
        .await
    }

    /// Starts the orchestrator registered as `name` (for inputs from HTTP or a CLI). The input
    /// is checked against the orchestrator's type when it runs: a mismatch fails the instance
    /// with a message naming the type.
    pub async fn start_by_name(
        &self,
        name: &str,
        instance_id: Option<String>,
        input: impl Serialize,
    ) -> Result<String, Error> {
        let registration = self
            .shared
            .registry
            .orchestrator(name)
            .ok_or_else(|| Error::UnknownOrchestrator(name.to_string()))?;
        let input = Payload::encode(&input).map_err(Error::Serialize)?;
        let id = instance_id.unwrap_or_else(new_instance_id);
        self.create(
            registration.name,
            registration.version.map(str::to_string),
            id,
            input,
        )
        .await
    }

    async fn create(
        &self,
        name: &str,
        version: Option<String>,
        instance_id: String,
        input: Payload,
    ) -> Result<String, Error> {
        validate_instance_id(&instance_id)?;
        let new = NewInstance {
            instance_id: instance_id.clone(),
            name: name.to_string(),
            version,
            input,
            created_ms: now_ms(),
        };
        match self.shared.store.write(Write::CreateInstance(new)).await {
            Ok(Written::Instance(message)) => {
                self.shared.dispatcher.deliver(message);
                Ok(instance_id)
            }
            Ok(_) => Err(StoreError::UnexpectedAnswer("create-instance").into()),
            Err(StoreError::InstanceExists(id)) => Err(Error::InstanceAlreadyExists(id)),
            Err(err) => Err(err.into()),
        }
    }

    /// Sends the event `name` with `data` to a running instance, returning once it is durable.
    /// The instance receives it through `ctx.wait_for_event(name)` (buffered until it waits).
    /// An unknown instance is [`Error::InstanceNotFound`]; a finished one,
    /// [`Error::InstanceFinished`].
    pub async fn raise_event(
        &self,
        instance_id: &str,
        name: &str,
        data: impl Serialize,
    ) -> Result<(), Error> {
        let input = Payload::encode(&data).map_err(Error::Serialize)?;
        let write = Write::RaiseEvent {
            instance_id: instance_id.to_string(),
            name: name.to_string(),
            input,
            idempotency_key: None,
        };
        match self.shared.store.write(write).await {
            Ok(Written::Delivered(Some(message))) => {
                self.shared.dispatcher.deliver(message);
                Ok(())
            }
            // Recorded before (a repeated idempotency key): nothing to deliver again.
            Ok(Written::Delivered(None)) => Ok(()),
            Ok(_) => Err(StoreError::UnexpectedAnswer("raise-event").into()),
            Err(StoreError::InstanceNotFound(id)) => Err(Error::InstanceNotFound(id)),
            Err(StoreError::InstanceFinished {
                instance_id,
                status,
            }) => Err(Error::InstanceFinished {
                instance_id,
                status,
            }),
            Err(err) => Err(err.into()),
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
    /// Wakes on the commit that finishes it (no polling).
    pub async fn wait_for_completion(
        &self,
        instance_id: &str,
        timeout: Duration,
    ) -> Result<InstanceStatus, Error> {
        // Watch before reading, so a finish between the read and the wait is not missed.
        let finished = self.shared.dispatcher.watch(instance_id);
        let status = self
            .get_status(instance_id)
            .await?
            .ok_or_else(|| Error::InstanceNotFound(instance_id.to_string()))?;
        if status.runtime_status.is_terminal() {
            drop(finished);
            self.shared.dispatcher.forget_abandoned_waits(instance_id);
            return Ok(status);
        }
        match tokio::time::timeout(timeout, finished).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(Error::ShutDown),
            Err(_) => {
                self.shared.dispatcher.forget_abandoned_waits(instance_id);
                return Err(Error::Timeout {
                    instance_id: instance_id.to_string(),
                    timeout,
                });
            }
        }
        self.get_status(instance_id)
            .await?
            .ok_or_else(|| Error::InstanceNotFound(instance_id.to_string()))
    }

    /// One page of instances matching `query`.
    pub async fn list(&self, query: &InstanceQuery) -> Result<InstancePage, Error> {
        Ok(self.shared.store.list_instances(query).await?)
    }
}

/// A fresh instance id: 32 hex digits, like Durable Functions' GUIDs without dashes.
fn new_instance_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Ids travel in URLs and file listings: refuse what would break either.
fn validate_instance_id(id: &str) -> Result<(), Error> {
    let reason = if id.is_empty() {
        Some("it is empty")
    } else if id.len() > 256 {
        Some("it is longer than 256 bytes")
    } else if id.chars().any(|c| c.is_control()) {
        Some("it contains a control character")
    } else if id.chars().any(|c| matches!(c, '/' | '\\' | '#' | '?')) {
        Some("it contains one of / \\ # ?")
    } else {
        None
    };
    match reason {
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
}
