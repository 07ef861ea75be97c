//! The user's attributes stay on the function: `#[tracing::instrument]` instruments it under its
//! own name, `#[deprecated]` does not warn until the function is used, a parameter's `#[cfg]`
//! removes the parameter, and a crate that forbids lints the expansion could trip still builds.
#![forbid(non_camel_case_types, unsafe_code, missing_docs)]
#![deny(warnings)]
use durable_runtime::prelude::*;

/// Instrumented: the span is named `traced`.
#[activity]
#[tracing::instrument]
pub async fn traced(name: String) -> String {
    format!("traced {name}")
}

/// Deprecated, and not used: no warning.
#[deprecated(note = "use `traced`")]
#[activity]
pub async fn old(name: String) -> String {
    name
}

/// Only the parameters compiled in are inputs.
#[activity]
pub async fn configured(
    #[cfg(any())] never: u32,
    #[cfg(not(any()))] always: String,
    count: u32,
) -> String {
    format!("{always} x{count}")
}

/// Attributes that change how the function is compiled stay on it.
#[activity]
#[inline]
#[must_use]
pub async fn attributed(n: u32) -> u32 {
    n + 1
}

/// Calls `configured` with the inputs compiled in.
#[orchestrator]
pub async fn caller(ctx: OrchestrationContext) -> Result<String, OrchestrationError> {
    let line = ctx.call_activity(configured, ("a".to_string(), 2)).await?;
    let traced = ctx.call_activity(traced, line).await?;
    Ok(traced)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        assert_eq!(configured("b".into(), 3).await, "b x3");
        assert_eq!(traced("c".into()).await, "traced c");
        assert_eq!(attributed(1).await, 2);
    });
}
