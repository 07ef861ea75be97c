//! What an orchestrator asks for ([`Action`]) and what history recorded for a task
//! ([`Recorded`]): replay compares the two, task by task, to detect a change of code.

use crate::payload::Payload;

/// Something the orchestrator asked for, which history records.
#[derive(Debug, Clone)]
pub(crate) enum Action {
    /// Run an activity.
    Activity { name: String, input: Payload },
    /// Fire a durable timer at this time (ms since the epoch).
    Timer { fire_at_ms: i64 },
    /// Create a sub-orchestration.
    SubOrchestration(Box<ChildCall>),
    /// Send an operation to an entity.
    Entity(Box<EntityAction>),
}

/// An entity operation the code sent.
#[derive(Debug, Clone)]
pub(crate) struct EntityAction {
    pub entity_id: String,
    pub operation: String,
    pub input: Payload,
    /// One way (no result comes back).
    pub signal: bool,
}

/// A sub-orchestration the code asked for.
#[derive(Debug, Clone)]
pub(crate) struct ChildCall {
    /// The child's registered orchestrator name.
    pub name: String,
    /// Which version of it runs.
    pub version: ChildVersion,
    /// The child's instance id (given by the code, or derived from the run and task id).
    pub instance_id: String,
    pub input: Payload,
}

/// Which version of a sub-orchestrator a call runs.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ChildVersion {
    /// The version of the function the code passed (`None`: it declares none).
    Exact(Option<String>),
    /// The newest registered version: a call by name, resolved when the step is recorded.
    Newest,
}

/// What history says a task id was used for, to check the code against on replay.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Recorded {
    Activity(String),
    Timer,
    SubOrchestration {
        name: String,
        instance_id: String,
    },
    Entity {
        entity_id: String,
        operation: String,
        signal: bool,
    },
}

impl Recorded {
    pub(crate) fn describe(&self) -> String {
        match self {
            Recorded::Activity(name) => format!("TaskScheduled '{name}'"),
            Recorded::Timer => "TimerCreated".to_string(),
            Recorded::SubOrchestration { name, instance_id } => {
                format!("SubOrchestrationInstanceCreated '{name}' (instance '{instance_id}')")
            }
            Recorded::Entity {
                entity_id,
                operation,
                signal,
            } => format!(
                "EntityOperation{} '{operation}' on '{entity_id}'",
                if *signal { "Signaled" } else { "Called" }
            ),
        }
    }
}

impl Action {
    pub(super) fn recorded(&self) -> Recorded {
        match self {
            Action::Activity { name, .. } => Recorded::Activity(name.clone()),
            Action::Timer { .. } => Recorded::Timer,
            Action::SubOrchestration(call) => Recorded::SubOrchestration {
                name: call.name.clone(),
                instance_id: call.instance_id.clone(),
            },
            Action::Entity(call) => Recorded::Entity {
                entity_id: call.entity_id.clone(),
                operation: call.operation.clone(),
                signal: call.signal,
            },
        }
    }

    pub(crate) fn describe(&self) -> String {
        match self {
            Action::Activity { name, .. } => format!("schedules activity '{name}'"),
            Action::Timer { .. } => "creates a timer".to_string(),
            Action::SubOrchestration(call) => format!(
                "creates sub-orchestration '{}' (instance '{}')",
                call.name, call.instance_id
            ),
            Action::Entity(call) => format!(
                "{} operation '{}' on entity '{}'",
                if call.signal { "signals" } else { "calls" },
                call.operation,
                call.entity_id
            ),
        }
    }
}
