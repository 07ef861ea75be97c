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
mod entity;
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
/// | wall-clock time: `SystemTime::now`, `Instant::now`, `chrono::Utc::now` / `Local::now`, `OffsetDateTime::now_utc`, `UtcDateTime::now`, jiff's `Timestamp::now` / `Zoned::now`; `.elapsed()` on a clock reading (`UNIX_EPOCH.elapsed()`, `ctx.current_utc_datetime().elapsed()`) | `ctx.current_utc_datetime()` |
/// | randomness: anything under `rand`, `fastrand`, `getrandom`; `Uuid::new_v4` / `now_v7`; `RandomState` (random hashing) | `ctx.random_u64()`, `ctx.new_guid()`; a `BTreeMap`, or a fixed hasher |
/// | sleeping and timers: `std::thread::sleep`, anything under `tokio::time` | `ctx.sleep(d)`, `ctx.create_timer(at)` |
/// | `tokio::time::timeout` | `ctx.when_any2(task, ctx.sleep(d))` |
/// | `tokio::time::interval` | a loop on `ctx.sleep(period)` |
/// | spawning: `tokio::spawn`, `tokio::task::spawn*`, `JoinSet`, `tokio::runtime` (`Handle::current().spawn(..)`, a `Runtime`), `std::thread::spawn` / `scope` / `Builder`, `async_std::task::spawn*`, `smol::spawn` | `ctx.call_activity`, `ctx.when_all` |
/// | I/O: `std::fs`, `tokio::fs`, `std::net`, `tokio::net`, `tokio::io`, `std::io::stdin`, `std::process`, `tokio::process`, `reqwest`, `hyper`, `ureq`, ... | an `#[activity]` |
/// | environment: `std::env::*`, `std::process::id` | the orchestrator's input, or an `#[activity]` |
/// | mutable statics: `static mut`, statics holding atomics, `Mutex`, `RwLock`, `Cell`, `RefCell`, `OnceLock`; `thread_local!` (declared in the body, or in the file and read in the body); a static whose initializer is refused (`LazyLock::new(SystemTime::now)`) | local variables, the input |
/// | `tokio::select!` without `biased;`, `futures::select!` (the branches of every select are checked, biased or not) | `biased;`, or `ctx.when_any(..)` |
/// | iterating a `HashMap` / `HashSet` with the default, random hasher (one with a fixed hasher, `HashMap<K, V, BuildHasherDefault<DefaultHasher>>`, is fine): `for .. in`, `.iter()`, `.keys()`, `.values()`, `.drain()`, `.union()` / `.intersection()` / `.difference()` / `.symmetric_difference()`, handing it to `.extend()` / `.chain()` / `.zip()` | `BTreeMap` / `BTreeSet` |
///
/// Names are resolved the way rustc would, within the body and the file: local bindings
/// (`let`, patterns, parameters) and the user's own items and modules shadow imports, `use`
/// items are followed (renames, glob imports of known modules, re-exports through the file's
/// inline modules), and so are type aliases of the file and the body
/// (`type Clock = std::time::SystemTime;`), and `crate::` paths are the user's. So `let env = ..`, `mod process`,
/// `struct Command` or `crate::time::now()` are fine, and a `use rand::prelude::*;` written for
/// an activity refuses only `thread_rng`, `random`, ... where the orchestrator uses them.
/// Arguments of macros are checked when they parse as Rust (`vec!`, `format!`, `assert!`, user
/// macros). A hash collection is followed through its bindings (types, `HashMap::new()`,
/// `HashSet::from(..)`, `.clone()`), and iterating it is allowed where the order cannot show
/// (`.count()`, `.len()`, `.min()`, `.max()`, `.sorted()`, collected into a set or map, or
/// collected into a `Vec` that the next statement sorts: `let mut keys: Vec<_> =
/// map.keys().collect(); keys.sort();`). Plain values of
/// refused modules are allowed: `tokio::time::Duration`, `std::env::consts::*`, the `std::net`
/// address types.
///
/// # Escape hatch
///
/// For the rare justified case, put `#[durable::allow_nondeterministic("why this is safe")]` on
/// a statement, an expression, a match arm or an item inside the body (a nested `fn`, a
/// `static`, an `impl`); the reason is required. The macro removes it; anywhere else in the
/// body (a parameter, a field), on the orchestrator's own parameters, or on the function under
/// `#[orchestrator]` (it cannot cover a whole orchestrator), it is an error saying where it
/// goes. (Written *above* `#[orchestrator]`, it is read by the compiler before the macro runs,
/// which then reports that it cannot find a crate named `durable`.)
///
/// ```ignore
/// #[durable::allow_nondeterministic("only measures the step for a log line")]
/// let started = std::time::Instant::now();
/// ```
///
/// # What the check cannot see
///
/// A proc macro sees the function's tokens and, by reading it, the file around it, before
/// types exist. What lies outside slips through, and two things back the check up: at **run
/// time**, a replay that diverges from history fails the instance with a `NonDeterminism`
/// error naming the recorded and the new action (history is never corrupted), whenever the
/// difference changes what the orchestration schedules; **crate-wide**, clippy resolves every
/// path and type after expansion and can refuse the calls (the snippet below).
///
/// | not seen | why | covered by |
/// |---|---|---|
/// | calls hidden in functions defined elsewhere (another module or file, another crate, a method of the user's type): `helpers::stamp()` calling `SystemTime::now()` | only the body and the file's items are read | the replay check; clippy's `disallowed-methods` |
/// | types inferred from elsewhere: a `HashMap` returned by a function (`let m = load();`), held in a field (`state.seen`) or behind a generic; an `Instant` from elsewhere whose `.elapsed()` is read | no type information before the compiler runs | clippy's `disallowed-types` (`HashMap`, `HashSet`) and `disallowed-methods` (`Instant::elapsed`, `SystemTime::elapsed`); the replay check |
/// | methods on values built elsewhere: `rng.gen()`, `file.read_to_string(..)`, `set.spawn(..)` | only paths are checked, and the value's type is unknown | clippy's `disallowed-types` (`ThreadRng`, `File`, `JoinSet`); the replay check |
/// | a hash collection consumed by a function: `Vec::from_iter(map)`, `serde_json::to_string(&map)` | what the callee does with it is unknown | clippy's `disallowed-types`; the replay check |
/// | names from places the macro cannot read: glob imports of modules in other files (`use crate::prelude::*`, `use super::*` from a parent file), `crate::` paths, statics declared in other files; for an orchestrator declared inside a function, the imports of that function's body | only this file's modules are read; such names are never refused, rather than guessed | clippy; the replay check |
/// | what a macro defined elsewhere expands to, and identifiers captured in format strings (`format!("{COUNTER}")`) | only macro arguments are checked, not expansions | clippy (it runs after expansion); the replay check |
///
/// A `clippy.toml` at the root of the crate that holds the orchestrators (paths into crates the
/// crate does not use are ignored):
///
/// ```toml
/// disallowed-methods = [
///     { path = "std::time::SystemTime::now", reason = "in orchestrators use ctx.current_utc_datetime()" },
///     { path = "std::time::Instant::now", reason = "in orchestrators use ctx.current_utc_datetime()" },
///     { path = "std::time::SystemTime::elapsed", reason = "in orchestrators measure against ctx.current_utc_datetime()" },
///     { path = "std::time::Instant::elapsed", reason = "in orchestrators measure against ctx.current_utc_datetime()" },
///     { path = "std::thread::sleep", reason = "in orchestrators use ctx.sleep()" },
///     { path = "std::thread::spawn", reason = "in orchestrators use ctx.call_activity()" },
///     { path = "std::env::var", reason = "pass configuration in the orchestrator's input" },
///     { path = "std::env::vars", reason = "pass configuration in the orchestrator's input" },
///     { path = "std::fs::read_to_string", reason = "do I/O in an activity" },
///     { path = "std::process::Command::new", reason = "do I/O in an activity" },
///     { path = "tokio::time::sleep", reason = "in orchestrators use ctx.sleep()" },
///     { path = "tokio::time::timeout", reason = "in orchestrators use ctx.when_any2(task, ctx.sleep(d))" },
///     { path = "tokio::time::interval", reason = "in orchestrators loop on ctx.sleep(period)" },
///     { path = "tokio::spawn", reason = "in orchestrators use ctx.call_activity()" },
///     { path = "tokio::task::spawn_blocking", reason = "in orchestrators use ctx.call_activity()" },
///     { path = "rand::random", reason = "in orchestrators use ctx.random_u64()" },
///     { path = "rand::thread_rng", reason = "in orchestrators use ctx.random_u64()" },
///     { path = "uuid::Uuid::new_v4", reason = "in orchestrators use ctx.new_guid()" },
/// ]
/// disallowed-types = [
///     { path = "std::collections::HashMap", reason = "iteration order differs per process: use BTreeMap" },
///     { path = "std::collections::HashSet", reason = "iteration order differs per process: use BTreeSet" },
///     { path = "std::hash::RandomState", reason = "random per process: use BTreeMap or a fixed hasher" },
///     { path = "std::fs::File", reason = "do I/O in an activity" },
///     { path = "tokio::task::JoinSet", reason = "in orchestrators use ctx.when_all()" },
/// ]
/// ```
///
/// (Clippy applies these to the whole crate, activities included: keep orchestrators in a
/// module or crate of their own if activities need those calls, and allow them there with
/// `#[allow(clippy::disallowed_methods, clippy::disallowed_types)]`.)
#[proc_macro_attribute]
pub fn orchestrator(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::function(signature::Kind::Orchestrator, args.into(), item.into()).into()
}

/// Marks a durable entity: a small named object whose state is stored as JSON and changed by
/// operations, one at a time, each exactly once. Two styles:
///
/// *Function style*: an `async fn` taking `&mut EntityContext<State>`, switching on
/// `ctx.operation_name()`; it returns `()` or `Result<(), E>` with `E: Display` (an `Err` fails
/// the operation, and the state goes back to what it was before it).
///
/// ```ignore
/// #[entity]
/// async fn counter(ctx: &mut EntityContext<i64>) -> Result<(), EntityError> {
///     match ctx.operation_name() {
///         "add" => *ctx.state_mut() += ctx.input::<i64>()?,
///         "reset" => ctx.set_state(0),
///         _ => return Err(EntityError::new("unknown operation")),
///     }
///     Ok(())
/// }
/// ```
///
/// *Impl style*: an `impl` block of a `serde` + `Default` type; each `pub fn` is an operation
/// (sync or `async`; `&mut self` changes the state, `&self` reads it, `self` by value deletes
/// it), and the attribute generates typed operations (`Type::add_op(5)`) so that a wrong name
/// or input type does not compile.
///
/// Options: `#[entity(name = "...")]` registers under another name (by default the function's
/// name, or the type's name in snake case).
#[proc_macro_attribute]
pub fn entity(args: TokenStream, item: TokenStream) -> TokenStream {
    entity::expand(args.into(), item.into()).into()
}
