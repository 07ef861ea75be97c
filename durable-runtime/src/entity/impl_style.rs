//! What the code `#[entity] impl Type { .. }` generates calls: a live impl-style entity, and
//! the decoding of inputs and encoding of results of its operations. Not public API.

use super::behavior::{EntityBehavior, OperationCall, OperationDone, OperationFuture};
use super::context::EntityError;
use crate::payload::Payload;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Runs one operation of an impl-style entity on its state (`None`: no state).
pub type ImplDispatch<T> = for<'a> fn(&'a mut Option<T>, OperationCall<'a>) -> OperationFuture<'a>;

/// A live impl-style entity: its state and the generated dispatch of its operations.
pub struct ImplEntity<T> {
    state: Option<T>,
    dispatch: ImplDispatch<T>,
}

impl<T> ImplEntity<T>
where
    T: Serialize + DeserializeOwned + Default + Send + 'static,
{
    /// A live entity with no state.
    pub fn boxed(dispatch: ImplDispatch<T>) -> Box<dyn EntityBehavior> {
        Box::new(ImplEntity {
            state: None,
            dispatch,
        })
    }
}

impl<T> EntityBehavior for ImplEntity<T>
where
    T: Serialize + DeserializeOwned + Default + Send + 'static,
{
    fn restore(&mut self, state: Option<&Payload>) -> Result<(), String> {
        self.state = state
            .map(|payload| {
                payload.decode::<T>().map_err(|err| {
                    format!(
                        "the stored state does not decode as `{}`: {err}",
                        std::any::type_name::<T>()
                    )
                })
            })
            .transpose()?;
        Ok(())
    }

    fn snapshot(&self) -> Result<Option<Payload>, String> {
        self.state
            .as_ref()
            .map(|state| Payload::encode(state).map_err(|err| err.to_string()))
            .transpose()
    }

    fn run<'a>(&'a mut self, call: OperationCall<'a>) -> OperationFuture<'a> {
        (self.dispatch)(&mut self.state, call)
    }
}

/// Decodes an operation's input as `T`.
pub fn decode_input<T: DeserializeOwned>(call: &OperationCall<'_>) -> Result<T, EntityError> {
    call.input.decode().map_err(|err| EntityError::Input {
        operation: call.name.to_string(),
        expected: std::any::type_name::<T>(),
        reason: err.to_string(),
    })
}

/// The error for an operation the entity does not have.
pub fn unknown_operation(entity: &str, operation: &str) -> EntityError {
    EntityError::UnknownOperation {
        entity: entity.to_string(),
        operation: operation.to_string(),
    }
}

/// The outcome of an operation that returned a plain value.
pub fn value_output<T: Serialize>(operation: &str, value: T) -> Result<OperationDone, EntityError> {
    let result = Payload::encode(&value).map_err(|err| EntityError::Encode {
        operation: operation.to_string(),
        reason: err.to_string(),
    })?;
    Ok(OperationDone::with_result(Some(result)))
}

/// The outcome of an operation that returned a `Result`.
pub fn result_output<T: Serialize, E: std::fmt::Display>(
    operation: &str,
    returned: Result<T, E>,
) -> Result<OperationDone, EntityError> {
    match returned {
        Ok(value) => value_output(operation, value),
        Err(err) => Err(EntityError::Failed(err.to_string())),
    }
}
