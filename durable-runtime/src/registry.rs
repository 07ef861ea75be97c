//! What `#[activity]` and `#[orchestrator]` register, the name → function table built from it
//! at startup, and the function → name table that typed calls read.

use crate::activity_context::ActivityContext;
use crate::context::OrchestrationContext;
use crate::entity::EntityRegistration;
use crate::error::Error;
use crate::failure::FailureDetails;
use crate::payload::Payload;
use std::any::TypeId;
use std::collections::HashMap;
use std::future::Future;
use std::hash::{BuildHasherDefault, Hasher};
use std::pin::Pin;
use std::sync::LazyLock;

/// A boxed, sendable future: the shape of every registered function's body.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

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
    /// The `TypeId` of the function item: what `call_activity(f, ..)` finds it by.
    pub function: fn() -> TypeId,
    pub location: &'static str,
}

/// An orchestrator as submitted to `inventory` by `#[orchestrator]`.
#[doc(hidden)]
pub struct OrchestratorRegistration {
    pub name: &'static str,
    pub version: Option<&'static str>,
    pub start: OrchestratorFactory,
    /// The `TypeId` of the function item: what `Client::start(f, ..)` finds it by.
    pub function: fn() -> TypeId,
    pub location: &'static str,
}

inventory::collect!(ActivityRegistration);
inventory::collect!(OrchestratorRegistration);

/// Every function registered in this binary, by name.
pub(crate) struct Registry {
    activities: HashMap<&'static str, &'static ActivityRegistration>,
    /// Every registered version of each orchestrator, oldest first (see [`version_order`]).
    orchestrators: HashMap<&'static str, Vec<&'static OrchestratorRegistration>>,
    entities: HashMap<&'static str, &'static EntityRegistration>,
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
        let mut entities = HashMap::new();
        for reg in inventory::iter::<EntityRegistration> {
            if let Some(first) = entities.insert(reg.name, reg) {
                return Err(duplicate("entity", reg.name, first.location, reg.location));
            }
        }
        Ok(Registry {
            activities,
            orchestrators,
            entities,
        })
    }

    /// The entity registered as `name`.
    pub(crate) fn entity(&self, name: &str) -> Option<&'static EntityRegistration> {
        self.entities.get(name).copied()
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

/// What `#[activity]` or `#[orchestrator]` registered for a function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Registered {
    /// The registered name (the function's name unless `name = "..."` says otherwise).
    pub name: &'static str,
    /// The declared version (orchestrators only).
    pub version: Option<&'static str>,
    /// Where the function is defined (`file:line`).
    pub location: &'static str,
}

/// The registration of `function` if it is marked `#[activity]`, found by the function item's
/// type.
///
/// ```
/// use durable_runtime::prelude::*;
///
/// #[activity(name = "greetings.say")]
/// async fn say_hello(city: String) -> String {
///     format!("Hello {city}!")
/// }
///
/// async fn unmarked(city: String) -> String {
///     city
/// }
///
/// let registered = durable_runtime::registry::registered_activity(say_hello).unwrap();
/// assert_eq!(registered.name, "greetings.say");
/// assert_eq!(durable_runtime::registry::registered_activity(unmarked), None);
/// ```
pub fn registered_activity<F: 'static>(function: F) -> Option<Registered> {
    let _ = function;
    activity_of::<F>().map(|reg| Registered {
        name: reg.name,
        version: None,
        location: reg.location,
    })
}

/// The registration of `function` if it is marked `#[orchestrator]`, found by the function
/// item's type.
pub fn registered_orchestrator<F: 'static>(function: F) -> Option<Registered> {
    let _ = function;
    orchestrator_of::<F>().map(|reg| Registered {
        name: reg.name,
        version: reg.version,
        location: reg.location,
    })
}

/// The activity registered for the function item type `F`: one map read.
pub(crate) fn activity_of<F: 'static>() -> Option<&'static ActivityRegistration> {
    FUNCTIONS.activities.get(&TypeId::of::<F>()).copied()
}

/// The orchestrator registered for the function item type `F`: one map read.
pub(crate) fn orchestrator_of<F: 'static>() -> Option<&'static OrchestratorRegistration> {
    FUNCTIONS.orchestrators.get(&TypeId::of::<F>()).copied()
}

/// Every registration by the type of its function item, built once per process.
struct Functions {
    activities: HashMap<TypeId, &'static ActivityRegistration, BuildTypeIdHasher>,
    orchestrators: HashMap<TypeId, &'static OrchestratorRegistration, BuildTypeIdHasher>,
}

static FUNCTIONS: LazyLock<Functions> = LazyLock::new(|| {
    let mut activities = HashMap::default();
    for reg in inventory::iter::<ActivityRegistration> {
        activities.entry((reg.function)()).or_insert(reg);
    }
    let mut orchestrators = HashMap::default();
    for reg in inventory::iter::<OrchestratorRegistration> {
        orchestrators.entry((reg.function)()).or_insert(reg);
    }
    Functions {
        activities,
        orchestrators,
    }
});

type BuildTypeIdHasher = BuildHasherDefault<TypeIdHasher>;

/// A `TypeId` is already a hash: keep the bits it writes instead of hashing them again.
#[derive(Default)]
struct TypeIdHasher(u64);

impl Hasher for TypeIdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = self.0.rotate_left(5) ^ u64::from_le_bytes(word);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = self.0.rotate_left(5) ^ n;
    }

    fn write_u128(&mut self, n: u128) {
        self.write_u64(n as u64 ^ (n >> 64) as u64);
    }

    fn finish(&self) -> u64 {
        self.0
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
