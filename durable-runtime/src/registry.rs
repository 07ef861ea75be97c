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
    orchestrators: HashMap<&'static str, &'static OrchestratorRegistration>,
}

impl Registry {
    /// Collects the registrations; two functions of one kind under one name is an error.
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
        let mut orchestrators = HashMap::new();
        for reg in inventory::iter::<OrchestratorRegistration> {
            if let Some(first) = orchestrators.insert(reg.name, reg) {
                return Err(duplicate(
                    "orchestrator",
                    reg.name,
                    first.location,
                    reg.location,
                ));
            }
        }
        Ok(Registry {
            activities,
            orchestrators,
        })
    }

    pub(crate) fn activity(&self, name: &str) -> Option<&'static ActivityRegistration> {
        self.activities.get(name).copied()
    }

    pub(crate) fn orchestrator(&self, name: &str) -> Option<&'static OrchestratorRegistration> {
        self.orchestrators.get(name).copied()
    }
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
