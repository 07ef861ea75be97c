//! Conformance: fencing.

use crate::*;
use durable_runtime::store::{DueKey, ErrorClass};

async fn a_step_against_another_history_length_is_fenced(store: Subject) {
    let started = message_id(store.write(create("i")).await.expect("created"));
    let mut stale = step("i", 3);
    stale.consumed = vec![started];
    let err = store.write(Write::Step(stale)).await.expect_err("fenced");
    assert_eq!(err.class(), ErrorClass::Conflict, "{err}");
    assert!(matches!(err, StoreError::Fenced(_)), "{err}");
    // Nothing applied: the message is still there, and the right step applies.
    assert_eq!(store.pending_message_ids().await, vec![started]);
    let mut first = step("i", 0);
    first.events.push(HistoryEvent::OrchestratorStarted);
    first.consumed = vec![started];
    store.write(Write::Step(first)).await.expect("applies");
    // The stored length is now 2: a second step computed against 0 is fenced.
    let again = store.write(Write::Step(step("i", 0))).await;
    assert!(matches!(again, Err(StoreError::Fenced(_))), "{again:?}");
    store
        .write(Write::Step(step("i", 2)))
        .await
        .expect("applies");
    assert_eq!(store.read_history("i").await.expect("reads").len(), 3);
}

async fn only_pending_or_running_instances_move_and_finishing_disarms_timers(store: Subject) {
    store.write(create("i")).await.expect("created");
    let mut arm = step("i", 0);
    arm.timers = vec![(1, 1_000), (2, 2_000)];
    store.write(Write::Step(arm)).await.expect("applies");
    assert_eq!(
        store
            .pending_timers(DueKey::FIRST, 10)
            .await
            .expect("reads")
            .items
            .len(),
        2
    );
    let mut done = step("i", 1);
    done.status = Some(RuntimeStatus::Completed);
    done.output = Some(Payload::null());
    store.write(Write::Step(done)).await.expect("completes");
    assert!(
        store
            .pending_timers(DueKey::FIRST, 10)
            .await
            .expect("reads")
            .items
            .is_empty()
    );
    let err = store
        .write(Write::Step(step("i", 2)))
        .await
        .expect_err("finished");
    assert!(
        matches!(err, StoreError::Fenced(ref m) if m.contains("Completed")),
        "{err}"
    );
    let fail = Write::FailInstance {
        instance_id: "i".into(),
        failure: FailureDetails::new("late"),
        timestamp_ms: 3,
    };
    let err = store.write(fail).await.expect_err("already finished");
    assert!(matches!(err, StoreError::Fenced(_)), "{err}");
    // Messages that arrive after the end are still consumed by a status-less step.
    let started = store.pending_message_ids().await;
    let consume = StepCommit {
        events: Vec::new(),
        consumed: started,
        status: None,
        ..step("i", 2)
    };
    store.write(Write::Step(consume)).await.expect("consumed");
    assert!(store.pending_message_ids().await.is_empty());
    let status = store.read_runtime_status("i").await.expect("reads");
    assert_eq!(status, Some(RuntimeStatus::Completed));
}

async fn failing_an_instance_disarms_its_timers_and_unknown_instances_are_not_found(
    store: Subject,
) {
    store.write(create("i")).await.expect("created");
    let mut arm = step("i", 0);
    arm.timers = vec![(1, 1_000)];
    store.write(Write::Step(arm)).await.expect("applies");
    let fail = |id: &str| Write::FailInstance {
        instance_id: id.into(),
        failure: FailureDetails::new("corrupt"),
        timestamp_ms: 3,
    };
    store.write(fail("i")).await.expect("fails the instance");
    assert!(
        store
            .pending_timers(DueKey::FIRST, 10)
            .await
            .expect("reads")
            .items
            .is_empty()
    );
    assert_eq!(
        store.read_runtime_status("i").await.expect("reads"),
        Some(RuntimeStatus::Failed)
    );
    let missing = store.write(fail("nobody")).await;
    assert!(
        matches!(missing, Err(StoreError::InstanceNotFound(_))),
        "{missing:?}"
    );
    let missing = store.write(Write::Step(step("nobody", 0))).await;
    assert!(
        matches!(missing, Err(StoreError::InstanceNotFound(_))),
        "{missing:?}"
    );
    // A consume-only step for an unknown instance just deletes its messages.
    let stray = store
        .sql_i64(
            "INSERT INTO messages (instance_id, event) VALUES ('ghost', '\"OrchestratorStarted\"')
             RETURNING id",
        )
        .await;
    let consume = StepCommit {
        events: Vec::new(),
        consumed: vec![stray],
        status: None,
        ..step("ghost", 0)
    };
    store.write(Write::Step(consume)).await.expect("consumed");
    assert!(!store.pending_message_ids().await.contains(&stray));
}

async fn a_step_of_another_run_is_fenced_and_work_carries_its_run(store: Subject) {
    store.write(create("i")).await.expect("created");
    let mut stale = step("i", 0);
    stale.execution_id = "run-0".into();
    let err = store.write(Write::Step(stale)).await.expect_err("fenced");
    assert!(
        matches!(err, StoreError::Fenced(ref m) if m.contains("run-0")),
        "{err}"
    );
    let mut armed = step("i", 0);
    armed.timers = vec![(0, 5)];
    armed.activities = vec![(1, "a".into(), Payload::null())];
    let Written::Step(work) = store.write(Write::Step(armed)).await.expect("applies") else {
        panic!("a step answers with its work");
    };
    assert_eq!(&*work.timers[0].execution_id, RUN);
    assert_eq!(&*work.activities[0].execution_id, RUN);
    let fired = store
        .write(Write::FireTimer {
            timer_id: work.timers[0].id,
            instance_id: "i".into(),
            task_id: 0,
        })
        .await
        .expect("fires");
    let Written::Delivered(Some(message)) = fired else {
        panic!("a fired timer sends a message");
    };
    assert_eq!(
        &*message.execution_id, RUN,
        "the firing carries the timer's run"
    );
    let page = store.pending_messages(0, 10).await.expect("reads");
    assert!(
        page.items
            .iter()
            .any(|m| m.id == message.id && &*m.execution_id == RUN)
    );
}

async fn a_step_records_a_firing_once_and_is_refused_whole_when_the_timer_is_gone(store: Subject) {
    store.write(create("i")).await.expect("created");
    let mut arm = step("i", 0);
    arm.timers = vec![(1, 1_000)];
    let Written::Step(work) = store.write(Write::Step(arm)).await.expect("applies") else {
        panic!("a step answers with its work");
    };
    let timer = work.timers[0].id;
    let fired = || {
        let mut fire = step("i", 1);
        fire.events = vec![HistoryEvent::TimerFired { task_id: 1 }];
        fire.fired_timers = vec![timer];
        fire
    };
    store
        .write(Write::Step(fired()))
        .await
        .expect("records the firing");
    let page = store
        .pending_timers(DueKey::FIRST, 10)
        .await
        .expect("reads");
    assert!(page.items.is_empty(), "the step deleted the timer");
    // The same firing again (a step recomputed after a lost answer) must not be recorded twice.
    let mut again = fired();
    again.first_seq = 2;
    let err = store.write(Write::Step(again)).await.expect_err("gone");
    assert!(
        matches!(err, StoreError::TimersGone(ref ids) if ids == &[timer]),
        "{err}"
    );
    assert_eq!(err.class(), ErrorClass::Conflict);
    assert_eq!(store.read_history("i").await.expect("reads").len(), 2);
}

crate::conformance! {
    a_step_against_another_history_length_is_fenced,
    only_pending_or_running_instances_move_and_finishing_disarms_timers,
    failing_an_instance_disarms_its_timers_and_unknown_instances_are_not_found,
    a_step_of_another_run_is_fenced_and_work_carries_its_run,
    a_step_records_a_firing_once_and_is_refused_whole_when_the_timer_is_gone,
}
