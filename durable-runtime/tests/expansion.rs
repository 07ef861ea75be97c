//! What `#[activity]` and `#[orchestrator]` expand to keeps valid code valid, and it runs: each
//! shape that a plain `async fn` allows is compiled here and run under a runtime, with its
//! output checked (issue 11, "the expansion").
// The generated code must not introduce a type named in lower case, or anything else a strict
// crate forbids.
#![forbid(non_camel_case_types)]

mod support;

use durable_runtime::prelude::*;
use durable_runtime::registry::{registered_activity, registered_orchestrator};
use durable_runtime::{Error, FailureDetails};
use std::sync::{Mutex, Once};
use support::{TestStore, WAIT};

// --- The function keeps its name: locals, parameters and modules named like it ---

#[activity]
async fn greeting(name: String) -> String {
    format!("hello {name}")
}

#[activity]
async fn total(values: Vec<u32>) -> u32 {
    values.iter().sum()
}

/// A parameter named like the function.
#[activity]
async fn city(city: String) -> String {
    city.to_uppercase()
}

#[activity]
async fn double(n: u64) -> u64 {
    n * 2
}

/// The usual layout: a module holding a function of its own name, re-exported.
mod send_email {
    use durable_runtime::prelude::*;

    /// Sends nothing; says to whom.
    #[activity]
    pub async fn send_email(to: String) -> String {
        format!("sent to {to}")
    }
}
pub use send_email::send_email;

#[orchestrator]
async fn shadowing(ctx: OrchestrationContext, name: String) -> Result<String, OrchestrationError> {
    // A local named like the activity, bound from a call to it.
    let greeting = ctx.call_activity(greeting, name).await?;
    let total = ctx.call_activity(total, vec![1, 2, 3]).await?;
    // A closure argument named like an activity.
    let city = ctx
        .when_all(["oslo", "lima"].map(|city| ctx.call_activity(self::city, city.to_string())))
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    let sent = ctx.call_activity(send_email, "ada".to_string()).await?;
    Ok(format!(
        "{greeting} | {total} | {} | {sent}",
        city.join(",")
    ))
}

/// A parameter of an orchestrator named like an activity.
#[orchestrator]
async fn parameter_named_like_an_activity(
    ctx: OrchestrationContext,
    total: u32,
) -> Result<u32, OrchestrationError> {
    Ok(total + ctx.call_activity(self::total, vec![total]).await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_stay_the_functions_and_run() {
    let store = TestStore::new();
    let (runtime, client) = store.start().await;
    let id = client
        .start(shadowing, "ada".to_string())
        .await
        .expect("start");
    let status = client.wait_for_completion(&id, WAIT).await.expect("done");
    assert_eq!(
        status.output_as::<String>().expect("completed"),
        "hello ada | 6 | OSLO,LIMA | sent to ada"
    );
    let id = client
        .start(parameter_named_like_an_activity, 4)
        .await
        .expect("start");
    let status = client.wait_for_completion(&id, WAIT).await.expect("done");
    assert_eq!(status.output_as::<u32>().expect("completed"), 8);
    runtime.shutdown().await;
}

#[tokio::test]
async fn functions_stay_callable_directly() {
    // A local named like the function it calls.
    let total = total(vec![2, 3]).await;
    assert_eq!(total, 5);
    assert_eq!(city("rome".into()).await, "ROME");
    // A function item passed where a closure goes.
    let doubled = futures::future::join_all([1, 2, 3].map(double)).await;
    assert_eq!(doubled, [2, 4, 6]);
    assert_eq!(
        registered_activity(send_email).map(|r| r.name),
        Some("send_email")
    );
}

// --- Success or failure by type, not by spelling ---

type Fallible<T> = Result<T, String>;

#[activity]
async fn check(n: u32) -> Fallible<u32> {
    if n == 0 { Err("zero".into()) } else { Ok(n) }
}

/// A plain return type that is not a `Result`: always a success, `None` included.
#[activity]
async fn maybe(n: u32) -> Option<u32> {
    (n > 0).then_some(n)
}

#[orchestrator]
async fn checking(ctx: OrchestrationContext, n: u32) -> Result<String, OrchestrationError> {
    let maybe = ctx.call_activity(maybe, n).await?;
    match ctx.call_activity(check, n).await {
        Ok(value) => Ok(format!("ok {value} {maybe:?}")),
        Err(failed) => Ok(format!(
            "failed {}: {} {maybe:?}",
            failed.name, failed.message
        )),
    }
}

/// An orchestrator whose alias-of-`Result` output fails the instance.
#[orchestrator]
async fn fallible_orchestrator(ctx: OrchestrationContext, n: u32) -> Fallible<u32> {
    let _ = ctx;
    if n == 0 { Err("zero".into()) } else { Ok(n) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alias_of_result_fails_by_its_err() {
    let store = TestStore::new();
    let (runtime, client) = store.start().await;
    let failing = client.start(checking, 0).await.expect("start");
    let passing = client.start(checking, 5).await.expect("start");
    let status = client
        .wait_for_completion(&failing, WAIT)
        .await
        .expect("done");
    assert_eq!(
        status.output_as::<String>().expect("completed"),
        "failed check: zero None"
    );
    let status = client
        .wait_for_completion(&passing, WAIT)
        .await
        .expect("done");
    assert_eq!(
        status.output_as::<String>().expect("completed"),
        "ok 5 Some(5)"
    );

    let failed = client.start(fallible_orchestrator, 0).await.expect("start");
    let status = client
        .wait_for_completion(&failed, WAIT)
        .await
        .expect("done");
    assert_eq!(status.runtime_status, RuntimeStatus::Failed, "{status:?}");
    assert_eq!(status.failure, Some(FailureDetails::new("zero")));
    runtime.shutdown().await;
}

/// An error type that is only ever displayed may be borrowed for `'static`, as for a plain fn.
#[activity]
async fn positive(n: i64) -> Result<i64, &'static str> {
    if n > 0 { Ok(n) } else { Err("not positive") }
}

/// The same for an orchestrator: its `Err` fails the instance with the text.
#[orchestrator]
async fn positive_sum(ctx: OrchestrationContext, n: i64) -> Result<i64, &'static str> {
    match ctx.call_activity(positive, n).await {
        Ok(n) => Ok(n + 1),
        Err(_) => Err("the activity refused it"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_str_error_fails_with_its_text() {
    let store = TestStore::new();
    let (runtime, client) = store.start().await;
    let passing = client.start(positive_sum, 2).await.expect("start");
    let failing = client.start(positive_sum, -2).await.expect("start");
    let status = client
        .wait_for_completion(&passing, WAIT)
        .await
        .expect("done");
    assert_eq!(status.output_as::<i64>().expect("completed"), 3);
    let status = client
        .wait_for_completion(&failing, WAIT)
        .await
        .expect("done");
    assert_eq!(status.runtime_status, RuntimeStatus::Failed, "{status:?}");
    assert_eq!(
        status.failure,
        Some(FailureDetails::new("the activity refused it"))
    );
    assert_eq!(positive(-1).await, Err("not positive"));
    runtime.shutdown().await;
}

// --- Attributes land on the function ---

/// Names of the spans created in this process since [`record_spans`].
static SPAN_NAMES: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Installs a subscriber that records span names, once per test binary.
fn record_spans() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        tracing::subscriber::set_global_default(SpanNames)
            .expect("no other global subscriber in this test binary");
    });
}

/// Records the name of each new span; nothing else.
struct SpanNames;

impl tracing::Subscriber for SpanNames {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let mut names = SPAN_NAMES.lock().unwrap_or_else(|e| e.into_inner());
        names.push(span.metadata().name().to_string());
        tracing::span::Id::from_u64(names.len() as u64)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, _: &tracing::Event<'_>) {}
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[activity]
#[tracing::instrument]
async fn traced_greeting(name: String) -> String {
    format!("traced {name}")
}

#[deprecated(note = "use `greeting`")]
#[activity]
async fn old_greeting(name: String) -> String {
    format!("old {name}")
}

/// Deprecated through `cfg_attr`: the registration still uses it without a warning.
#[cfg_attr(not(any()), deprecated(note = "use `greeting`"))]
#[activity]
async fn older_greeting(name: String) -> String {
    format!("older {name}")
}

/// Parameters under `#[cfg]`: only those compiled in are inputs.
#[activity]
async fn configured(
    #[cfg(any())] never: u32,
    #[cfg(not(any()))] always: String,
    #[cfg(any())] never_either: Vec<u8>,
    count: u32,
) -> String {
    format!("{always} x{count}")
}

/// A parameter under `#[cfg]` that is compiled in, first.
#[activity]
async fn configured_first(#[cfg(not(any()))] first: u32, second: u32) -> u32 {
    first * 10 + second
}

#[orchestrator]
#[allow(deprecated)]
async fn attributed(ctx: OrchestrationContext) -> Result<Vec<String>, OrchestrationError> {
    Ok(vec![
        ctx.call_activity(traced_greeting, "ada".into()).await?,
        ctx.call_activity(old_greeting, "bob".into()).await?,
        ctx.call_activity(older_greeting, "cy".into()).await?,
        ctx.call_activity(configured, ("cfg".to_string(), 3))
            .await?,
        ctx.call_activity(configured_first, (4, 2))
            .await?
            .to_string(),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attributes_apply_to_the_function_itself() {
    record_spans();
    let store = TestStore::new();
    let (runtime, client) = store.start().await;
    let id = client.start(attributed, ()).await.expect("start");
    let status = client.wait_for_completion(&id, WAIT).await.expect("done");
    assert_eq!(
        status.output_as::<Vec<String>>().expect("completed"),
        ["traced ada", "old bob", "older cy", "cfg x3", "42"]
    );
    runtime.shutdown().await;
    let names = SPAN_NAMES.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert!(
        names.iter().any(|name| name == "traced_greeting"),
        "#[tracing::instrument] names its span after the function: {names:?}"
    );
    assert!(
        !names.iter().any(|name| name.starts_with("__durable")),
        "{names:?}"
    );
}

// --- A context imported under another name ---

use durable_runtime::ActivityContext as Ctx;
use durable_runtime::OrchestrationContext as Workflow;

#[activity]
async fn where_am_i(ctx: Ctx, suffix: String) -> String {
    format!("{}#{}{suffix}", ctx.instance_id(), ctx.task_id())
}

#[orchestrator]
async fn aliased(ctx: Workflow) -> Result<String, OrchestrationError> {
    Ok(ctx.call_activity(where_am_i, "!".to_string()).await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aliased_context_is_the_context() {
    let store = TestStore::new();
    let (runtime, client) = store.start().await;
    let id = client
        .start_with_id(aliased, "aliased-1", ())
        .await
        .expect("start");
    let status = client.wait_for_completion(&id, WAIT).await.expect("done");
    assert_eq!(
        status.output_as::<String>().expect("completed"),
        "aliased-1#0!"
    );
    runtime.shutdown().await;
}

// --- A private input type of a `pub(crate)` function ---

mod orders {
    use durable_runtime::prelude::*;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// Private to this module. (Written by hand: serde's derive emits
    /// `#[allow(non_camel_case_types)]`, which this crate forbids.)
    struct Draft {
        lines: u32,
    }

    impl Serialize for Draft {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            self.lines.serialize(serializer)
        }
    }

    impl<'de> Deserialize<'de> for Draft {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            u32::deserialize(deserializer).map(|lines| Draft { lines })
        }
    }

    #[allow(private_interfaces)]
    #[activity]
    pub(crate) async fn submit(draft: Draft) -> u32 {
        draft.lines
    }

    #[orchestrator]
    pub(crate) async fn ordering(
        ctx: OrchestrationContext,
        lines: u32,
    ) -> Result<u32, OrchestrationError> {
        Ok(ctx.call_activity(submit, Draft { lines }).await?)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_input_type_works() {
    let store = TestStore::new();
    let (runtime, client) = store.start().await;
    let id = client.start(orders::ordering, 7).await.expect("start");
    let status = client.wait_for_completion(&id, WAIT).await.expect("done");
    assert_eq!(status.output_as::<u32>().expect("completed"), 7);
    runtime.shutdown().await;
}

// --- A function without the attribute fails clearly at run time ---

async fn unmarked(name: String) -> String {
    name
}

async fn unmarked_orchestrator(_ctx: OrchestrationContext) -> u32 {
    1
}

#[orchestrator]
async fn calls_unmarked(ctx: OrchestrationContext) -> Result<String, OrchestrationError> {
    match ctx.call_activity(unmarked, "x".to_string()).await {
        Ok(out) => Ok(format!("ran {out}?")),
        Err(failed) => Ok(format!("{} | {}", failed.name, failed.message)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_without_the_attribute_is_named_in_the_failure() {
    let store = TestStore::new();
    let (runtime, client) = store.start().await;
    let id = client.start(calls_unmarked, ()).await.expect("start");
    let status = client.wait_for_completion(&id, WAIT).await.expect("done");
    assert_eq!(
        status.output_as::<String>().expect("completed"),
        "expansion::unmarked | `expansion::unmarked` is not an activity: mark the function with \
         #[activity] (or call a registered activity by name with `call_activity_by_name`)"
    );
    match client.start(unmarked_orchestrator, ()).await {
        Err(err @ Error::NotAnOrchestrator(_)) => assert_eq!(
            err.to_string(),
            "`expansion::unmarked_orchestrator` is not an orchestrator: mark the function with \
             #[orchestrator]"
        ),
        other => panic!("expected NotAnOrchestrator, got {other:?}"),
    }
    assert_eq!(registered_activity(unmarked), None);
    assert_eq!(
        registered_orchestrator(calls_unmarked).map(|r| r.name),
        Some("calls_unmarked")
    );
    runtime.shutdown().await;
}

// --- A reference to a function is not the function ---

#[orchestrator]
async fn calls_by_reference(ctx: OrchestrationContext) -> Result<String, OrchestrationError> {
    match ctx.call_activity(&greeting, "x".to_string()).await {
        Ok(out) => Ok(format!("ran {out}?")),
        Err(failed) => Ok(failed.message),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reference_to_a_function_is_named_as_one() {
    let store = TestStore::new();
    let (runtime, client) = store.start().await;
    let id = client.start(calls_by_reference, ()).await.expect("start");
    let status = client.wait_for_completion(&id, WAIT).await.expect("done");
    assert_eq!(
        status.output_as::<String>().expect("completed"),
        "`&expansion::greeting` is a reference to a function: pass the function itself, \
         `call_activity(expansion::greeting, ..)`"
    );
    match client.start(&calls_by_reference, ()).await {
        Err(err @ Error::NotAnOrchestrator(_)) => assert_eq!(
            err.to_string(),
            "`&expansion::calls_by_reference` is a reference to a function: pass the function \
             itself, `start(expansion::calls_by_reference, ..)`"
        ),
        other => panic!("expected NotAnOrchestrator, got {other:?}"),
    }
    runtime.shutdown().await;
}
