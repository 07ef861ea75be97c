//! What an activity may know about the call it is serving.

/// Passed to an activity that declares it as its first parameter.
///
/// ```
/// use durable_runtime::prelude::*;
///
/// #[activity]
/// async fn audit(ctx: ActivityContext, what: String) -> String {
///     format!("{} #{}: {what}", ctx.instance_id(), ctx.task_id())
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// // Activities stay callable directly, e.g. from a unit test.
/// let line = audit(ActivityContext::for_test("order-7", 2), "paid".into()).await;
/// assert_eq!(line, "order-7 #2: paid");
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct ActivityContext {
    instance_id: String,
    task_id: u64,
    name: String,
}

impl ActivityContext {
    pub(crate) fn new(instance_id: String, task_id: u64, name: String) -> Self {
        ActivityContext {
            instance_id,
            task_id,
            name,
        }
    }

    /// A context for calling an activity directly in a test.
    pub fn for_test(instance_id: impl Into<String>, task_id: u64) -> Self {
        ActivityContext::new(instance_id.into(), task_id, String::new())
    }

    /// The orchestration instance that scheduled this activity.
    pub fn instance_id(&self) -> &str {
        &self.instance_id
    }

    /// The orchestrator's sequence number for this call; with the instance id, it identifies
    /// the call across retries and re-executions (useful as an idempotency key).
    pub fn task_id(&self) -> u64 {
        self.task_id
    }

    /// The registered name of the running activity.
    pub fn name(&self) -> &str {
        &self.name
    }
}
