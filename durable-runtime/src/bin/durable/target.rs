//! Where the commands go: a server's HTTP API, or a store file. Both answer in the API's
//! shapes (statuses as its camelCase JSON, histories as `HistoryRecord`s), so the output
//! does not depend on the target.

use crate::args::Args;
use crate::http_target::HttpTarget;
use crate::store_target::StoreTarget;
use durable_runtime::{EntityId, HistoryRecord, RuntimeStatus};
use serde_json::Value;

/// Why a command failed: printed as one line.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The command line asks for something impossible.
    #[error("{0}")]
    Usage(String),
    /// A call on the store failed.
    #[error("{0}")]
    Client(#[from] durable_runtime::Error),
    /// The server refused the request.
    #[error("{message} (HTTP {status})")]
    Api {
        /// The HTTP status.
        status: u16,
        /// The server's message.
        message: String,
    },
    /// The server could not be reached, or answered something unexpected.
    #[error("{0}")]
    Http(String),
    /// What the command names does not exist.
    #[error("{0}")]
    NotFound(String),
}

/// What `entity list` selects.
pub struct EntityFilter {
    /// Only entities of this name.
    pub name: Option<String>,
    /// With their states.
    pub fetch_state: bool,
    /// Last operation at or after (ms since the epoch).
    pub from: Option<i64>,
    /// Last operation before (ms since the epoch).
    pub to: Option<i64>,
}

/// What `list` and `purge` select.
pub struct ListFilter {
    pub statuses: Vec<RuntimeStatus>,
    pub prefix: Option<String>,
    pub from: Option<i64>,
    pub to: Option<i64>,
}

/// A server or a store.
pub enum Target {
    Http(HttpTarget),
    Store(StoreTarget),
}

impl Target {
    pub async fn open(args: &Args) -> Result<Target, CliError> {
        match (&args.url, &args.store) {
            (Some(url), None) => Ok(Target::Http(HttpTarget::new(url, args.key.as_deref())?)),
            (None, Some(path)) => Ok(Target::Store(StoreTarget::open(path).await?)),
            _ => Err(CliError::Usage(
                "say where the instances are: --url http://HOST:PORT (a running server) or \
                 --store FILE (a store no runtime is running on)"
                    .into(),
            )),
        }
    }

    pub async fn start(
        &self,
        name: &str,
        id: Option<String>,
        input: Value,
    ) -> Result<String, CliError> {
        match self {
            Target::Http(http) => http.start(name, id, input).await,
            Target::Store(store) => store.start(name, id, input).await,
        }
    }

    /// The status, as the API's JSON.
    pub async fn status(&self, id: &str) -> Result<Value, CliError> {
        match self {
            Target::Http(http) => http.status(id).await,
            Target::Store(store) => store.status(id).await,
        }
    }

    /// One page of statuses, and the next page's token.
    pub async fn list_page(
        &self,
        filter: &ListFilter,
        page_size: u32,
        token: Option<String>,
    ) -> Result<(Vec<Value>, Option<String>), CliError> {
        match self {
            Target::Http(http) => http.list_page(filter, page_size, token).await,
            Target::Store(store) => store.list_page(filter, page_size, token).await,
        }
    }

    pub async fn history(&self, id: &str) -> Result<Vec<HistoryRecord>, CliError> {
        match self {
            Target::Http(http) => http.history(id).await,
            Target::Store(store) => store.history(id).await,
        }
    }

    pub async fn raise_event(&self, id: &str, name: &str, data: Value) -> Result<(), CliError> {
        match self {
            Target::Http(http) => http.raise_event(id, name, data).await,
            Target::Store(store) => store.raise_event(id, name, data).await,
        }
    }

    /// `terminate`, `suspend`, `resume` or `rewind`.
    pub async fn manage(&self, op: &str, id: &str, reason: &str) -> Result<(), CliError> {
        match self {
            Target::Http(http) => http.manage(op, id, reason).await,
            Target::Store(store) => store.manage(op, id, reason).await,
        }
    }

    pub async fn restart(&self, id: &str, new_id: bool) -> Result<String, CliError> {
        match self {
            Target::Http(http) => http.restart(id, new_id).await,
            Target::Store(store) => store.restart(id, new_id).await,
        }
    }

    /// An entity's state, as JSON.
    pub async fn entity_state(&self, id: &EntityId) -> Result<Value, CliError> {
        let state = match self {
            Target::Http(http) => http.entity_state(id).await?,
            Target::Store(store) => store.entity_state(id).await?,
        };
        state.ok_or_else(|| CliError::NotFound(format!("no entity {id} (or it has no state)")))
    }

    pub async fn signal_entity(
        &self,
        id: &EntityId,
        op: &str,
        input: Value,
    ) -> Result<(), CliError> {
        match self {
            Target::Http(http) => http.signal_entity(id, op, input).await,
            Target::Store(store) => store.signal_entity(id, op, input).await,
        }
    }

    /// One page of entities in the API's JSON shape
    /// (`{"entityId": {"name", "key"}, "lastOperationTime", "state"?}`), and the next
    /// page's token.
    pub async fn entity_page(
        &self,
        filter: &EntityFilter,
        page_size: u32,
        token: Option<String>,
    ) -> Result<(Vec<Value>, Option<String>), CliError> {
        match self {
            Target::Http(http) => http.entity_page(filter, page_size, token).await,
            Target::Store(store) => store.entity_page(filter, page_size, token).await,
        }
    }

    pub async fn purge(&self, id: &str) -> Result<u64, CliError> {
        match self {
            Target::Http(http) => http.purge(id).await,
            Target::Store(store) => store.purge(id).await,
        }
    }

    pub async fn purge_by(&self, filter: &ListFilter) -> Result<u64, CliError> {
        match self {
            Target::Http(http) => http.purge_by(filter).await,
            Target::Store(store) => store.purge_by(filter).await,
        }
    }
}
