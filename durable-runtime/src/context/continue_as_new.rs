//! Eternal orchestrations: `continue_as_new` ends the run and starts the instance again with
//! new input and an empty history, so that a loop that never ends keeps a bounded history.

use super::state::{ContinueAsNewRequest, OrchestrationState};
use super::{OrchestrationContext, encode_input};
use crate::function::OrchestratorFn;
use parking_lot::Mutex;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

impl OrchestrationContext {
    /// Ends this run and starts the instance again as a new run of the same orchestrator (and
    /// version) with `input`, typed as the orchestrator's own input: Durable Functions'
    /// `ContinueAsNew`. The instance keeps its id, parent link and custom status; its history
    /// starts again empty (the old one is deleted, not kept), so an eternal loop costs a bounded
    /// history. Between the two runs its status is
    /// [`ContinuedAsNew`](crate::RuntimeStatus::ContinuedAsNew), until the new run's first step.
    ///
    /// The returned future never resolves: `return ctx.continue_as_new(me, next).await;` ends
    /// the function whatever its return type is. (The request is recorded when the method is
    /// called, so code that goes on and returns ends the run the same way, as in Durable
    /// Functions; the last request of the step wins.) The run ends with the step, and the work
    /// of the old run is discarded: tasks scheduled in that step are not started, its armed
    /// timers are deleted, and activity results, timer firings and sub-orchestration outcomes
    /// that still arrive for it are dropped without an error. A sub-orchestration that
    /// continues as new stays its parent's child: the parent gets only the outcome of its last
    /// run.
    ///
    /// Raised events this run received and no wait consumed are handed to the new run, before
    /// any event raised later (Durable Functions' `preserveUnprocessedEvents`, which its
    /// current SDKs default to `true`; the in-process .NET API's older default was `false`).
    /// Call [`discard_unprocessed_events`](ContinueAsNew::discard_unprocessed_events) to drop
    /// them instead. Events raised after the step are always delivered to the new run.
    ///
    /// `orchestrator` must be the running orchestrator itself (an instance cannot become
    /// another orchestrator); anything else, or an input that does not serialize or is over
    /// the payload limit, fails the instance with a message saying so.
    ///
    /// ```
    /// use durable_runtime::prelude::*;
    ///
    /// #[orchestrator]
    /// async fn counter(ctx: OrchestrationContext, total: i64) -> Result<i64, OrchestrationError> {
    ///     let add = ctx.wait_for_event::<i64>("add").await?;
    ///     if add != 0 {
    ///         // A new generation, with an empty history, carrying the total.
    ///         return ctx.continue_as_new(counter, total + add).await;
    ///     }
    ///     Ok(total)
    /// }
    /// ```
    pub fn continue_as_new<F: OrchestratorFn<M>, M, O>(
        &self,
        orchestrator: F,
        input: F::Input,
    ) -> ContinueAsNew<O> {
        let _ = orchestrator;
        let input = match crate::registry::orchestrator_of::<F>() {
            Some(registration) => {
                let current = self.state.lock().orchestrator_name;
                if registration.name == current {
                    encode_input(registration.name, &input).and_then(|input| {
                        let limit = self.state.lock().max_payload_bytes;
                        match input.as_str().len() {
                            size if size > limit => Err(format!(
                                "the input to continue '{current}' as new is {size} bytes, over \
                                 the payload limit of {limit} bytes"
                            )),
                            _ => Ok(input),
                        }
                    })
                } else {
                    Err(format!(
                        "orchestrator '{current}' cannot continue as new as another \
                         orchestrator ('{}'): pass the running orchestrator itself",
                        registration.name
                    ))
                }
            }
            None => Err(format!(
                "`{}` is not an orchestrator: pass the running orchestrator (the function \
                 marked #[orchestrator]) to continue_as_new",
                std::any::type_name::<F>()
            )),
        };
        self.state.lock().continue_as_new = Some(Box::new(ContinueAsNewRequest {
            input,
            preserve_unprocessed_events: true,
        }));
        ContinueAsNew {
            state: self.state.clone(),
            output: PhantomData,
        }
    }
}

/// The future of [`OrchestrationContext::continue_as_new`]: it never resolves, because the
/// run ends with the step that asked for it. Its output type is whatever the orchestrator
/// returns, so `return ctx.continue_as_new(me, next).await;` fits any orchestrator.
#[must_use = "the run continues as new either way; awaiting it is what stops the code here"]
pub struct ContinueAsNew<O> {
    state: Arc<Mutex<OrchestrationState>>,
    output: PhantomData<fn() -> O>,
}

impl<O> ContinueAsNew<O> {
    /// Drops the raised events this run received and did not consume, instead of handing them
    /// to the new run (Durable Functions' `preserveUnprocessedEvents: false`).
    ///
    /// ```
    /// use durable_runtime::prelude::*;
    ///
    /// #[orchestrator]
    /// async fn poller(ctx: OrchestrationContext, round: u32) -> u32 {
    ///     ctx.sleep(Duration::from_secs(60)).await;
    ///     ctx.continue_as_new(poller, round + 1).discard_unprocessed_events().await
    /// }
    /// ```
    pub fn discard_unprocessed_events(self) -> Self {
        if let Some(request) = self.state.lock().continue_as_new.as_mut() {
            request.preserve_unprocessed_events = false;
        }
        self
    }
}

impl<O> Future for ContinueAsNew<O> {
    type Output = O;

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<O> {
        // The engine ends the run once the code waits: nothing to wake.
        Poll::Pending
    }
}
