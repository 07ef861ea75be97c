//! Conformance: client operations (terminate, suspend, resume, restart, purge) follow the
//! status state machine in the store, and what they change is changed whole.

use crate::*;
use durable_runtime::store::{DueKey, Manage, PurgeFilter, PurgeTarget};

fn terminate(id: &str) -> Write {
    Write::Manage(Manage::Terminate {
        instance_id: id.into(),
        reason: "stop".into(),
        timestamp_ms: 5,
    })
}

async fn terminating_ends_the_instance_and_discards_its_work(store: Subject) {
    store.write(create("i")).await.expect("created");
    let mut arm = step("i", 0);
    arm.timers = vec![(1, 1_000)];
    arm.activities = vec![(2, "a".into(), Payload::null())];
    store.write(Write::Step(arm)).await.expect("applies");
    store.write(terminate("i")).await.expect("terminates");
    let status = store
        .read_instance("i")
        .await
        .expect("reads")
        .expect("exists");
    assert_eq!(status.runtime_status, RuntimeStatus::Terminated);
    assert_eq!(
        status.output,
        Some(Payload::encode(&"stop").expect("encodes"))
    );
    let history = store.read_history("i").await.expect("reads");
    assert!(matches!(
        history.last().map(|r| &r.event),
        Some(HistoryEvent::ExecutionTerminated { .. })
    ));
    assert!(store.pending_message_ids().await.is_empty());
    assert!(
        store
            .pending_timers(DueKey::FIRST, 10)
            .await
            .expect("reads")
            .items
            .is_empty()
    );
    assert!(
        store
            .pending_activities(0, 10)
            .await
            .expect("reads")
            .items
            .is_empty()
    );
    // Finished: no second termination, and a step of the old run is fenced.
    let again = store.write(terminate("i")).await;
    assert!(
        matches!(again, Err(StoreError::NotApplicable { .. })),
        "{again:?}"
    );
    let late = store.write(Write::Step(step("i", 2))).await;
    assert!(matches!(late, Err(StoreError::Fenced(_))), "{late:?}");
    let missing = store.write(terminate("nobody")).await;
    assert!(
        matches!(missing, Err(StoreError::InstanceNotFound(_))),
        "{missing:?}"
    );
}

async fn suspend_and_resume_follow_the_state_machine(store: Subject) {
    store.write(create("i")).await.expect("created");
    let suspend = || {
        Write::Manage(Manage::Suspend {
            instance_id: "i".into(),
            reason: "wait".into(),
            timestamp_ms: 2,
        })
    };
    let resume = || {
        Write::Manage(Manage::Resume {
            instance_id: "i".into(),
            reason: "go".into(),
            timestamp_ms: 3,
        })
    };
    let early = store.write(resume()).await;
    assert!(
        matches!(early, Err(StoreError::NotApplicable { .. })),
        "{early:?}"
    );
    store.write(suspend()).await.expect("suspends");
    assert_eq!(
        store.read_runtime_status("i").await.expect("reads"),
        Some(RuntimeStatus::Suspended)
    );
    // A step against a suspended instance is fenced.
    let fenced = store.write(Write::Step(step("i", 0))).await;
    assert!(matches!(fenced, Err(StoreError::Fenced(_))), "{fenced:?}");
    store.write(resume()).await.expect("resumes");
    // Never ran a step: back to Pending.
    assert_eq!(
        store.read_runtime_status("i").await.expect("reads"),
        Some(RuntimeStatus::Pending)
    );
    let page = store.pending_messages(0, 10).await.expect("reads");
    let kinds: Vec<&HistoryEvent> = page.items.iter().map(|m| &m.event).collect();
    assert!(
        matches!(kinds[1], HistoryEvent::ExecutionSuspended { .. }),
        "{kinds:?}"
    );
    assert!(
        matches!(kinds[2], HistoryEvent::ExecutionResumed { .. }),
        "{kinds:?}"
    );
}

async fn restart_and_purge_apply_only_to_finished_instances(store: Subject) {
    let started = message_id(store.write(create("i")).await.expect("created"));
    let restart = |run: &str| {
        Write::Manage(Manage::Restart {
            instance_id: "i".into(),
            execution_id: run.into(),
            timestamp_ms: 9,
        })
    };
    let purge = || Write::Manage(Manage::Purge(PurgeTarget::Instance("i".into())));
    let running = store.write(restart("run-2")).await;
    assert!(
        matches!(running, Err(StoreError::NotApplicable { .. })),
        "{running:?}"
    );
    let running = store.write(purge()).await;
    assert!(
        matches!(running, Err(StoreError::NotApplicable { .. })),
        "{running:?}"
    );
    let mut done = step("i", 0);
    done.consumed = vec![started];
    done.status = Some(RuntimeStatus::Completed);
    done.output = Some(Payload::encode(&1).expect("encodes"));
    store.write(Write::Step(done)).await.expect("completes");
    let Written::Instance(start) = store.write(restart("run-2")).await.expect("restarts") else {
        panic!("a restart answers with the new start");
    };
    assert_eq!(&*start.execution_id, "run-2");
    let status = store
        .read_instance("i")
        .await
        .expect("reads")
        .expect("exists");
    assert_eq!(status.runtime_status, RuntimeStatus::Pending);
    assert_eq!(status.output, None);
    assert!(store.read_history("i").await.expect("reads").is_empty());
    // The old run's steps are fenced off the new run.
    let stale = store.write(Write::Step(step("i", 0))).await;
    assert!(matches!(stale, Err(StoreError::Fenced(_))), "{stale:?}");
    store.write(terminate("i")).await.expect("terminates");
    let purged = store.write(purge()).await.expect("purges");
    assert_eq!(purged, Written::Purged(1));
    assert!(store.read_instance("i").await.expect("reads").is_none());
    assert!(store.read_history("i").await.expect("reads").is_empty());
    // A purge by filter never takes an unfinished instance.
    store.write(create("live")).await.expect("created");
    let filtered = Write::Manage(Manage::Purge(PurgeTarget::Matching {
        filter: PurgeFilter {
            statuses: vec![RuntimeStatus::Running, RuntimeStatus::Pending],
            ..PurgeFilter::default()
        },
        limit: 10,
    }));
    assert_eq!(
        store.write(filtered).await.expect("purges"),
        Written::Purged(0)
    );
    assert!(store.read_instance("live").await.expect("reads").is_some());
}

async fn rewinding_runs_a_failed_activity_again(store: Subject) {
    let started = message_id(store.write(create("i")).await.expect("created"));
    let mut schedule = step("i", 0);
    schedule.consumed = vec![started];
    schedule.events.push(HistoryEvent::TaskScheduled {
        task_id: 0,
        name: "flaky".into(),
        input: Payload::null(),
    });
    schedule.activities = vec![(0, "flaky".into(), Payload::null())];
    let Written::Step(work) = store.write(Write::Step(schedule)).await.expect("applies") else {
        panic!("a step answers with its work");
    };
    let mut fail = step("i", 2);
    fail.completed_activities = vec![work.activities[0].id];
    fail.events.push(HistoryEvent::TaskFailed {
        task_id: 0,
        failure: failure("boom"),
    });
    fail.status = Some(RuntimeStatus::Failed);
    fail.failure = Some(failure("boom"));
    store.write(Write::Step(fail)).await.expect("fails");
    let rewind = Write::Manage(Manage::Rewind {
        instance_id: "i".into(),
        reason: "fixed".into(),
        timestamp_ms: 7,
    });
    let Written::Managed(work) = store.write(rewind).await.expect("rewinds") else {
        panic!("a rewind answers with its work");
    };
    assert_eq!(work.activities.len(), 1, "{work:?}");
    assert_eq!(work.activities[0].name, "flaky");
    assert_eq!(
        store.read_runtime_status("i").await.expect("reads"),
        Some(RuntimeStatus::Running)
    );
    let queued = store.pending_activities(0, 10).await.expect("reads");
    assert_eq!(queued.items.len(), 1);
}

crate::conformance! {
    terminating_ends_the_instance_and_discards_its_work,
    suspend_and_resume_follow_the_state_machine,
    restart_and_purge_apply_only_to_finished_instances,
    rewinding_runs_a_failed_activity_again,
}
