//! What `#[activity]` and `#[orchestrator]` register, and the name → function table built
//! from it at startup.

use crate::activity_context::ActivityContext;
use crate::context::OrchestrationContext;
use crate::error::Error;
use crate::failure::FailureDetails;
use crate::payload::Payload;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

/// A boxed, sendable future: the shape of every registered function's body.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// The typed handle `#[activity]` generates: the function's name as a value.
///
/// `ctx.call_activity(say_hello, input)` checks `input` against [`Activity::Input`] and types
/// the result as [`Activity::Output`].
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an activity",
    label = "expected a function marked `#[activity]`",
    note = "mark the function with `#[activity]`, or call it by name with `call_activity_by_name`"
)]
pub trait Activity: Copy + Send + Sync + 'static {
    /// The input: the parameter type, a tuple for several, `()` for none.
    type Input: Serialize + DeserializeOwned + Send + 'static;
    /// The success value.
    type Output: Serialize + DeserializeOwned + Send + 'static;
    /// The registered name.
    const NAME: &'static str;
}

/// The typed handle `#[orchestrator]` generates.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an orchestrator",
    label = "expected a function marked `#[orchestrator]`",
    note = "mark the function with `#[orchestrator]`, or start it by name with `start_by_name`"
)]
pub trait Orchestrator: Copy + Send + Sync + 'static {
    /// The input: the parameter type, a tuple for several, `()` for none.
    type Input: Serialize + DeserializeOwned + Send + 'static;
    /// The success value.
    type Output: Serialize + DeserializeOwned + Send + 'static;
    /// The registered name.
    const NAME: &'static str;
    /// The declared version, if any.
    const VERSION: Option<&'static str>;
}

/// Runs a registered activity on an encoded input.
pub type ActivityInvoker =
    fn(ActivityContext, Payload) -> BoxFuture<Result<Payload, FailureDetails>>;

/// Builds a registered orchestrator's future from its context and encoded input.
pub type OrchestratorFactory =
    fn(
        OrchestrationContext,
        Payload,
    ) -> Result<BoxFuture<Result<Payload, FailureDetails>>, FailureDetails>;

/// An activity as submitted to `inventory` by `#[activity]`.
#[doc(hidden)]
pub struct ActivityRegistration {
    pub name: &'static str,
    pub invoke: ActivityInvoker,
    pub location: &'static str,
}

/// An orchestrator as submitted to `inventory` by `#[orchestrator]`.
#[doc(hidden)]
pub struct OrchestratorRegistration {
    pub name: &'static str,
    pub version: Option<&'static str>,
    pub start: OrchestratorFactory,
    pub location: &'static str,
}

inventory::collect!(ActivityRegistration);
inventory::collect!(OrchestratorRegistration);

/// Every function registered in this binary, by name.
pub(crate) struct Registry {
    activities: HashMap<&'static str, &'static ActivityRegistration>,
    /// Every registered version of each orchestrator, oldest first (see [`version_order`]).
    orchestrators: HashMap<&'static str, Vec<&'static OrchestratorRegistration>>,
}

impl Registry {
    /// Builds the table from everything `#[activity]` and `#[orchestrator]` registered. Two
    /// activities under one name, or two orchestrators under one name and version, are an
    /// error naming both definitions.
    pub(crate) fn from_inventory() -> Result<Self, Error> {
        let mut activities = HashMap::new();
        for reg in inventory::iter::<ActivityRegistration> {
            if let Some(first) = activities.insert(reg.name, reg) {
                return Err(duplicate(
                    "activity",
                    reg.name,
                    first.location,
                    reg.location,
                ));
            }
        }
        let mut orchestrators: HashMap<&'static str, Vec<&'static OrchestratorRegistration>> =
            HashMap::new();
        for reg in inventory::iter::<OrchestratorRegistration> {
            let versions = orchestrators.entry(reg.name).or_default();
            if let Some(first) = versions.iter().find(|r| r.version == reg.version) {
                let name = match reg.version {
                    Some(version) => format!("{} (version {version})", reg.name),
                    None => reg.name.to_string(),
                };
                return Err(duplicate(
                    "orchestrator",
                    &name,
                    first.location,
                    reg.location,
                ));
            }
            versions.push(reg);
            versions.sort_by(|a, b| version_order(a.version, b.version));
        }
        Ok(Registry {
            activities,
            orchestrators,
        })
    }

    pub(crate) fn activity(&self, name: &str) -> Option<&'static ActivityRegistration> {
        self.activities.get(name).copied()
    }

    /// The newest registered version of the orchestrator `name`: what a new instance started
    /// by name runs.
    pub(crate) fn orchestrator(&self, name: &str) -> Option<&'static OrchestratorRegistration> {
        self.orchestrators.get(name)?.last().copied()
    }

    /// Exactly `version` of the orchestrator `name`: what an instance that started on that
    /// version keeps running, replay after replay. Otherwise, the versions that are registered.
    pub(crate) fn orchestrator_version(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> Result<&'static OrchestratorRegistration, Vec<Option<&'static str>>> {
        let versions = self
            .orchestrators
            .get(name)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        versions
            .iter()
            .find(|r| r.version == version)
            .copied()
            .ok_or_else(|| versions.iter().map(|r| r.version).collect())
    }
}

/// Orders versions so that the newest is last: no version before any version, then by
/// natural order (runs of digits compare as numbers: `2` < `10`, `1.9` < `1.10`).
pub(crate) fn version_order(a: Option<&str>, b: Option<&str>) -> std::cmp::Ordering {
    match (a, b) {
        (None, None) => std::cmp::Ordering::Equal,
        (None, Some(_)) => std::cmp::Ordering::Less,
        (Some(_), None) => std::cmp::Ordering::Greater,
        (Some(a), Some(b)) => natural_chunks(a).cmp(natural_chunks(b)),
    }
}

/// A version split into runs of digits (compared as numbers) and runs of other characters.
fn natural_chunks(version: &str) -> impl Iterator<Item = (u128, &str)> + '_ {
    let mut rest = version;
    std::iter::from_fn(move || {
        let first = rest.chars().next()?;
        let digits = first.is_ascii_digit();
        let end = rest
            .find(|c: char| c.is_ascii_digit() != digits)
            .unwrap_or(rest.len());
        let (chunk, tail) = rest.split_at(end);
        rest = tail;
        Some(if digits {
            (chunk.parse().unwrap_or(u128::MAX), "")
        } else {
            (0, chunk)
        })
    })
}

fn duplicate(kind: &'static str, name: &str, first: &str, second: &str) -> Error {
    // inventory's order is unspecified; sort so the message is stable.
    let (first, second) = if first <= second {
        (first, second)
    } else {
        (second, first)
    };
    Error::DuplicateRegistration {
        kind,
        name: name.to_string(),
        first: first.to_string(),
        second: second.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::version_order;
    use std::cmp::Ordering;

    #[test]
    fn versions_order_naturally_with_unversioned_first() {
        let mut versions = vec![Some("1.10"), Some("2"), None, Some("1.9"), Some("10")];
        versions.sort_by(|a, b| version_order(*a, *b));
        assert_eq!(
            versions,
            [None, Some("1.9"), Some("1.10"), Some("2"), Some("10")]
        );
        assert_eq!(version_order(Some("v3"), Some("v3")), Ordering::Equal);
    }
}
