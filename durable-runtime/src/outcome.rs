//! Success or failure, decided by the type an activity or orchestrator returns.
//!
//! A function returning `Result<T, E>` (with `E: Display`) succeeds with `T` or fails with
//! `E`'s message. This goes by the type, not by how it is spelled: a user alias such as
//! `type Fallible<T> = Result<T, String>` or `anyhow::Result<T>` is a `Result` too, so its `Err`
//! fails the task. Any other return type is a plain value and always a success; plain types
//! say so by implementing [`PlainOutput`], which this crate does for the standard ones.

use crate::failure::{ActivityError, FailureDetails, OrchestrationError};
use std::fmt;

/// What an activity or orchestrator returned, as a success value or a failure.
///
/// Implemented for `Result<T, E>` with `E: Display` (an `Err` fails), and for every
/// [`PlainOutput`] type (always a success). The runtime calls it on what the function returned.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be what an activity or orchestrator returns",
    label = "neither a `Result<T, E>` with `E: Display` nor a plain output",
    note = "return `Result<T, E>` where `E: Display` (an `Err` fails the task, with `E`'s \
            `Display` as the message), or a plain serde type; a plain type of your own is marked \
            with `impl durable_runtime::PlainOutput for YourType {{}}`"
)]
pub trait Outcome {
    /// The success value: `T` for `Result<T, E>`, the type itself for a plain output.
    type Ok;
    /// Splits the returned value into success or failure.
    fn into_outcome(self) -> Result<Self::Ok, FailureDetails>;
}

impl<T, E: fmt::Display + 'static> Outcome for Result<T, E> {
    type Ok = T;
    fn into_outcome(self) -> Result<T, FailureDetails> {
        self.map_err(|err| {
            // Our own error types carry `details`; keep them instead of flattening to Display.
            let any: &dyn std::any::Any = &err;
            if let Some(e) = any.downcast_ref::<ActivityError>() {
                FailureDetails::from(e.clone())
            } else if let Some(e) = any.downcast_ref::<OrchestrationError>() {
                FailureDetails::from(e.clone())
            } else {
                FailureDetails::new(err.to_string())
            }
        })
    }
}

impl<T: PlainOutput> Outcome for T {
    type Ok = T;
    fn into_outcome(self) -> Result<T, FailureDetails> {
        Ok(self)
    }
}

/// A return type that is always a success: the function's value is the output as it is.
///
/// Implemented for the standard serde types: `()`, `bool`, numbers, `char`, `String`, `Box`,
/// `Arc`, `Cow<'static, _>`, `Option`, `Vec`, `VecDeque`, the maps and sets, arrays, tuples (of 2
/// to 12), `Duration`, `SystemTime`, `PathBuf`, `Uuid` and `serde_json::Value`. Mark a type of
/// your own with one line:
///
/// ```
/// use durable_runtime::prelude::*;
///
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Receipt {
///     total: u64,
/// }
/// impl durable_runtime::PlainOutput for Receipt {}
///
/// #[activity]
/// async fn checkout(total: u64) -> Receipt {
///     Receipt { total }
/// }
/// ```
///
/// (Returning `Result<Receipt, E>` needs no marker: a `Result` is never a plain output.)
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a `Result`, and not marked as a plain output",
    label = "an activity or orchestrator returns `Result<T, E>` or a plain output",
    note = "if every value of `{Self}` is a success, add `impl durable_runtime::PlainOutput for \
            {Self} {{}}`; to fail the task, return `Result<{Self}, E>` with `E: Display`"
)]
pub trait PlainOutput {}

macro_rules! plain {
    ($($ty:ty),* $(,)?) => {
        $(impl PlainOutput for $ty {})*
    };
}

plain!(
    (),
    bool,
    char,
    u8,
    u16,
    u32,
    u64,
    u128,
    usize,
    i8,
    i16,
    i32,
    i64,
    i128,
    isize,
    f32,
    f64,
    String,
    std::num::NonZeroU8,
    std::num::NonZeroU16,
    std::num::NonZeroU32,
    std::num::NonZeroU64,
    std::num::NonZeroU128,
    std::num::NonZeroUsize,
    std::num::NonZeroI8,
    std::num::NonZeroI16,
    std::num::NonZeroI32,
    std::num::NonZeroI64,
    std::num::NonZeroI128,
    std::num::NonZeroIsize,
    std::time::Duration,
    std::time::SystemTime,
    std::path::PathBuf,
    std::net::IpAddr,
    std::net::Ipv4Addr,
    std::net::Ipv6Addr,
    std::net::SocketAddr,
    serde_json::Value,
    uuid::Uuid,
    crate::payload::Payload,
);

impl<T: ?Sized> PlainOutput for Box<T> {}
impl<T: ?Sized> PlainOutput for std::sync::Arc<T> {}
impl<T: ?Sized + ToOwned> PlainOutput for std::borrow::Cow<'static, T> {}
impl<T> PlainOutput for Option<T> {}
impl<T> PlainOutput for Vec<T> {}
impl<T> PlainOutput for std::collections::VecDeque<T> {}
impl<T> PlainOutput for std::collections::LinkedList<T> {}
impl<T> PlainOutput for std::collections::BinaryHeap<T> {}
impl<T> PlainOutput for std::collections::BTreeSet<T> {}
impl<K, V> PlainOutput for std::collections::BTreeMap<K, V> {}
impl<T, S> PlainOutput for std::collections::HashSet<T, S> {}
impl<K, V, S> PlainOutput for std::collections::HashMap<K, V, S> {}
impl<T, const N: usize> PlainOutput for [T; N] {}

macro_rules! plain_tuples {
    ($(($($t:ident),+)),* $(,)?) => {
        $(impl<$($t),+> PlainOutput for ($($t,)+) {})*
    };
}

// Not `(A,)`: the compiler would suggest wrapping any unmarked type in a one-tuple.
plain_tuples!(
    (A, B),
    (A, B, C),
    (A, B, C, D),
    (A, B, C, D, E),
    (A, B, C, D, E, F),
    (A, B, C, D, E, F, G),
    (A, B, C, D, E, F, G, H),
    (A, B, C, D, E, F, G, H, I),
    (A, B, C, D, E, F, G, H, I, J),
    (A, B, C, D, E, F, G, H, I, J, K),
    (A, B, C, D, E, F, G, H, I, J, K, L),
);

#[cfg(test)]
mod tests {
    use super::*;

    type Fallible<T> = Result<T, String>;

    #[test]
    fn a_result_alias_fails_by_its_type() {
        let failed: Fallible<u32> = Err("zero".into());
        assert_eq!(failed.into_outcome(), Err(FailureDetails::new("zero")));
        let done: Fallible<u32> = Ok(3);
        assert_eq!(done.into_outcome(), Ok(3));
    }

    #[test]
    fn plain_values_succeed() {
        assert_eq!(Some(2u8).into_outcome(), Ok(Some(2)));
        assert_eq!(
            (1u32, "a".to_string()).into_outcome(),
            Ok((1, "a".to_string()))
        );
    }

    #[test]
    fn activity_errors_keep_their_details() {
        let failed: Result<(), ActivityError> = Err(ActivityError::new("no").with_details("why"));
        let failure = failed.into_outcome().expect_err("fails");
        assert_eq!(failure.details.as_deref(), Some("why"));
    }
}
