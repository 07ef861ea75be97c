//! Replay-safe logging: `tracing` events an orchestrator emits once per execution of its code,
//! never again when a replay re-runs the same step.
//!
//! Each macro takes the [`OrchestrationContext`](crate::OrchestrationContext) first, then
//! whatever the `tracing` macro of the same name takes. A line is skipped while
//! [`is_replaying`](crate::OrchestrationContext::is_replaying) is true, so it appears once for a
//! committed step however often the instance is replayed (after a restart, or every step with
//! the cache off). A step whose commit fails is computed again from history and logs again:
//! once per attempt to run new code, as in Durable Functions.

/// Generates one replay-safe macro over the `tracing` macro of the same name.
macro_rules! replay_safe {
    ($(#[$doc:meta])* $name:ident, $dollar:tt) => {
        $(#[$doc])*
        #[macro_export]
        macro_rules! $name {
            ($dollar ctx:expr, $dollar ($dollar arg:tt)+) => {
                if !$crate::OrchestrationContext::is_replaying(&$dollar ctx) {
                    $crate::__private::tracing::$name!($dollar ($dollar arg)+)
                }
            };
        }
    };
}

replay_safe!(
    /// `tracing::info!` once per execution of the orchestrator's code, not on replay.
    ///
    /// ```
    /// use durable_runtime::prelude::*;
    ///
    /// #[activity]
    /// async fn charge(amount: u64) -> u64 { amount }
    ///
    /// #[orchestrator]
    /// async fn checkout(ctx: OrchestrationContext, amount: u64) -> Result<u64, OrchestrationError> {
    ///     durable_runtime::info!(ctx, amount, "charging");
    ///     let charged = ctx.call_activity(charge, amount).await?;
    ///     durable_runtime::info!(ctx, "charged {charged}"); // once, whatever replays later
    ///     Ok(charged)
    /// }
    /// ```
    info, $
);
replay_safe!(
    /// `tracing::warn!` once per execution of the orchestrator's code, not on replay (see
    /// [`info!`](crate::info)).
    warn, $
);
replay_safe!(
    /// `tracing::error!` once per execution of the orchestrator's code, not on replay (see
    /// [`info!`](crate::info)).
    error, $
);
replay_safe!(
    /// `tracing::debug!` once per execution of the orchestrator's code, not on replay (see
    /// [`info!`](crate::info)).
    debug, $
);
replay_safe!(
    /// `tracing::trace!` once per execution of the orchestrator's code, not on replay (see
    /// [`info!`](crate::info)).
    trace, $
);
