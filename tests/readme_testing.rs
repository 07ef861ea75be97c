//! Tests of the reminder orchestration, on the real engine, in virtual time.

use durable_runtime::prelude::*;
use durable_runtime::testing::{TestRuntime, replay_history};

#[activity]
async fn send_reminder(user: String) -> Result<String, ActivityError> {
    Err(ActivityError::new(format!(
        "no mail server in a test ({user})"
    )))
}

#[orchestrator]
async fn remind(ctx: OrchestrationContext, user: String) -> Result<String, OrchestrationError> {
    let answer = ctx.wait_for_event::<String>("answer");
    let deadline = ctx.sleep(Duration::from_secs(72 * 3600));
    match ctx.when_any2(answer, deadline).await {
        Either::Left(answer) => Ok(format!("{user} answered {}", answer?)),
        Either::Right(()) => Ok(ctx.call_activity(send_reminder, user).await?),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn nobody_answers_for_three_days() -> Result<(), Box<dyn std::error::Error>> {
    let test = TestRuntime::new().await?;
    test.mock_activity(send_reminder, |user: String| format!("reminded {user}"))?;
    let id = test.client().start(remind, "ada".to_string()).await?;

    // Jumps the virtual clock to each due timer while every instance is idle: 72 hours in ms.
    let status = test.wait_for_completion(&id).await?;
    assert_eq!(status.output_as::<String>()?, "reminded ada");
    assert_eq!(test.elapsed(), Duration::from_secs(72 * 3600));
    assert_eq!(test.calls_of(send_reminder)?, ["ada"]);

    // The recorded history replays against the code as it is now (fixtures: load_history).
    replay_history(remind, &status.history.unwrap_or_default())?.into_result()?;
    test.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_answer_before_the_deadline_wins() -> Result<(), Box<dyn std::error::Error>> {
    let test = TestRuntime::new().await?;
    let id = test.client().start(remind, "bob".to_string()).await?;
    test.advance(Duration::from_secs(71 * 3600)).await?; // fires the timers due on the way
    test.client().raise_event(&id, "answer", "yes").await?;
    let status = test.wait_for_completion(&id).await?;
    assert_eq!(status.output_as::<String>()?, "bob answered yes");
    assert!(test.activity_calls().is_empty());
    test.shutdown().await;
    Ok(())
}
