//! `durable`: drive durable instances from the command line, over a server's HTTP API
//! (`--url`) or straight on a store file no runtime is running on (`--store`).
//!
//! ```text
//! durable --url http://127.0.0.1:7071 start hello_cities --id demo-1 --input '["Tokyo"]'
//! durable --url http://127.0.0.1:7071 status demo-1
//! durable --store durable.db list --status Failed
//! durable --store durable.db history demo-1
//! durable --url http://127.0.0.1:7071 entity signal counter visits --op add --input 1
//! durable --url http://127.0.0.1:7071 entity get counter visits
//! durable --store durable.db entity list counter --state
//! ```
//!
//! Output is a table (or a timeline, for `history`) by default and JSON with `--json`; an
//! error is one line on stderr and exit code 1 (2 for a command line that does not parse).

mod args;
mod http_target;
mod output;
mod store_target;
mod target;

use args::{Args, Command, EntityCommand};
use clap::Parser;
use durable_runtime::EntityId;
use std::process::ExitCode;
use target::{CliError, EntityFilter, ListFilter, Target};

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), CliError> {
    let target = Target::open(&args).await?;
    let json = args.json;
    match args.command {
        Command::Start { name, id, input } => {
            let input = args::json_value("--input", input.as_deref())?;
            let id = target.start(&name, id, input).await?;
            output::started(&id, json);
        }
        Command::Status { id } => {
            let status = target.status(&id).await?;
            output::status(&status, json);
        }
        Command::List {
            status,
            prefix,
            from,
            to,
            top,
        } => {
            let filter = ListFilter {
                statuses: status,
                prefix,
                from: args::time("--from", from.as_deref())?,
                to: args::time("--to", to.as_deref())?,
            };
            let mut printer = output::ListPrinter::new(json);
            let mut token = None;
            let mut left = top.unwrap_or(u64::MAX);
            // A page at a time: a long listing is printed as it comes, never held whole.
            loop {
                let page_size = u32::try_from(left.min(100)).unwrap_or(100);
                let (page, next) = target.list_page(&filter, page_size, token).await?;
                left = left.saturating_sub(page.len() as u64);
                printer.page(&page);
                match next {
                    Some(next) if left > 0 => token = Some(next),
                    _ => break,
                }
            }
            printer.finish();
        }
        Command::History { id } => {
            let history = target.history(&id).await?;
            output::history(&history, json)?;
        }
        Command::RaiseEvent { id, name, data } => {
            let data = args::json_value("--data", data.as_deref())?;
            target.raise_event(&id, &name, data).await?;
            output::done(&format!("raised '{name}' to {id}"), json);
        }
        Command::Terminate { id, reason } => {
            target.manage("terminate", &id, &reason).await?;
            output::done(&format!("terminated {id}"), json);
        }
        Command::Suspend { id, reason } => {
            target.manage("suspend", &id, &reason).await?;
            output::done(&format!("suspended {id}"), json);
        }
        Command::Resume { id, reason } => {
            target.manage("resume", &id, &reason).await?;
            output::done(&format!("resumed {id}"), json);
        }
        Command::Rewind { id, reason } => {
            target.manage("rewind", &id, &reason).await?;
            output::done(&format!("rewound {id}"), json);
        }
        Command::Restart { id, new_id } => {
            let running = target.restart(&id, new_id).await?;
            output::started(&running, json);
        }
        Command::Entity { command } => entity(&target, command, json).await?,
        Command::Purge {
            id,
            status,
            from,
            to,
        } => {
            let purged = match id {
                Some(id) => {
                    if !status.is_empty() || from.is_some() || to.is_some() {
                        return Err(CliError::Usage(
                            "purge takes an instance id or a filter (--status, --from, --to), not both"
                                .into(),
                        ));
                    }
                    target.purge(&id).await?
                }
                None if status.is_empty() && from.is_none() && to.is_none() => {
                    return Err(CliError::Usage(
                        "purge needs an instance id or a filter (--status, --from, --to)".into(),
                    ));
                }
                None => {
                    let filter = ListFilter {
                        statuses: status,
                        prefix: None,
                        from: args::time("--from", from.as_deref())?,
                        to: args::time("--to", to.as_deref())?,
                    };
                    target.purge_by(&filter).await?
                }
            };
            output::purged(purged, json);
        }
    }
    Ok(())
}

/// An entity id from the command line, refused as a usage error if it cannot be one (so that
/// an empty key is not sent as a path that means something else, like a listing).
fn entity_id(name: &str, key: &str) -> Result<EntityId, CliError> {
    if key.is_empty() {
        return Err(CliError::Usage("the entity key is empty".into()));
    }
    let id = EntityId::new(name, key);
    id.check()
        .map_err(|err| CliError::Usage(format!("invalid entity id: {err}")))?;
    Ok(id)
}

async fn entity(target: &Target, command: EntityCommand, json: bool) -> Result<(), CliError> {
    match command {
        EntityCommand::Get { name, key } => {
            let id = entity_id(&name, &key)?;
            let state = target.entity_state(&id).await?;
            output::entity_state(&id, &state, json);
        }
        EntityCommand::Signal {
            name,
            key,
            op,
            input,
        } => {
            let id = entity_id(&name, &key)?;
            let input = args::json_value("--input", input.as_deref())?;
            target.signal_entity(&id, &op, input).await?;
            output::done(&format!("signalled '{op}' to {id}"), json);
        }
        EntityCommand::List {
            name,
            state,
            from,
            to,
            top,
        } => {
            if let Some(name) = &name {
                // Any key will do: only the name is checked.
                entity_id(name, "-")?;
            }
            let filter = EntityFilter {
                name,
                fetch_state: state,
                from: args::time("--from", from.as_deref())?,
                to: args::time("--to", to.as_deref())?,
            };
            let mut printer = output::EntityListPrinter::new(json, state);
            let mut token = None;
            let mut left = top.unwrap_or(u64::MAX);
            // A page at a time, as `list` does.
            loop {
                let page_size = u32::try_from(left.min(100)).unwrap_or(100);
                let (page, next) = target.entity_page(&filter, page_size, token).await?;
                left = left.saturating_sub(page.len() as u64);
                printer.page(&page);
                match next {
                    Some(next) if left > 0 => token = Some(next),
                    _ => break,
                }
            }
            printer.finish();
        }
    }
    Ok(())
}
