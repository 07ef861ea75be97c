//! Commands on a store file, through a client-only handle (`RuntimeBuilder::open_client`):
//! the public read and management calls, never the tables.

use crate::target::{CliError, EntityFilter, ListFilter};
use durable_runtime::http::format_time;
use durable_runtime::store::{EntityQuery, StoreError};
use durable_runtime::{
    Client, EntityId, Error, HistoryRecord, InstanceQuery, InstanceStatus, PurgeFilter, Runtime,
};
use serde_json::{Value, json};
use std::path::Path;

pub struct StoreTarget {
    client: Client,
}

impl StoreTarget {
    pub async fn open(path: &Path) -> Result<Self, CliError> {
        if !path.exists() {
            return Err(CliError::Usage(format!(
                "no store at {}: give the path of an existing store file",
                path.display()
            )));
        }
        match Runtime::builder().sqlite(path).open_client().await {
            Ok(client) => Ok(StoreTarget { client }),
            Err(Error::Store(StoreError::Locked { .. })) => Err(CliError::Usage(format!(
                "the store {} is in use by a running runtime: use --url to talk to its server",
                path.display()
            ))),
            Err(err) => Err(err.into()),
        }
    }

    pub async fn start(
        &self,
        name: &str,
        id: Option<String>,
        input: Value,
    ) -> Result<String, CliError> {
        Ok(self.client.start_by_name(name, id, input).await?)
    }

    pub async fn status(&self, id: &str) -> Result<Value, CliError> {
        let status = self
            .client
            .get_status(id)
            .await?
            .ok_or_else(|| Error::InstanceNotFound(id.to_string()))?;
        Ok(status_json(&status, true))
    }

    pub async fn list_page(
        &self,
        filter: &ListFilter,
        page_size: u32,
        token: Option<String>,
    ) -> Result<(Vec<Value>, Option<String>), CliError> {
        let query = InstanceQuery {
            statuses: filter.statuses.clone(),
            created_from_ms: filter.from,
            created_to_ms: filter.to,
            instance_id_prefix: filter.prefix.clone(),
            name: None,
            page_size,
            continuation_token: token,
        };
        let page = self.client.list(&query).await?;
        let statuses = page
            .instances
            .iter()
            .map(|status| status_json(status, false))
            .collect();
        Ok((statuses, page.continuation_token))
    }

    pub async fn history(&self, id: &str) -> Result<Vec<HistoryRecord>, CliError> {
        let status = self
            .client
            .get_status_with_history(id)
            .await?
            .ok_or_else(|| Error::InstanceNotFound(id.to_string()))?;
        Ok(status.history.unwrap_or_default())
    }

    pub async fn raise_event(&self, id: &str, name: &str, data: Value) -> Result<(), CliError> {
        Ok(self.client.raise_event(id, name, data).await?)
    }

    pub async fn manage(&self, op: &str, id: &str, reason: &str) -> Result<(), CliError> {
        match op {
            "terminate" => self.client.terminate(id, reason).await?,
            "suspend" => self.client.suspend(id, reason).await?,
            "resume" => self.client.resume(id, reason).await?,
            "rewind" => self.client.rewind(id, reason).await?,
            other => return Err(CliError::Usage(format!("no operation '{other}'"))),
        }
        Ok(())
    }

    pub async fn restart(&self, id: &str, new_id: bool) -> Result<String, CliError> {
        Ok(self.client.restart(id, new_id).await?)
    }

    pub async fn entity_state(&self, id: &EntityId) -> Result<Option<Value>, CliError> {
        Ok(self.client.read_entity_state::<Value>(id).await?)
    }

    /// Queues the operation in the store: the runtime that next opens the store runs it.
    pub async fn signal_entity(
        &self,
        id: &EntityId,
        op: &str,
        input: Value,
    ) -> Result<(), CliError> {
        Ok(self.client.signal_entity_by_name(id, op, input).await?)
    }

    pub async fn entity_page(
        &self,
        filter: &EntityFilter,
        page_size: u32,
        token: Option<String>,
    ) -> Result<(Vec<Value>, Option<String>), CliError> {
        if let Some(name) = &filter.name {
            // Checked as a path segment would be, so both targets refuse the same names.
            EntityId::new(name.clone(), "-")
                .check()
                .map_err(Error::from)?;
        }
        let query = EntityQuery {
            // `name@`: exactly this name, not the names it is a prefix of.
            name_prefix: filter.name.as_ref().map(|name| format!("{name}@")),
            // As the HTTP API lists: the entities that exist.
            with_state_only: true,
            last_operation_from_ms: filter.from,
            last_operation_to_ms: filter.to,
            page_size: page_size as usize,
            continuation_token: token,
        };
        let page = self.client.list_entities(&query).await?;
        let entities = page
            .entities
            .iter()
            .map(|record| {
                let (name, key) = match record.entity_id.parse::<EntityId>() {
                    Ok(id) => (id.name().to_string(), id.key().to_string()),
                    Err(_) => (record.entity_id.clone(), String::new()),
                };
                let mut entity = json!({
                    "entityId": { "name": name, "key": key },
                    "lastOperationTime": format_time(record.updated_ms),
                });
                if filter.fetch_state {
                    entity["state"] = record
                        .state
                        .as_ref()
                        .and_then(|state| serde_json::from_str(state.as_str()).ok())
                        .unwrap_or(Value::Null);
                }
                entity
            })
            .collect();
        Ok((entities, page.continuation_token))
    }

    pub async fn purge(&self, id: &str) -> Result<u64, CliError> {
        self.client.purge(id).await?;
        Ok(1)
    }

    pub async fn purge_by(&self, filter: &ListFilter) -> Result<u64, CliError> {
        let filter = PurgeFilter {
            created_from_ms: filter.from,
            created_to_ms: filter.to,
            updated_to_ms: None,
            statuses: filter.statuses.clone(),
        };
        Ok(self.client.purge_by(&filter).await?)
    }
}

/// A status in the HTTP API's JSON shape, so that output is the same for both targets.
fn status_json(status: &InstanceStatus, show_input: bool) -> Value {
    let parse = |payload: &durable_runtime::Payload| {
        serde_json::from_str::<Value>(payload.as_str()).unwrap_or(Value::Null)
    };
    let output = match (&status.output, &status.failure) {
        (Some(output), _) => parse(output),
        (None, Some(failure)) => Value::String(failure.message.clone()),
        (None, None) => Value::Null,
    };
    json!({
        "name": status.name,
        "instanceId": status.instance_id,
        "runtimeStatus": status.runtime_status.as_str(),
        "input": if show_input { parse(&status.input) } else { Value::Null },
        "customStatus": status.custom_status.as_ref().map(parse),
        "output": output,
        "createdTime": format_time(status.created_ms),
        "lastUpdatedTime": format_time(status.last_updated_ms),
    })
}
