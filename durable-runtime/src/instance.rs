//! What is known about an orchestration instance: its status, as shown to clients.

use crate::failure::FailureDetails;
use crate::history::HistoryRecord;
use crate::payload::Payload;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Where an instance is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RuntimeStatus {
    /// Started, its first step not yet run.
    Pending,
    /// Running or waiting on its tasks.
    Running,
    /// Finished with an output.
    Completed,
    /// Restarted itself with new input and an empty history (eternal orchestrations,
    /// `continue_as_new`): shown between the step that ended one run and the first step of the
    /// next, which makes it `Running` again. Not final: the instance goes on.
    ContinuedAsNew,
    /// Finished with a failure.
    Failed,
    /// Stopped by a client.
    Terminated,
    /// Paused by a client.
    Suspended,
}

impl RuntimeStatus {
    /// Every status, in declaration order.
    pub const ALL: [RuntimeStatus; 7] = [
        RuntimeStatus::Pending,
        RuntimeStatus::Running,
        RuntimeStatus::Completed,
        RuntimeStatus::ContinuedAsNew,
        RuntimeStatus::Failed,
        RuntimeStatus::Terminated,
        RuntimeStatus::Suspended,
    ];

    /// True for statuses an instance never leaves by itself.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RuntimeStatus::Completed | RuntimeStatus::Failed | RuntimeStatus::Terminated
        )
    }

    /// The name used in storage and over HTTP.
    pub fn as_str(self) -> &'static str {
        match self {
            RuntimeStatus::Pending => "Pending",
            RuntimeStatus::Running => "Running",
            RuntimeStatus::Completed => "Completed",
            RuntimeStatus::ContinuedAsNew => "ContinuedAsNew",
            RuntimeStatus::Failed => "Failed",
            RuntimeStatus::Terminated => "Terminated",
            RuntimeStatus::Suspended => "Suspended",
        }
    }
}

impl fmt::Display for RuntimeStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text is not a runtime status name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "'{0}' is not a runtime status (expected one of Pending, Running, Completed, ContinuedAsNew, Failed, Terminated, Suspended)"
)]
pub struct UnknownStatus(pub String);

impl FromStr for RuntimeStatus {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RuntimeStatus::ALL
            .into_iter()
            .find(|status| status.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownStatus(s.to_string()))
    }
}

/// Why `id` cannot be an instance id, if it cannot: ids travel in URLs and file listings, so
/// what would break either is refused.
pub(crate) fn instance_id_problem(id: &str) -> Option<&'static str> {
    if id.is_empty() {
        Some("it is empty")
    } else if id.len() > 256 {
        Some("it is longer than 256 bytes")
    } else if id.chars().any(|c| c.is_control()) {
        Some("it contains a control character")
    } else if id.chars().any(|c| matches!(c, '/' | '\\' | '#' | '?')) {
        Some("it contains one of / \\ # ?")
    } else if id == "." || id == ".." {
        // A URL path segment `.` or `..` is removed by clients that normalise URLs (even
        // percent-encoded), so `instances/.` would name the instance list.
        Some("it is . or ..")
    } else {
        None
    }
}

/// An instance as stored: the row behind a status query.
#[derive(Clone, Debug, PartialEq)]
pub struct InstanceStatus {
    /// The instance id.
    pub instance_id: String,
    /// The orchestrator's registered name.
    pub name: String,
    /// The orchestrator's version when started, if it declared one.
    pub version: Option<String>,
    /// Where the instance is in its life.
    pub runtime_status: RuntimeStatus,
    /// The input it was started with.
    pub input: Payload,
    /// The output, once completed.
    pub output: Option<Payload>,
    /// The failure, once failed.
    pub failure: Option<FailureDetails>,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_ms: i64,
    /// Time of the last recorded step, milliseconds since the Unix epoch.
    pub last_updated_ms: i64,
    /// What the orchestrator last gave
    /// [`OrchestrationContext::set_custom_status`](crate::OrchestrationContext::set_custom_status),
    /// if anything (kept across `continue_as_new`, and once the instance finished).
    pub custom_status: Option<Payload>,
    /// The full history, when asked for.
    pub history: Option<Vec<HistoryRecord>>,
}

impl InstanceStatus {
    /// Decodes the output as `T`. An instance that has not completed has no output: that is
    /// [`Error::NoOutput`](crate::Error::NoOutput), naming its status and failure.
    pub fn output_as<T: serde::de::DeserializeOwned>(&self) -> Result<T, crate::Error> {
        let Some(output) = &self.output else {
            return Err(crate::Error::NoOutput {
                instance_id: self.instance_id.clone(),
                status: self.runtime_status,
                failure: self.failure.as_ref().map(|f| f.message.clone()),
            });
        };
        output.decode().map_err(|source| crate::Error::Decode {
            instance_id: self.instance_id.clone(),
            expected: std::any::type_name::<T>(),
            source,
        })
    }
}

/// A filter for listing instances; every field narrows the result.
///
/// ```
/// use durable_runtime::{InstanceQuery, RuntimeStatus};
/// let query = InstanceQuery {
///     statuses: vec![RuntimeStatus::Failed],
///     instance_id_prefix: Some("order-".into()),
///     page_size: 50,
///     ..InstanceQuery::default()
/// };
/// # let _ = query;
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct InstanceQuery {
    /// Only these statuses (all when empty).
    pub statuses: Vec<RuntimeStatus>,
    /// Only instances created at or after this time (ms since the epoch).
    pub created_from_ms: Option<i64>,
    /// Only instances created before this time (ms since the epoch).
    pub created_to_ms: Option<i64>,
    /// Only ids starting with this.
    pub instance_id_prefix: Option<String>,
    /// Only instances of this orchestrator.
    pub name: Option<String>,
    /// At most this many per page.
    pub page_size: u32,
    /// Where the previous page ended (its `continuation_token`).
    pub continuation_token: Option<String>,
}

impl Default for InstanceQuery {
    fn default() -> Self {
        InstanceQuery {
            statuses: Vec::new(),
            created_from_ms: None,
            created_to_ms: None,
            instance_id_prefix: None,
            name: None,
            page_size: 100,
            continuation_token: None,
        }
    }
}

/// One page of a listing.
#[derive(Clone, Debug, PartialEq)]
pub struct InstancePage {
    /// The instances, ordered by id.
    pub instances: Vec<InstanceStatus>,
    /// Pass this back to get the next page; `None` on the last page.
    pub continuation_token: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_parse_case_insensitively() {
        assert_eq!("completed".parse(), Ok(RuntimeStatus::Completed));
        assert!("Done".parse::<RuntimeStatus>().is_err());
    }

    #[test]
    fn ids_that_a_url_would_not_keep_are_refused() {
        for bad in ["", ".", "..", "a/b", "a?b", "a#b", "a\\b", "a\nb"] {
            assert!(instance_id_problem(bad).is_some(), "{bad:?}");
        }
        for good in ["order-1", "...", ".hidden", "a.b", "@counter@key"] {
            assert_eq!(instance_id_problem(good), None, "{good:?}");
        }
    }
}
