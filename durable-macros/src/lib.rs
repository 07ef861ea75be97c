//! Procedural macros for `durable`. Use them through `durable_runtime`, which re-exports them
//! and provides everything the generated code refers to.
//!
//! Each attribute runs in three stages kept apart: [`signature`] parses and validates the
//! function, [`expand`] writes the registration, and errors are collected and reported
//! together beside the user's unchanged function, so tooling keeps working.

mod attr;
mod determinism;
mod expand;
mod signature;

use proc_macro::TokenStream;

/// Marks an `async fn` as an activity: a unit of work an orchestration schedules, whose result
/// is recorded in history. The function's name becomes a typed handle for
/// `ctx.call_activity(name, input)`, and the function stays directly callable (for tests).
///
/// Parameters: an optional `ActivityContext` first, then zero or more serde types (the input is
/// that type, a tuple for several, `()` for none). Returns `Result<T, E>` with `E: Display`, or
/// plain `T`. Options: `#[activity(name = "...")]` registers under another name.
#[proc_macro_attribute]
pub fn activity(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::function(signature::Kind::Activity, args.into(), item.into()).into()
}

/// Marks an `async fn` as an orchestrator: a workflow rebuilt by replay, so its code must be
/// deterministic. Its first parameter is `OrchestrationContext`; the rest are its input, as for
/// activities. Options: `#[orchestrator(name = "...", version = "...")]`.
#[proc_macro_attribute]
pub fn orchestrator(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::function(signature::Kind::Orchestrator, args.into(), item.into()).into()
}
