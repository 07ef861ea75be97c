//! The replay tester: does the code as it is now still replay the histories of instances in
//! flight? Run in `cargo test` against recorded histories, it catches a breaking change before
//! a deployment does.

use super::TestError;
use crate::error::Error;
use crate::function::OrchestratorFn;
#[cfg(doc)]
use crate::history::HistoryEvent;
use crate::history::HistoryRecord;
use crate::registry::{Registry, registered_orchestrator};
use crate::replay::{CheckedHistory, check_history};
use crate::runtime::DEFAULT_MAX_PAYLOAD_BYTES;
use std::fmt;
use std::path::Path;

/// What [`replay_history`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplayReport {
    /// The code makes the decisions the history recorded: instances with this history
    /// resume on it.
    Compatible,
    /// The code makes another decision: an instance with this history would fail as
    /// non-deterministic when it replays.
    Diverged(Divergence),
}

impl ReplayReport {
    /// True for [`ReplayReport::Compatible`].
    pub fn is_compatible(&self) -> bool {
        matches!(self, ReplayReport::Compatible)
    }

    /// `Ok` if compatible, otherwise the divergence as an error: `replay_history(..)?.
    /// into_result()?` fails a test with the divergence's description.
    pub fn into_result(self) -> Result<(), Divergence> {
        match self {
            ReplayReport::Compatible => Ok(()),
            ReplayReport::Diverged(divergence) => Err(divergence),
        }
    }
}

/// The first place the code diverges from a recorded history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Divergence {
    /// The index, in the history, of the event the code no longer agrees with.
    pub event_index: usize,
    /// What history recorded there, e.g. `TaskScheduled 'say_hello'`, `TimerCreated`,
    /// `ExecutionCompleted`.
    pub recorded: String,
    /// What the code does instead, e.g. `schedules activity 'say_goodbye'`, `creates a
    /// timer instead`.
    pub new: String,
    /// The engine's full message, as an instance replaying this history would fail with.
    pub message: String,
}

impl fmt::Display for Divergence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the code diverges from history at event {}: history has {}, the code {} ({})",
            self.event_index, self.recorded, self.new, self.message
        )
    }
}

impl std::error::Error for Divergence {}

/// Replays `history` (the whole history of one run of an instance) against the code
/// of `orchestrator` as it is now, without a store or a runtime: the replay engine's own
/// checks decide, so what passes here replays in production. A history that ended
/// (completed or failed) is also checked at its end: code that now schedules more work there,
/// or waits, diverges. The output itself is not compared.
///
/// A compatible change (a log line, a renamed variable, a new version of an activity's body)
/// reports [`ReplayReport::Compatible`]; an activity inserted, removed, renamed or moved, or
/// a timer added, reports the first divergence.
///
/// What production does not compare is not compared here either: activity inputs, and which
/// version of a sub-orchestration a call by name runs. A history recorded by another
/// version of the orchestrator (`#[orchestrator(version = ..)]`) is an error, not a report:
/// instances keep the version they started with, so check it against that version's code. A
/// terminated history is checked up to its last recorded step only.
///
/// ```no_run
/// use durable_runtime::prelude::*;
/// use durable_runtime::testing::{load_history, replay_history};
///
/// #[orchestrator]
/// async fn hello(ctx: OrchestrationContext) -> Result<(), OrchestrationError> {
///     Ok(())
/// }
///
/// #[test]
/// fn hello_still_replays_the_recorded_history() -> Result<(), Box<dyn std::error::Error>> {
///     let history = load_history("tests/fixtures/hello.json")?;
///     replay_history(hello, &history)?.into_result()?;
///     Ok(())
/// }
/// ```
pub fn replay_history<F: OrchestratorFn<M>, M>(
    orchestrator: F,
    history: &[HistoryRecord],
) -> Result<ReplayReport, TestError> {
    let registered = registered_orchestrator(orchestrator)
        .ok_or(Error::NotAnOrchestrator(std::any::type_name::<F>()))?;
    let registry = Registry::from_inventory()?;
    // A run's first step records its `ExecutionStarted` (after the step's
    // `OrchestratorStarted`).
    let started = history
        .iter()
        .take(2)
        .any(|record| matches!(record.event, crate::HistoryEvent::ExecutionStarted(_)));
    if !started {
        return Err(TestError::Replay(
            "the history does not start a run with ExecutionStarted: give the whole history \
             of one run"
                .to_string(),
        ));
    }
    Ok(
        match check_history(
            &registry,
            registered.name,
            registered.version,
            history,
            DEFAULT_MAX_PAYLOAD_BYTES,
        ) {
            CheckedHistory::Compatible => ReplayReport::Compatible,
            CheckedHistory::Diverged {
                index,
                recorded,
                new,
                message,
            } => ReplayReport::Diverged(Divergence {
                event_index: index,
                recorded,
                new,
                message,
            }),
            CheckedHistory::Failed(message) => return Err(TestError::Replay(message)),
        },
    )
}

/// Reads a history fixture: a JSON array of [`HistoryRecord`]s, or an object with such an
/// array in its `history` field.
///
/// # The format
///
/// A fixture is a JSON array of [`HistoryRecord`]s, as serde writes them (and as
/// `serde_json::to_string_pretty(&status.history)` writes the history of
/// [`Client::get_status_with_history`](crate::Client::get_status_with_history)):
///
/// ```json
/// [
///   {"seq": 0, "timestamp_ms": 1735689600000, "event": "OrchestratorStarted"},
///   {"seq": 1, "timestamp_ms": 1735689600000, "event": {"ExecutionStarted": {"name": "hello_sequence", "input": null, "execution_id": "0f2e6d39..."}}},
///   {"seq": 2, "timestamp_ms": 1735689600000, "event": {"TaskScheduled": {"task_id": 0, "name": "say_hello", "input": "Tokyo"}}},
///   ...
/// ]
/// ```
///
/// Each event is tagged by its Durable Functions type name ([`HistoryEvent`]); fields and event
/// types are only ever added, never renamed or removed, so a fixture recorded today still loads
/// in later releases. An object with a `history` field (a whole status) loads too. A fixture
/// holds one run: the history of an instance that continued as new starts at its current run.
pub fn load_history(path: impl AsRef<Path>) -> Result<Vec<HistoryRecord>, TestError> {
    let path = path.as_ref();
    let fixture = |reason: String| TestError::Fixture {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|err| fixture(err.to_string()))?;
    parse_history(&text).map_err(fixture)
}

/// Writes `history` as a fixture [`load_history`] reads (pretty-printed JSON).
pub fn save_history(path: impl AsRef<Path>, history: &[HistoryRecord]) -> Result<(), TestError> {
    let path = path.as_ref();
    let fixture = |reason: String| TestError::Fixture {
        path: path.to_path_buf(),
        reason,
    };
    let text = serde_json::to_string_pretty(history).map_err(|err| fixture(err.to_string()))?;
    std::fs::write(path, text + "\n").map_err(|err| fixture(err.to_string()))
}

/// Parses a history from fixture text.
fn parse_history(text: &str) -> Result<Vec<HistoryRecord>, String> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Fixture {
        Records(Vec<HistoryRecord>),
        Status { history: Vec<HistoryRecord> },
    }
    match serde_json::from_str::<Fixture>(text) {
        Ok(Fixture::Records(history) | Fixture::Status { history }) => Ok(history),
        // The untagged error says nothing useful: report why it is not a list of records.
        Err(_) => serde_json::from_str::<Vec<HistoryRecord>>(text)
            .map_err(|err| format!("not a JSON array of history records: {err}")),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_history;

    #[test]
    fn a_fixture_is_a_list_of_records_or_a_status_with_one() {
        let records = r#"[{"seq": 0, "timestamp_ms": 5, "event": "OrchestratorStarted"}]"#;
        assert_eq!(parse_history(records).map(|h| h.len()), Ok(1));
        let status = format!(r#"{{"instance_id": "x", "history": {records}}}"#);
        assert_eq!(parse_history(&status).map(|h| h.len()), Ok(1));
        let broken = parse_history(r#"[{"seq": "zero"}]"#).expect_err("not a history");
        assert!(
            broken.contains("not a JSON array of history records"),
            "{broken}"
        );
    }
}
