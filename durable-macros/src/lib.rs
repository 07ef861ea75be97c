//! Procedural macros for `durable`. Use them through `durable_runtime`, which re-exports them
//! and provides everything the generated code refers to.
//!
//! Each attribute runs in stages kept apart: `attr` and `signature` parse and validate the
//! attribute and the function, `placement` refuses a function inside an `impl` block,
//! `determinism` checks an orchestrator's body, and `expand` writes the registration. Errors are
//! collected and reported together; where the signature is sound the registration is still
//! emitted, so one mistake does not cascade into errors at every use.
//!
//! The expansion leaves the function as written (attributes, docs, `#[cfg]` parameters and all)
//! and adds one item next to it, `const _: () = { .. };`, holding a function that decodes the
//! inputs and calls it, and an `inventory` registration of that function with the name and the
//! `TypeId` of the function item. Typed calls (`ctx.call_activity(f, ..)`,
//! `client.start(f, ..)`) find the registration by that `TypeId` and check input and output
//! types through `durable_runtime::ActivityFn` / `OrchestratorFn`, implemented for functions by
//! their shape.

mod attr;
mod determinism;
mod expand;
mod placement;
mod signature;

use proc_macro::TokenStream;

/// Marks an `async fn` as an activity: a unit of work an orchestration schedules, whose result
/// is recorded in history. The function stays as written, a plain `async fn` callable directly
/// (for tests, or `.map(f)`), and its name is also the typed handle for
/// `ctx.call_activity(name, input)`; the attribute only adds a registration next to it.
///
/// Parameters: an optional `ActivityContext` first (recognised by its type, so an alias such as
/// `use durable_runtime::ActivityContext as Ctx;` works), then up to 8 serde types that own
/// their data (the input is that type, a tuple for several, `()` for none). A parameter under
/// `#[cfg(..)]` is an input only when compiled in.
///
/// Returns `Result<T, E>` with `E: Display` (an `Err` fails the task; an alias of `Result`
/// counts, it is decided by the type), or a plain type, always a success: the standard ones
/// work as they are, and a type of your own is marked with
/// `impl durable_runtime::PlainOutput for MyType {}`.
///
/// Options: `#[activity(name = "...")]` registers under another name.
///
/// The function must be free (not inside an `impl`), `async`, safe and not generic; each of
/// these, and a borrowed input or output (`&str`, `Vec<&str>`, `Cow<'_, str>`, `impl Trait`),
/// is one error at the offending token.
#[proc_macro_attribute]
pub fn activity(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::function(signature::Kind::Activity, args.into(), item.into()).into()
}

/// Marks an `async fn` as an orchestrator: a workflow rebuilt by replay, so its code must be
/// deterministic. Its first parameter is `OrchestrationContext` (or an alias of it); the rest
/// are its input, and its return type decides success or failure, as for activities. The
/// function stays as written; `client.start(name, input)` starts it by its name. Options:
/// `#[orchestrator(name = "...", version = "...")]`.
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
