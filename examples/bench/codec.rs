//! The cold-replay workload's codec comparison: a history decoded as the store keeps it (one JSON
//! document per event), next to the same events encoded with bincode (payloads stay JSON text,
//! as they would in a bincode-encoded row).

use durable_runtime::history::{HistoryEvent, HistoryRecord};
use durable_runtime::{FailureDetails, Payload};
use serde::{Deserialize, Serialize};
use std::time::Instant;

type BoxError = Box<dyn std::error::Error>;

/// Time and size of each encoding of one history.
pub struct Comparison {
    pub json_encode_ms: f64,
    pub json_decode_ms: f64,
    pub bincode_encode_ms: f64,
    pub bincode_decode_ms: f64,
    pub json_bytes: usize,
    pub bincode_bytes: usize,
}

/// Encodes and decodes every event of `history` both ways. Decoding with bincode includes
/// turning its payload text back into checked [`Payload`]s, which a bincode row would also need.
pub fn compare(history: &[HistoryRecord]) -> Result<Comparison, BoxError> {
    let config = bincode::config::standard();

    let started = Instant::now();
    let json_rows = history
        .iter()
        .map(|record| serde_json::to_string(&record.event))
        .collect::<Result<Vec<_>, _>>()?;
    let json_encode_ms = ms_since(started);
    let started = Instant::now();
    for row in &json_rows {
        std::hint::black_box(serde_json::from_str::<HistoryEvent>(row)?);
    }
    let json_decode_ms = ms_since(started);

    let started = Instant::now();
    let bincode_rows = history
        .iter()
        .map(|record| bincode::serde::encode_to_vec(Row::from(&record.event), config))
        .collect::<Result<Vec<_>, _>>()?;
    let bincode_encode_ms = ms_since(started);
    let started = Instant::now();
    for row in &bincode_rows {
        let (decoded, _): (Row, usize) = bincode::serde::decode_from_slice(row, config)?;
        std::hint::black_box(decoded.into_event()?);
    }
    let bincode_decode_ms = ms_since(started);

    Ok(Comparison {
        json_encode_ms,
        json_decode_ms,
        bincode_encode_ms,
        bincode_decode_ms,
        json_bytes: json_rows.iter().map(String::len).sum(),
        bincode_bytes: bincode_rows.iter().map(Vec::len).sum(),
    })
}

fn ms_since(started: Instant) -> f64 {
    started.elapsed().as_secs_f64() * 1000.0
}

/// A history event in bincode's terms: no skipped fields, payloads as their JSON text.
#[derive(Serialize, Deserialize)]
enum Row {
    ExecutionStarted {
        name: String,
        version: Option<String>,
        input: String,
    },
    OrchestratorStarted,
    TaskScheduled {
        task_id: u64,
        name: String,
        input: String,
    },
    TaskCompleted {
        task_id: u64,
        result: String,
    },
    TaskFailed {
        task_id: u64,
        message: String,
        details: Option<String>,
    },
    TimerCreated {
        task_id: u64,
        fire_at_ms: i64,
    },
    TimerFired {
        task_id: u64,
    },
    EventRaised {
        name: String,
        input: String,
    },
    ExecutionCompleted {
        result: String,
    },
    /// Events the cold-replay history does not hold; kept as JSON.
    Other(String),
}

impl From<&HistoryEvent> for Row {
    fn from(event: &HistoryEvent) -> Self {
        let text = |payload: &Payload| payload.as_str().to_string();
        match event {
            HistoryEvent::ExecutionStarted(started) => Row::ExecutionStarted {
                name: started.name.clone(),
                version: started.version.clone(),
                input: text(&started.input),
            },
            HistoryEvent::OrchestratorStarted => Row::OrchestratorStarted,
            HistoryEvent::TaskScheduled {
                task_id,
                name,
                input,
            } => Row::TaskScheduled {
                task_id: *task_id,
                name: name.clone(),
                input: text(input),
            },
            HistoryEvent::TaskCompleted { task_id, result } => Row::TaskCompleted {
                task_id: *task_id,
                result: text(result),
            },
            HistoryEvent::TaskFailed { task_id, failure } => Row::TaskFailed {
                task_id: *task_id,
                message: failure.message.clone(),
                details: failure.details.clone(),
            },
            HistoryEvent::TimerCreated {
                task_id,
                fire_at_ms,
            } => Row::TimerCreated {
                task_id: *task_id,
                fire_at_ms: *fire_at_ms,
            },
            HistoryEvent::TimerFired { task_id } => Row::TimerFired { task_id: *task_id },
            HistoryEvent::EventRaised { name, input } => Row::EventRaised {
                name: name.clone(),
                input: text(input),
            },
            HistoryEvent::ExecutionCompleted { result } => Row::ExecutionCompleted {
                result: text(result),
            },
            other => Row::Other(serde_json::to_string(other).unwrap_or_default()),
        }
    }
}

impl Row {
    fn into_event(self) -> Result<HistoryEvent, BoxError> {
        Ok(match self {
            Row::ExecutionStarted {
                name,
                version,
                input,
            } => HistoryEvent::ExecutionStarted(Box::new(
                durable_runtime::history::ExecutionStartedEvent {
                    name,
                    version,
                    input: Payload::from_json(input)?,
                    execution_id: None,
                    parent: None,
                    carried_events: Vec::new(),
                },
            )),
            Row::OrchestratorStarted => HistoryEvent::OrchestratorStarted,
            Row::TaskScheduled {
                task_id,
                name,
                input,
            } => HistoryEvent::TaskScheduled {
                task_id,
                name,
                input: Payload::from_json(input)?,
            },
            Row::TaskCompleted { task_id, result } => HistoryEvent::TaskCompleted {
                task_id,
                result: Payload::from_json(result)?,
            },
            Row::TaskFailed {
                task_id,
                message,
                details,
            } => HistoryEvent::TaskFailed {
                task_id,
                failure: FailureDetails { message, details },
            },
            Row::TimerCreated {
                task_id,
                fire_at_ms,
            } => HistoryEvent::TimerCreated {
                task_id,
                fire_at_ms,
            },
            Row::TimerFired { task_id } => HistoryEvent::TimerFired { task_id },
            Row::EventRaised { name, input } => HistoryEvent::EventRaised {
                name,
                input: Payload::from_json(input)?,
            },
            Row::ExecutionCompleted { result } => HistoryEvent::ExecutionCompleted {
                result: Payload::from_json(result)?,
            },
            Row::Other(json) => serde_json::from_str(&json)?,
        })
    }
}
