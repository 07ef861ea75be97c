//! The workload the worker processes run (instances of a few activities each, every activity
//! run logged with the pid that ran it) and the checks of its outcome.

use crate::support;
use durable_runtime::prelude::*;
use durable_runtime::{Client, HistoryEvent};
use std::collections::HashSet;

pub(crate) const STEPS: u32 = 5;

#[activity]
pub(crate) async fn shared_step(
    ctx: ActivityContext,
    instance: u32,
    step: u32,
) -> Result<String, ActivityError> {
    support::log_activity_run("DURABLE_SH_LOG", &ctx)?;
    // Work that takes a while (the stall test wants activities in flight).
    if let Some(ms) = std::env::var("DURABLE_SH_ACTIVITY_MS")
        .ok()
        .and_then(|ms| ms.parse().ok())
    {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    Ok(format!("{instance}.{step}"))
}

#[orchestrator]
pub(crate) async fn shared_steps(
    ctx: OrchestrationContext,
    instance: u32,
) -> Result<Vec<String>, OrchestrationError> {
    let mut out = Vec::new();
    for step in 0..STEPS {
        out.push(ctx.call_activity(shared_step, (instance, step)).await?);
    }
    Ok(out)
}

/// Waits for an event, then runs one activity: driven by a client of another process.
#[orchestrator]
pub(crate) async fn waits_for_go(
    ctx: OrchestrationContext,
    instance: u32,
) -> Result<String, OrchestrationError> {
    let go: u32 = ctx.wait_for_event("go").await?;
    let done = ctx.call_activity(shared_step, (instance, go)).await?;
    Ok(done)
}

pub(crate) fn expected_output(instance: u32) -> Vec<String> {
    (0..STEPS)
        .map(|step| format!("{instance}.{step}"))
        .collect()
}

pub(crate) fn instance_id(i: u32) -> String {
    format!("sh-{i:03}")
}

pub(crate) async fn start_all(client: &Client, instances: u32) {
    for i in 0..instances {
        client
            .start_with_id(shared_steps, instance_id(i), i)
            .await
            .expect("starts");
    }
}

/// Waits for every instance and checks its output and history (see [`check_all`]), reading
/// again while the database is down.
pub(crate) async fn check_all_retrying(client: &Client, instances: u32) {
    for i in 0..instances {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        while let Err(err) = client
            .wait_for_completion(&instance_id(i), Duration::from_secs(120))
            .await
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{}: {err}",
                instance_id(i)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    check_all(client, instances).await;
}

/// Waits for every instance and checks its output and history: one `TaskScheduled` and one
/// result per activity, history positions without gap.
pub(crate) async fn check_all(client: &Client, instances: u32) {
    for i in 0..instances {
        let status = client
            .wait_for_completion(&instance_id(i), Duration::from_secs(120))
            .await
            .expect("completes");
        assert_eq!(
            status.runtime_status,
            RuntimeStatus::Completed,
            "{}",
            instance_id(i)
        );
        let output: Vec<String> = status.output_as().expect("output decodes");
        assert_eq!(output, expected_output(i));
        let history = support::history(client, &instance_id(i)).await;
        for (n, record) in history.iter().enumerate() {
            assert_eq!(
                record.seq,
                n as u64,
                "a gap in the history of {}",
                instance_id(i)
            );
        }
        let mut scheduled = HashSet::new();
        let mut results = HashSet::new();
        for record in &history {
            match &record.event {
                HistoryEvent::TaskScheduled { task_id, .. } => {
                    assert!(scheduled.insert(*task_id), "task {task_id} scheduled twice")
                }
                HistoryEvent::TaskCompleted { task_id, .. } => {
                    assert!(results.insert(*task_id), "task {task_id} recorded twice")
                }
                HistoryEvent::TaskFailed { task_id, .. } => panic!("task {task_id} failed"),
                _ => {}
            }
        }
        assert_eq!(results.len(), STEPS as usize);
    }
}
