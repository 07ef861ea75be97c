//! Operations as values: what a client, an orchestration or another entity sends to an entity,
//! by name or through a typed proxy.

use super::id::EntityId;
use crate::payload::Payload;
use serde::Serialize;
use std::borrow::Cow;
use std::marker::PhantomData;

/// An operation to send to an entity: its name and encoded input, and (as a type) what it
/// returns. Made by name with [`Operation::named`] (for input from HTTP or a CLI), or typed by
/// the proxy functions `#[entity] impl` generates (`Counter::add_op(5)`), which check the name
/// and the input type at compile time.
///
/// ```
/// use durable_runtime::Operation;
/// let add = Operation::named("add", 5);
/// assert_eq!(add.name(), "add");
/// ```
#[must_use = "an operation does nothing until it is sent"]
pub struct Operation<R = serde_json::Value> {
    name: Cow<'static, str>,
    input: Result<Payload, String>,
    /// The entity name a typed operation belongs to: sending it to another entity is refused.
    entity: Option<&'static str>,
    _result: PhantomData<fn() -> R>,
}

impl Operation {
    /// The operation `name` with `input` (its result, if awaited, is read as JSON).
    pub fn named(name: impl Into<Cow<'static, str>>, input: impl Serialize) -> Self {
        Operation {
            name: name.into(),
            input: Payload::encode(&input).map_err(|err| err.to_string()),
            entity: None,
            _result: PhantomData,
        }
    }
}

impl<R> Operation<R> {
    /// A typed operation of the entity registered as `entity` (for generated proxies).
    #[doc(hidden)]
    pub fn typed(entity: &'static str, name: &'static str, input: impl Serialize) -> Self {
        Operation {
            name: Cow::Borrowed(name),
            input: Payload::encode(&input).map_err(|err| err.to_string()),
            entity: Some(entity),
            _result: PhantomData,
        }
    }

    /// An operation of the runtime's own (the lock and unlock of critical sections).
    pub(crate) fn reserved(name: &'static str) -> Self {
        Operation {
            name: Cow::Borrowed(name),
            input: Ok(Payload::null()),
            entity: None,
            _result: PhantomData,
        }
    }

    /// Whether the name is reserved for the runtime (`__durable.` names): user code cannot
    /// send it.
    pub(crate) fn is_reserved(&self) -> bool {
        self.name.starts_with(RESERVED_PREFIX)
    }

    /// The operation's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The entity name a typed operation belongs to (`None` for one made by name).
    pub fn entity_name(&self) -> Option<&'static str> {
        self.entity
    }

    /// The name and encoded input, or why the input does not encode.
    pub(crate) fn into_parts(self) -> Result<(String, Payload), String> {
        Ok((self.name.into_owned(), self.input?))
    }
}

impl<R> std::fmt::Debug for Operation<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Operation")
            .field("name", &self.name)
            .field("input", &self.input)
            .field("entity", &self.entity)
            .finish()
    }
}

/// Operation names the runtime keeps for itself.
pub(crate) const RESERVED_PREFIX: &str = "__durable.";

/// A signal an operation sends, committed with its batch.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct OutgoingSignal {
    pub entity_id: EntityId,
    pub operation: String,
    pub input: Payload,
}
