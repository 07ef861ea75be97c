//! What the commands print: tables and a timeline by default, JSON with `--json`.

use crate::target::CliError;
use durable_runtime::http::format_time;
use durable_runtime::{HistoryEvent, HistoryRecord};
use serde_json::{Value, json};
use std::collections::HashMap;

pub fn started(id: &str, json: bool) {
    if json {
        println!("{}", json!({ "id": id }));
    } else {
        println!("{id}");
    }
}

pub fn done(message: &str, json: bool) {
    if json {
        println!("{}", json!({ "ok": true }));
    } else {
        println!("{message}");
    }
}

pub fn purged(count: u64, json: bool) {
    if json {
        println!("{}", json!({ "instancesDeleted": count }));
    } else {
        println!("{count} instance(s) purged");
    }
}

/// A JSON value on one line, `-` for null.
fn brief(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

pub fn status(status: &Value, json: bool) {
    if json {
        println!("{status}");
        return;
    }
    let rows = [
        ("id", "instanceId"),
        ("name", "name"),
        ("status", "runtimeStatus"),
        ("created", "createdTime"),
        ("updated", "lastUpdatedTime"),
        ("input", "input"),
        ("output", "output"),
        ("custom status", "customStatus"),
    ];
    for (label, field) in rows {
        println!("{label:<14} {}", brief(&status[field]));
    }
}

/// An entity's state: the state as JSON with `--json`, else the id and the state, pretty.
pub fn entity_state(id: &durable_runtime::EntityId, state: &Value, json: bool) {
    if json {
        println!("{state}");
        return;
    }
    println!("entity  {id}");
    let pretty = serde_json::to_string_pretty(state).unwrap_or_else(|_| state.to_string());
    println!("state   {}", pretty.replace('\n', "\n        "));
}

/// Prints an entity listing as its pages arrive: NAME, KEY, LAST OPERATION (and STATE).
pub struct EntityListPrinter {
    json: bool,
    with_state: bool,
    printed: usize,
    widths: Option<[usize; 2]>,
}

impl EntityListPrinter {
    pub fn new(json: bool, with_state: bool) -> Self {
        EntityListPrinter {
            json,
            with_state,
            printed: 0,
            widths: None,
        }
    }

    pub fn page(&mut self, page: &[Value]) {
        if self.json {
            for entity in page {
                let separator = if self.printed == 0 { "[" } else { "," };
                println!("{separator}{entity}");
                self.printed += 1;
            }
            return;
        }
        if page.is_empty() {
            // No header over nothing: `finish` says there were none.
            return;
        }
        let id = |entity: &Value, part: &str| brief(&entity["entityId"][part]);
        let with_state = self.with_state;
        let widths = *self.widths.get_or_insert_with(|| {
            let width = |part: &str, header: &str| {
                page.iter()
                    .map(|entity| id(entity, part).len())
                    .chain([header.len()])
                    .max()
                    .unwrap_or(0)
            };
            let widths = [width("name", "NAME"), width("key", "KEY")];
            let last = if with_state {
                format!("{:<24}  STATE", "LAST OPERATION")
            } else {
                "LAST OPERATION".to_string()
            };
            println!(
                "{:<w0$}  {:<w1$}  {last}",
                "NAME",
                "KEY",
                w0 = widths[0],
                w1 = widths[1]
            );
            widths
        });
        for entity in page {
            let time = brief(&entity["lastOperationTime"]);
            let last = if with_state {
                format!("{time:<24}  {}", brief(&entity["state"]))
            } else {
                time
            };
            println!(
                "{:<w0$}  {:<w1$}  {last}",
                id(entity, "name"),
                id(entity, "key"),
                w0 = widths[0],
                w1 = widths[1]
            );
            self.printed += 1;
        }
    }

    pub fn finish(self) {
        if self.json {
            println!("{}", if self.printed == 0 { "[]" } else { "]" });
        } else if self.printed == 0 {
            println!("no entities");
        } else {
            println!(
                "{} entit{}",
                self.printed,
                if self.printed == 1 { "y" } else { "ies" }
            );
        }
    }
}

/// Prints a listing as its pages arrive.
pub struct ListPrinter {
    json: bool,
    printed: usize,
    widths: Option<[usize; 3]>,
}

impl ListPrinter {
    pub fn new(json: bool) -> Self {
        ListPrinter {
            json,
            printed: 0,
            widths: None,
        }
    }

    pub fn page(&mut self, page: &[Value]) {
        if self.json {
            for status in page {
                let separator = if self.printed == 0 { "[" } else { "," };
                println!("{separator}{status}");
                self.printed += 1;
            }
            return;
        }
        let field = |status: &Value, name: &str| brief(&status[name]);
        let widths = *self.widths.get_or_insert_with(|| {
            let width = |name: &str, header: &str| {
                page.iter()
                    .map(|status| field(status, name).len())
                    .chain([header.len()])
                    .max()
                    .unwrap_or(0)
            };
            let widths = [
                width("instanceId", "ID"),
                width("name", "NAME"),
                width("runtimeStatus", "STATUS"),
            ];
            println!(
                "{:<w0$}  {:<w1$}  {:<w2$}  {:<24}  UPDATED",
                "ID",
                "NAME",
                "STATUS",
                "CREATED",
                w0 = widths[0],
                w1 = widths[1],
                w2 = widths[2]
            );
            widths
        });
        for status in page {
            println!(
                "{:<w0$}  {:<w1$}  {:<w2$}  {:<24}  {}",
                field(status, "instanceId"),
                field(status, "name"),
                field(status, "runtimeStatus"),
                field(status, "createdTime"),
                field(status, "lastUpdatedTime"),
                w0 = widths[0],
                w1 = widths[1],
                w2 = widths[2]
            );
            self.printed += 1;
        }
    }

    pub fn finish(self) {
        if self.json {
            println!("{}", if self.printed == 0 { "[]" } else { "]" });
        } else if self.printed == 0 {
            println!("no instances");
        } else {
            println!("{} instance(s)", self.printed);
        }
    }
}

/// A duration in ms, readably.
fn duration(ms: i64) -> String {
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.3}s", ms as f64 / 1000.0)
    } else {
        format!("{}m{:02}s", ms / 60_000, ms / 1000 % 60)
    }
}

/// The history as a timeline: each event's time, its time since the start, and for a
/// completion, how long its task took. `--json`: the history records themselves.
pub fn history(history: &[HistoryRecord], json: bool) -> Result<(), CliError> {
    if json {
        let text = serde_json::to_string_pretty(history)
            .map_err(|err| CliError::Http(format!("the history does not serialize: {err}")))?;
        println!("{text}");
        return Ok(());
    }
    let Some(first) = history.first() else {
        println!("no history");
        return Ok(());
    };
    let start = first.timestamp_ms;
    // When each task (by task id) was scheduled, and what it is.
    let mut scheduled: HashMap<u64, (i64, String)> = HashMap::new();
    println!("{:<24}  {:>10}  {:<34}  DETAIL", "TIME", "ELAPSED", "EVENT");
    for record in history {
        let at = record.timestamp_ms;
        let took = |scheduled: &mut HashMap<u64, (i64, String)>, task_id: &u64| {
            scheduled
                .remove(task_id)
                .map(|(since, what)| format!("{what}, took {}", duration(at - since)))
                .unwrap_or_default()
        };
        let (event, detail) = match &record.event {
            HistoryEvent::ExecutionStarted(started) => (
                "ExecutionStarted".to_string(),
                format!("{} input={}", started.name, started.input),
            ),
            HistoryEvent::OrchestratorStarted => ("OrchestratorStarted".into(), String::new()),
            HistoryEvent::TaskScheduled {
                task_id,
                name,
                input,
            } => {
                scheduled.insert(*task_id, (at, name.clone()));
                (
                    format!("TaskScheduled #{task_id}"),
                    format!("{name} input={input}"),
                )
            }
            HistoryEvent::TaskCompleted { task_id, result } => (
                format!("TaskCompleted #{task_id}"),
                format!("{} -> {result}", took(&mut scheduled, task_id)),
            ),
            HistoryEvent::TaskFailed { task_id, failure } => (
                format!("TaskFailed #{task_id}"),
                format!("{}: {}", took(&mut scheduled, task_id), failure.message),
            ),
            HistoryEvent::TimerCreated {
                task_id,
                fire_at_ms,
            } => {
                scheduled.insert(*task_id, (at, "timer".into()));
                (
                    format!("TimerCreated #{task_id}"),
                    format!("fires at {}", format_time(*fire_at_ms)),
                )
            }
            HistoryEvent::TimerFired { task_id } => (
                format!("TimerFired #{task_id}"),
                took(&mut scheduled, task_id),
            ),
            HistoryEvent::SubOrchestrationInstanceCreated(created) => {
                scheduled.insert(created.task_id, (at, created.name.clone()));
                (
                    format!("SubOrchestrationInstanceCreated #{}", created.task_id),
                    format!("{} as {}", created.name, created.instance_id),
                )
            }
            HistoryEvent::SubOrchestrationInstanceCompleted { task_id, result } => (
                format!("SubOrchestrationInstanceCompleted #{task_id}"),
                format!("{} -> {result}", took(&mut scheduled, task_id)),
            ),
            HistoryEvent::SubOrchestrationInstanceFailed { task_id, failure } => (
                format!("SubOrchestrationInstanceFailed #{task_id}"),
                format!("{}: {}", took(&mut scheduled, task_id), failure.message),
            ),
            HistoryEvent::EventRaised { name, input } => {
                ("EventRaised".into(), format!("{name} data={input}"))
            }
            HistoryEvent::ExecutionCompleted { result } => (
                "ExecutionCompleted".into(),
                format!("-> {result}, took {}", duration(at - start)),
            ),
            HistoryEvent::ExecutionFailed { failure } => (
                "ExecutionFailed".into(),
                format!("{}, took {}", failure.message, duration(at - start)),
            ),
            HistoryEvent::ExecutionTerminated { reason } => {
                ("ExecutionTerminated".into(), reason.clone())
            }
            HistoryEvent::ExecutionSuspended { reason } => {
                ("ExecutionSuspended".into(), reason.clone())
            }
            HistoryEvent::ExecutionResumed { reason } => {
                ("ExecutionResumed".into(), reason.clone())
            }
            HistoryEvent::ExecutionRewound { reason } => {
                ("ExecutionRewound".into(), reason.clone())
            }
            HistoryEvent::EntityOperationCalled(call) => {
                let what = format!("{} {}", call.entity_id, call.operation);
                let detail = format!("{what} input={}", call.input);
                if call.signal {
                    (format!("EntityOperationSignaled #{}", call.task_id), detail)
                } else {
                    scheduled.insert(call.task_id, (at, what));
                    (format!("EntityOperationCalled #{}", call.task_id), detail)
                }
            }
            HistoryEvent::EntityOperationCompleted { task_id, result } => (
                format!("EntityOperationCompleted #{task_id}"),
                format!("{} -> {result}", took(&mut scheduled, task_id)),
            ),
            HistoryEvent::EntityOperationFailed { task_id, failure } => (
                format!("EntityOperationFailed #{task_id}"),
                format!("{}: {}", took(&mut scheduled, task_id), failure.message),
            ),
        };
        println!(
            "{:<24}  {:>10}  {event:<34}  {detail}",
            format_time(at),
            format!("+{}", duration(at - start)),
        );
    }
    Ok(())
}
