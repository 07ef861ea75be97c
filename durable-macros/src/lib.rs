//! Procedural macros for `durable`. Use them through `durable_runtime`, which re-exports them
//! and provides everything the generated code refers to.
//!
//! Each attribute runs in stages kept apart: `attr` and `signature` parse and validate the
//! attribute and the function, `determinism` checks an orchestrator's body, and `expand` writes
//! the registration. Errors are collected and reported together; where the signature is sound
//! the expansion is still emitted, so one mistake does not cascade into errors at every use.

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
///
/// # Determinism rules, checked at compile time
///
/// Each of these is a compile error at the offending expression, naming the alternative:
///
/// | refused | use instead |
/// |---|---|
/// | wall-clock time: `SystemTime::now`, `Instant::now`, `chrono::Utc::now` / `Local::now`, `OffsetDateTime::now_utc` | `ctx.current_utc_datetime()` |
/// | randomness: anything under `rand`, `fastrand`, `getrandom`; `thread_rng`, `OsRng`, `Uuid::new_v4` | `ctx.random_u64()`, `ctx.new_guid()` |
/// | sleeping and timers: `std::thread::sleep`, anything under `tokio::time` | `ctx.sleep(d)`, `ctx.create_timer(at)` |
/// | spawning: `tokio::spawn`, `tokio::task::spawn*`, `std::thread::spawn` / `scope` / `Builder` | `ctx.call_activity`, `ctx.when_all` |
/// | I/O: `std::fs`, `tokio::fs`, `std::net`, `tokio::net`, `std::process`, `tokio::process`, `reqwest`, `hyper`, `ureq`, ... | an `#[activity]` |
/// | environment: `std::env::*` | the orchestrator's input, or an `#[activity]` |
/// | mutable statics: `static mut`, statics holding atomics, `Mutex`, `RwLock`, `Cell`, `RefCell`; `thread_local!` | local variables, the input |
/// | `tokio::select!` without `biased;`, `futures::select!` | `biased;`, or `ctx.when_any(..)` |
/// | iterating a `HashMap` / `HashSet` (`for .. in`, `.iter()`, `.keys()`, `.values()`, `.drain()`, ...) | `BTreeMap` / `BTreeSet` |
///
/// Paths are followed through `use` items in the function and at the top of the file, renames
/// (`use std::time::SystemTime as Clock;`) and glob imports included.
///
/// # Escape hatch
///
/// For the rare justified case, put `#[durable::allow_nondeterministic("why this is safe")]` on
/// a statement or expression; the reason is required:
///
/// ```ignore
/// #[durable::allow_nondeterministic("only measures the step for a log line")]
/// let started = std::time::Instant::now();
/// ```
///
/// # What a macro cannot see
///
/// The check reads only the function's own tokens (and the file's top-level `use` and `static`
/// items). A non-deterministic call inside a helper function defined elsewhere, a method on a
/// value whose type it cannot know, or an import inside a module of another file slips through.
/// Two things back it up: at run time, a replay that diverges from history fails the instance
/// with a non-determinism error naming the recorded and the new action (history is never
/// corrupted); and clippy can refuse such calls across the whole crate. Add to `clippy.toml`:
///
/// ```toml
/// disallowed-methods = [
///     { path = "std::time::SystemTime::now", reason = "in orchestrators use ctx.current_utc_datetime()" },
///     { path = "std::time::Instant::now", reason = "in orchestrators use ctx.current_utc_datetime()" },
///     { path = "std::thread::sleep", reason = "in orchestrators use ctx.sleep()" },
///     { path = "std::thread::spawn", reason = "in orchestrators use ctx.call_activity()" },
///     { path = "std::env::var", reason = "pass configuration in the orchestrator's input" },
///     { path = "tokio::time::sleep", reason = "in orchestrators use ctx.sleep()" },
///     { path = "tokio::spawn", reason = "in orchestrators use ctx.call_activity()" },
/// ]
/// disallowed-types = [
///     { path = "std::collections::HashMap", reason = "iteration order differs per process: use BTreeMap" },
///     { path = "std::collections::HashSet", reason = "iteration order differs per process: use BTreeSet" },
/// ]
/// ```
///
/// (Clippy applies these to the whole crate, activities included: keep orchestrators in a
/// module or crate of their own if activities need those calls, and allow them there with
/// `#[allow(clippy::disallowed_methods)]`.)
#[proc_macro_attribute]
pub fn orchestrator(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::function(signature::Kind::Orchestrator, args.into(), item.into()).into()
}
