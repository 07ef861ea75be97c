//! What makes a function callable as an activity or startable as an orchestrator, by its type.
//!
//! `#[activity]` and `#[orchestrator]` leave the function itself in place: its name stays the
//! plain `async fn`, callable directly (`say_hello(city).await`, `.map(double)`). What the
//! runtime needs from it at a call site comes from the function item's type:
//!
//! - its input and output types, through [`ActivityFn`] and [`OrchestratorFn`], implemented for
//!   every `async fn` of a suitable shape. `ctx.call_activity(say_hello, input)` checks `input`
//!   against [`ActivityFn::Input`] and types the result as [`ActivityFn::Output`] at compile time;
//! - its registered name (and version), looked up at run time from the function item's
//!   [`TypeId`](std::any::TypeId) in a table built once from what the macros registered (a map
//!   read per call; see [`registered_activity`](crate::registry::registered_activity)).
//!
//! A function that has the right shape but carries no attribute compiles, and fails at run
//! time with a message naming it and saying to add the attribute: the task fails for
//! `call_activity`, and `Client::start` returns [`Error::NotAnOrchestrator`](crate::Error).
//!
//! The type parameter `M` of both traits only tells the implementations apart (a function
//! `fn(A, B) -> R` is `M`); it is always inferred. The shapes:
//!
//! | function | `Input` | `Output` |
//! |---|---|---|
//! | `async fn f() -> R` | `()` | `R`'s success type |
//! | `async fn f(a: A) -> R` | `A` | 〃 |
//! | `async fn f(a: A, b: B, ...) -> R` (up to 8) | `(A, B, ...)` | 〃 |
//! | `async fn f(ctx: ActivityContext, ...) -> R` | as without `ctx` | 〃 |
//! | `async fn f(ctx: OrchestrationContext, ...) -> R` (orchestrators) | as without `ctx` | 〃 |
//!
//! "`R`'s success type" is [`Outcome::Ok`](crate::Outcome): `T` for `Result<T, E>`, `R` itself
//! for a plain type. Inputs and outputs are serde types that own their data.

use crate::activity_context::ActivityContext;
use crate::context::OrchestrationContext;
use crate::outcome::Outcome;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::future::Future;

mod sealed {
    /// Keeps [`ActivityFn`](super::ActivityFn) and [`OrchestratorFn`](super::OrchestratorFn)
    /// implemented only for functions.
    pub trait Sealed<M> {}
}

/// A function that `ctx.call_activity(f, input)` accepts: an `async fn` whose parameters are an
/// optional [`ActivityContext`] and then serde inputs. See the [module docs](self).
///
/// The function must also be marked `#[activity]` to run: one that is not fails its task at
/// run time, with a message naming it.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be called as an activity",
    label = "expected an `async fn` marked `#[activity]`",
    note = "an activity is an `async fn` taking an optional `ActivityContext`, then up to 8 \
            serde inputs, and returning `Result<T, E>` (`E: Display`) or a plain serde type; \
            an orchestrator is started with `Client::start`, not called as an activity"
)]
pub trait ActivityFn<M>: sealed::Sealed<M> + Copy + Send + Sync + 'static {
    /// The input: the parameter type, a tuple for several, `()` for none.
    type Input: Serialize + DeserializeOwned + Send + 'static;
    /// The success value.
    type Output: Serialize + DeserializeOwned + Send + 'static;
}

/// A function that `client.start(f, input)` accepts: an `async fn` whose parameters are an
/// [`OrchestrationContext`] and then serde inputs. See the [module docs](self).
///
/// The function must also be marked `#[orchestrator]` to start: for one that is not,
/// `Client::start` returns [`Error::NotAnOrchestrator`](crate::Error::NotAnOrchestrator).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be started as an orchestrator",
    label = "expected an `async fn` marked `#[orchestrator]`",
    note = "an orchestrator is an `async fn` taking `OrchestrationContext`, then up to 8 serde \
            inputs, and returning `Result<T, E>` (`E: Display`) or a plain serde type"
)]
pub trait OrchestratorFn<M>: sealed::Sealed<M> + Copy + Send + Sync + 'static {
    /// The input: the parameter type after the context, a tuple for several, `()` for none.
    type Input: Serialize + DeserializeOwned + Send + 'static;
    /// The success value.
    type Output: Serialize + DeserializeOwned + Send + 'static;
}

// One `Sealed` impl per arity (0 to 9 parameters) covers the shapes with and without a context.
macro_rules! sealed {
    ($($param:ident),*) => {
        impl<F, Fut, R, $($param,)*> sealed::Sealed<fn($($param),*) -> R> for F
        where
            F: Fn($($param),*) -> Fut,
            Fut: Future<Output = R>,
        {
        }
    };
}

// For each arity: the context-free shape, whose parameters are all serde inputs, and the shape
// with a leading context. The two do not overlap because `ActivityContext` is not a serde type
// (the compiler relies on it: never derive `Serialize` for it), and inference picks the one
// that applies.
macro_rules! shapes {
    ([$($input:ident),*] => $input_type:ty) => {
        impl<F, Fut, R, $($input,)*> ActivityFn<fn($($input),*) -> R> for F
        where
            F: Fn($($input),*) -> Fut + Copy + Send + Sync + 'static,
            Fut: Future<Output = R>,
            R: Outcome,
            R::Ok: Serialize + DeserializeOwned + Send + 'static,
            $($input: Serialize + DeserializeOwned + Send + 'static,)*
        {
            type Input = $input_type;
            type Output = R::Ok;
        }

        impl<F, Fut, R, $($input,)*> ActivityFn<fn(ActivityContext, $($input),*) -> R> for F
        where
            F: Fn(ActivityContext, $($input),*) -> Fut + Copy + Send + Sync + 'static,
            Fut: Future<Output = R>,
            R: Outcome,
            R::Ok: Serialize + DeserializeOwned + Send + 'static,
            $($input: Serialize + DeserializeOwned + Send + 'static,)*
        {
            type Input = $input_type;
            type Output = R::Ok;
        }

        impl<F, Fut, R, $($input,)*> OrchestratorFn<fn(OrchestrationContext, $($input),*) -> R>
            for F
        where
            F: Fn(OrchestrationContext, $($input),*) -> Fut + Copy + Send + Sync + 'static,
            Fut: Future<Output = R>,
            R: Outcome,
            R::Ok: Serialize + DeserializeOwned + Send + 'static,
            $($input: Serialize + DeserializeOwned + Send + 'static,)*
        {
            type Input = $input_type;
            type Output = R::Ok;
        }
    };
}

shapes!([] => ());
shapes!([A] => A);
shapes!([A, B] => (A, B));
shapes!([A, B, C] => (A, B, C));
shapes!([A, B, C, D] => (A, B, C, D));
shapes!([A, B, C, D, E] => (A, B, C, D, E));
shapes!([A, B, C, D, E, G] => (A, B, C, D, E, G));
shapes!([A, B, C, D, E, G, H] => (A, B, C, D, E, G, H));
shapes!([A, B, C, D, E, G, H, I] => (A, B, C, D, E, G, H, I));
sealed!();
sealed!(A);
sealed!(A, B);
sealed!(A, B, C);
sealed!(A, B, C, D);
sealed!(A, B, C, D, E);
sealed!(A, B, C, D, E, G);
sealed!(A, B, C, D, E, G, H);
sealed!(A, B, C, D, E, G, H, I);
sealed!(A, B, C, D, E, G, H, I, J);

#[cfg(test)]
mod tests {
    use super::*;

    fn input_of<F: ActivityFn<M>, M>(_: F) -> std::marker::PhantomData<F::Input> {
        std::marker::PhantomData
    }

    fn output_of<F: ActivityFn<M>, M>(_: F) -> std::marker::PhantomData<F::Output> {
        std::marker::PhantomData
    }

    async fn none() {}
    async fn one(n: u32) -> u32 {
        n
    }
    async fn two(a: u32, b: String) -> Result<String, String> {
        Ok(format!("{a}{b}"))
    }
    async fn with_context(_ctx: ActivityContext, n: u32) -> Vec<u32> {
        vec![n]
    }
    type Ctx = ActivityContext;
    async fn aliased_context(_ctx: Ctx) -> bool {
        true
    }

    #[test]
    fn shapes_are_inferred_with_and_without_a_context() {
        let _: std::marker::PhantomData<()> = input_of(none);
        let _: std::marker::PhantomData<u32> = input_of(one);
        let _: std::marker::PhantomData<(u32, String)> = input_of(two);
        let _: std::marker::PhantomData<String> = output_of(two);
        let _: std::marker::PhantomData<u32> = input_of(with_context);
        let _: std::marker::PhantomData<Vec<u32>> = output_of(with_context);
        let _: std::marker::PhantomData<()> = input_of(aliased_context);
        let _: std::marker::PhantomData<bool> = output_of(aliased_context);
    }
}
