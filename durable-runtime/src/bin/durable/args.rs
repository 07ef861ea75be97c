//! The command line.

use crate::target::CliError;
use clap::{Parser, Subcommand};
use durable_runtime::RuntimeStatus;
use std::path::PathBuf;

/// Drive durable orchestration instances: over a server's Durable Functions HTTP API
/// (`--url`), or on a store file no runtime is running on (`--store`).
#[derive(Parser, Debug)]
#[command(name = "durable", version)]
pub struct Args {
    /// The server, e.g. http://127.0.0.1:7071 (its HTTP API is under
    /// /runtime/webhooks/durabletask).
    #[arg(long, global = true, conflicts_with = "store", env = "DURABLE_URL")]
    pub url: Option<String>,
    /// The server's key (sent as x-functions-key).
    #[arg(long, global = true, env = "DURABLE_KEY", hide_env_values = true)]
    pub key: Option<String>,
    /// A store file to work on directly, when no runtime runs on it.
    #[arg(long, global = true)]
    pub store: Option<PathBuf>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Start an instance of an orchestrator, by its registered name.
    Start {
        /// The orchestrator's name.
        name: String,
        /// The instance id (a fresh one if not given).
        #[arg(long, value_parser = instance_id)]
        id: Option<String>,
        /// The input, as JSON (null if not given).
        #[arg(long)]
        input: Option<String>,
    },
    /// Show an instance's status.
    Status {
        /// The instance id.
        #[arg(value_parser = instance_id)]
        id: String,
    },
    /// List instances, a page at a time.
    List {
        /// Only these statuses (repeat, or separate with commas).
        #[arg(long, value_delimiter = ',')]
        status: Vec<RuntimeStatus>,
        /// Only ids starting with this.
        #[arg(long)]
        prefix: Option<String>,
        /// Only instances created at or after this time (RFC 3339).
        #[arg(long)]
        from: Option<String>,
        /// Only instances created before this time (RFC 3339).
        #[arg(long)]
        to: Option<String>,
        /// At most this many instances.
        #[arg(long)]
        top: Option<u64>,
    },
    /// Show an instance's history as a timeline (`--json`: its history records, the stable
    /// export format).
    History {
        /// The instance id.
        #[arg(value_parser = instance_id)]
        id: String,
    },
    /// Send an event to an instance.
    RaiseEvent {
        /// The instance id.
        #[arg(value_parser = instance_id)]
        id: String,
        /// The event's name.
        name: String,
        /// Its data, as JSON (null if not given).
        #[arg(long)]
        data: Option<String>,
    },
    /// Terminate an instance.
    Terminate {
        /// The instance id.
        #[arg(value_parser = instance_id)]
        id: String,
        /// Why.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Suspend an instance.
    Suspend {
        /// The instance id.
        #[arg(value_parser = instance_id)]
        id: String,
        /// Why.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Resume a suspended instance.
    Resume {
        /// The instance id.
        #[arg(value_parser = instance_id)]
        id: String,
        /// Why.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Rewind a failed instance: run again what it failed on.
    Rewind {
        /// The instance id.
        #[arg(value_parser = instance_id)]
        id: String,
        /// Why.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Restart a finished instance with its input (under its id, or a new one with --new-id).
    Restart {
        /// The instance id.
        #[arg(value_parser = instance_id)]
        id: String,
        /// Start a new instance with a fresh id instead.
        #[arg(long)]
        new_id: bool,
    },
    /// Durable entities: read one's state, signal one, list them.
    Entity {
        #[command(subcommand)]
        command: EntityCommand,
    },
    /// Purge a finished instance, or every finished instance matching a filter.
    Purge {
        /// The instance id (or give a filter instead).
        #[arg(value_parser = instance_id)]
        id: Option<String>,
        /// Only these statuses (repeat, or separate with commas).
        #[arg(long, value_delimiter = ',')]
        status: Vec<RuntimeStatus>,
        /// Only instances created at or after this time (RFC 3339).
        #[arg(long)]
        from: Option<String>,
        /// Only instances created before this time (RFC 3339).
        #[arg(long)]
        to: Option<String>,
    },
}

/// An instance id as an argument: refused here if empty, `.` or `..`, which would otherwise
/// turn `instances/{id}` into the instance list (and a purge of one into a purge of all).
fn instance_id(text: &str) -> Result<String, String> {
    match text {
        "" => Err("an instance id cannot be empty".into()),
        "." | ".." => Err(format!("'{text}' cannot be an instance id")),
        _ => Ok(text.to_string()),
    }
}

/// `durable entity ...`.
#[derive(Subcommand, Debug)]
pub enum EntityCommand {
    /// Show an entity's state (as last committed; queued operations are not reflected).
    Get {
        /// The entity's name, as registered.
        name: String,
        /// Its key.
        // Its own id: `key` is the global `--key` (the server's), which it would overwrite.
        #[arg(id = "entity_key", value_name = "KEY")]
        key: String,
    },
    /// Send an operation to an entity, one way (it runs once, even across restarts).
    Signal {
        /// The entity's name, as registered.
        name: String,
        /// Its key.
        // Its own id: `key` is the global `--key` (the server's), which it would overwrite.
        #[arg(id = "entity_key", value_name = "KEY")]
        key: String,
        /// The operation's name.
        #[arg(long)]
        op: String,
        /// Its input, as JSON (null if not given).
        #[arg(long)]
        input: Option<String>,
    },
    /// List the entities that exist (have a state), a page at a time.
    List {
        /// Only entities of this name.
        name: Option<String>,
        /// Show each entity's state too.
        #[arg(long)]
        state: bool,
        /// Only entities whose last operation ran at or after this time (RFC 3339).
        #[arg(long)]
        from: Option<String>,
        /// Only entities whose last operation ran before this time (RFC 3339).
        #[arg(long)]
        to: Option<String>,
        /// At most this many entities.
        #[arg(long)]
        top: Option<u64>,
    },
}

/// A JSON argument (`null` when absent).
pub fn json_value(flag: &str, text: Option<&str>) -> Result<serde_json::Value, CliError> {
    match text {
        None => Ok(serde_json::Value::Null),
        Some(text) => serde_json::from_str(text)
            .map_err(|err| CliError::Usage(format!("{flag} is not valid JSON: {err}"))),
    }
}

/// A time argument (RFC 3339), in ms since the epoch.
pub fn time(flag: &str, text: Option<&str>) -> Result<Option<i64>, CliError> {
    text.map(|text| {
        durable_runtime::http::parse_time(text).ok_or_else(|| {
            CliError::Usage(format!(
                "{flag} must be an RFC 3339 time (2026-11-27T23:14:00Z), not '{text}'"
            ))
        })
    })
    .transpose()
}
