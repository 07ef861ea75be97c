//! How failures are described: in history, to orchestrators, and to users' own code.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A failure as recorded in history: what went wrong, in words, with optional detail.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FailureDetails {
    /// Short description, usually the error's `Display`.
    pub message: String,
    /// Longer detail (a source chain, a panic location), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
}

impl FailureDetails {
    /// A failure with a message and no detail.
    pub fn new(message: impl Into<String>) -> Self {
        FailureDetails {
            message: message.into(),
            details: None,
        }
    }
}

impl fmt::Display for FailureDetails {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// A scheduled task (activity) failed; what an orchestrator's `.await` returns in `Err`.
///
/// Orchestrators match on it to compensate:
///
/// ```
/// # use durable_runtime::TaskFailed;
/// fn describe(err: &TaskFailed) -> String {
///     format!("{} failed: {}", err.name, err.message)
/// }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("task '{name}' failed: {message}")]
pub struct TaskFailed {
    /// The registered name of the task that failed.
    pub name: String,
    /// The failure message (the activity's error, a panic message, a decode error, ...).
    pub message: String,
    /// Longer detail, if the task provided any.
    pub details: Option<String>,
}

impl TaskFailed {
    /// Whether the task was set aside as poison (it stopped the process at every retry; see
    /// [`RuntimeBuilder::poison_after`](crate::RuntimeBuilder::poison_after)): no retry
    /// policy retries it.
    pub fn is_poison(&self) -> bool {
        self.details.as_deref() == Some(crate::worker::poison::POISON)
    }

    pub(crate) fn from_details(name: &str, failure: FailureDetails) -> Self {
        TaskFailed {
            name: name.to_string(),
            message: failure.message,
            details: failure.details,
        }
    }
}

/// Why [`OrchestrationContext::wait_for_event_with_timeout`](crate::OrchestrationContext::wait_for_event_with_timeout)
/// returned no event.
///
/// ```
/// # use durable_runtime::EventWaitError;
/// # use std::time::Duration;
/// let err = EventWaitError::TimedOut { name: "approved".into(), timeout: Duration::from_secs(5) };
/// assert!(err.is_timeout());
/// assert_eq!(err.to_string(), "no event 'approved' arrived within 5s");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EventWaitError {
    /// The timeout elapsed before the event arrived.
    #[error("no event '{name}' arrived within {timeout:?}")]
    TimedOut {
        /// The event waited for.
        name: String,
        /// How long was waited.
        timeout: std::time::Duration,
    },
    /// The event arrived, but its payload does not decode as the type asked for.
    #[error(transparent)]
    Failed(#[from] TaskFailed),
}

impl EventWaitError {
    /// True if the timeout elapsed first.
    pub fn is_timeout(&self) -> bool {
        matches!(self, EventWaitError::TimedOut { .. })
    }
}

/// The error type activities return; any `std::error::Error` converts into it with `?`.
///
/// ```
/// # use durable_runtime::ActivityError;
/// fn parse(s: &str) -> Result<u32, ActivityError> {
///     let n: u32 = s.parse()?; // ParseIntError converts
///     if n == 0 {
///         return Err(ActivityError::new("zero is not allowed"));
///     }
///     Ok(n)
/// }
/// assert!(parse("0").is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActivityError {
    message: String,
    details: Option<String>,
}

/// The error type orchestrators return; `TaskFailed` and any `std::error::Error` convert into it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrchestrationError {
    message: String,
    details: Option<String>,
}

macro_rules! user_error_type {
    ($ty:ident) => {
        impl $ty {
            /// An error with this message.
            pub fn new(message: impl Into<String>) -> Self {
                $ty {
                    message: message.into(),
                    details: None,
                }
            }

            /// Adds longer detail, kept in history beside the message.
            pub fn with_details(mut self, details: impl Into<String>) -> Self {
                self.details = Some(details.into());
                self
            }

            /// The message.
            pub fn message(&self) -> &str {
                &self.message
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.message)
            }
        }

        impl<E: std::error::Error + Send + Sync + 'static> From<E> for $ty {
            fn from(err: E) -> Self {
                let mut chain = Vec::new();
                let mut source = err.source();
                while let Some(cause) = source {
                    chain.push(cause.to_string());
                    source = cause.source();
                }
                $ty {
                    message: err.to_string(),
                    details: (!chain.is_empty()).then(|| chain.join(": ")),
                }
            }
        }

        impl From<$ty> for FailureDetails {
            fn from(err: $ty) -> Self {
                FailureDetails {
                    message: err.message,
                    details: err.details,
                }
            }
        }
    };
}

user_error_type!(ActivityError);
user_error_type!(OrchestrationError);

/// Describes a caught panic payload as a failure message.
pub(crate) fn panic_failure(what: &str, payload: Box<dyn std::any::Any + Send>) -> FailureDetails {
    let text = if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a non-string panic payload".to_string()
    };
    FailureDetails::new(format!("{what} panicked: {text}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn std_errors_convert_with_their_source_chain() {
        let err: ActivityError = "x".parse::<u32>().expect_err("not a number").into();
        assert!(err.message().contains("invalid digit"), "{err}");
    }

    #[test]
    fn task_failed_converts_into_orchestration_error() {
        let failed = TaskFailed {
            name: "charge".into(),
            message: "card declined".into(),
            details: None,
        };
        let err: OrchestrationError = failed.into();
        assert_eq!(err.message(), "task 'charge' failed: card declined");
    }

    #[test]
    fn panic_payloads_become_messages() {
        let failure = panic_failure("activity 'x'", Box::new("boom"));
        assert_eq!(failure.message, "activity 'x' panicked: boom");
    }
}
