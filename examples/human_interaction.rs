//! Human interaction: an approval that waits up to 72 hours for a person, and escalates when
//! nobody answers in time.
//!
//! The demo starts two requests. The first is approved by raising the `approval` event from
//! the client. The second gets a shortened timeout (an input parameter) and nobody answers it,
//! so its durable timer fires and the request is escalated. Both outcomes are printed.
//!
//! Run: `cargo run --example human_interaction` (the store is `durable.db` in the working
//! directory). `tests/human_interaction.rs` runs the real 72-hour timeout in virtual time.

use durable_runtime::prelude::*;
use serde::{Deserialize, Serialize};

/// How long a person has to answer, unless the request says otherwise.
pub const APPROVAL_TIMEOUT: Duration = Duration::from_secs(72 * 3600);

/// An expense to approve.
#[derive(Serialize, Deserialize)]
pub struct Request {
    /// What is bought.
    pub what: String,
    /// Overrides [`APPROVAL_TIMEOUT`] (the demo uses a few seconds).
    pub timeout_ms: Option<u64>,
}

/// Asks a manager.
#[activity]
pub async fn ask_for_approval(what: String) -> String {
    // A real system would send an email or a chat message with a link here.
    format!("asked a manager to approve {what}")
}

/// Hands the request to the director.
#[activity]
pub async fn escalate(what: String) -> String {
    format!("nobody answered: {what} escalated to the director")
}

/// Asks for approval, then waits for the answer or escalates.
#[orchestrator]
pub async fn approval(
    ctx: OrchestrationContext,
    request: Request,
) -> Result<String, OrchestrationError> {
    ctx.call_activity(ask_for_approval, request.what.clone())
        .await?;
    let timeout = request
        .timeout_ms
        .map_or(APPROVAL_TIMEOUT, Duration::from_millis);
    match ctx
        .wait_for_event_with_timeout::<bool>("approval", timeout)
        .await
    {
        Ok(true) => Ok(format!("{} approved", request.what)),
        Ok(false) => Ok(format!("{} rejected", request.what)),
        Err(EventWaitError::TimedOut { .. }) => {
            Ok(ctx.call_activity(escalate, request.what).await?)
        }
        Err(other) => Err(other.into()),
    }
}

#[tokio::main]
async fn main() -> Result<(), durable_runtime::Error> {
    let runtime = Runtime::builder().sqlite("durable.db").start().await?;
    let client = runtime.client();

    let answered = client
        .start(
            approval,
            Request {
                what: "a laptop (1,200 EUR)".into(),
                timeout_ms: None,
            },
        )
        .await?;
    let unanswered = client
        .start(
            approval,
            Request {
                what: "a team dinner (800 EUR)".into(),
                timeout_ms: Some(2_000),
            },
        )
        .await?;

    // The manager approves the first request; the event is buffered if it arrives before
    // the orchestration waits for it.
    client.raise_event(&answered, "approval", true).await?;

    for id in [answered, unanswered] {
        let status = client
            .wait_for_completion(&id, Duration::from_secs(25))
            .await?;
        println!(
            "{id}: {}: {}",
            status.runtime_status,
            status.output_as::<String>()?
        );
    }
    runtime.shutdown().await;
    Ok(())
}
