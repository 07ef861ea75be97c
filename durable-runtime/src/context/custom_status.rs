//! Custom status: a small value the orchestrator publishes for status queries.

use super::OrchestrationContext;
use crate::payload::Payload;
use serde::Serialize;

/// The largest custom status, in bytes of JSON: Durable Functions' limit (16 KB). It is kept
/// on the instance's row, which every step rewrites, so it must stay small.
pub const MAX_CUSTOM_STATUS_BYTES: usize = 16 * 1024;

/// Why [`OrchestrationContext::set_custom_status`] refused a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CustomStatusError {
    /// The value does not serialize to JSON.
    #[error("the custom status does not serialize: {0}")]
    Serialize(String),
    /// The value is over [`MAX_CUSTOM_STATUS_BYTES`] (or the runtime's payload limit, if lower).
    #[error("the custom status is {size} bytes, over the limit of {limit} bytes")]
    TooLarge {
        /// Its size as JSON.
        size: usize,
        /// The limit.
        limit: usize,
    },
}

impl OrchestrationContext {
    /// Publishes `value` as the instance's custom status, shown by `Client::get_status` and
    /// `Client::list` (`InstanceStatus::custom_status`) once the step is committed. It is
    /// written only by a step that changes it; `()` (JSON `null`) clears it. It outlives the
    /// run: a run started by [`continue_as_new`](Self::continue_as_new) shows the last status
    /// of the run before until it sets its own (as Durable Functions' task hub does), and a
    /// finished instance keeps its last one.
    ///
    /// A value that does not serialize, or is over [`MAX_CUSTOM_STATUS_BYTES`], is refused
    /// with a [`CustomStatusError`] (and the previous status stays); with `?` it fails the
    /// orchestration.
    ///
    /// ```
    /// use durable_runtime::prelude::*;
    ///
    /// #[activity]
    /// async fn work(step: u32) -> u32 { step }
    ///
    /// #[orchestrator]
    /// async fn job(ctx: OrchestrationContext) -> Result<(), OrchestrationError> {
    ///     for step in 1..=3u32 {
    ///         ctx.set_custom_status(format!("step {step} of 3"))?;
    ///         ctx.call_activity(work, step).await?;
    ///     }
    ///     ctx.set_custom_status(())?;
    ///     Ok(())
    /// }
    /// ```
    pub fn set_custom_status(&self, value: impl Serialize) -> Result<(), CustomStatusError> {
        let payload =
            Payload::encode(&value).map_err(|err| CustomStatusError::Serialize(err.to_string()))?;
        let mut state = self.state.lock();
        let limit = MAX_CUSTOM_STATUS_BYTES.min(state.max_payload_bytes);
        let size = payload.as_str().len();
        if size > limit {
            return Err(CustomStatusError::TooLarge { size, limit });
        }
        state.custom_status = Some(payload);
        Ok(())
    }
}
