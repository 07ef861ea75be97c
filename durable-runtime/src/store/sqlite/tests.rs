//! Tests of writes: error classes, batches, fencing, idempotency and paged recovery.

use super::*;
use crate::failure::FailureDetails;
use crate::history::HistoryEvent;
use crate::payload::Payload;
use crate::store::{ErrorClass, NewInstance, StepCommit};

pub(super) fn create(id: &str) -> Write {
    Write::CreateInstance(NewInstance {
        instance_id: id.into(),
        execution_id: RUN.into(),
        name: "o".into(),
        version: None,
        input: Payload::null(),
        created_ms: 0,
    })
}

/// The run every test instance is on.
pub(super) const RUN: &str = "run-1";

pub(super) fn step(id: &str, first_seq: u64) -> StepCommit {
    StepCommit {
        instance_id: id.to_string(),
        execution_id: RUN.into(),
        first_seq,
        timestamp_ms: 1,
        events: vec![HistoryEvent::OrchestratorStarted],
        consumed: Vec::new(),
        completed_activities: Vec::new(),
        fired_timers: Vec::new(),
        activities: Vec::new(),
        timers: Vec::new(),
        children: Vec::new(),
        status: Some(RuntimeStatus::Running),
        output: None,
        failure: None,
        custom_status: None,
        continue_as_new: None,
    }
}

fn raise(id: &str, key: Option<&str>) -> Write {
    Write::RaiseEvent {
        instance_id: id.into(),
        name: "e".into(),
        input: Payload::null(),
        idempotency_key: key.map(str::to_string),
    }
}

pub(super) fn open(dir: &tempfile::TempDir) -> SqliteStore {
    SqliteStore::open(dir.path().join("s.db")).expect("opens")
}

fn message_id(written: Written) -> i64 {
    match written {
        Written::Instance(message) | Written::Delivered(Some(message)) => message.id,
        other => panic!("no message in {other:?}"),
    }
}

async fn pending_message_ids(store: &SqliteStore) -> Vec<i64> {
    let page = store.pending_messages(0, 1000).await.expect("reads");
    page.items.iter().map(|m| m.id).collect()
}

#[tokio::test]
async fn a_step_recording_a_result_twice_is_refused_whole() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(&dir);
    store.write(create("i")).await.expect("created");
    let mut twice = step("i", 0);
    twice.completed_activities = vec![404];
    let err = store.write(Write::Step(twice)).await.expect_err("gone");
    assert!(
        matches!(err, StoreError::AlreadyRecorded(ref ids) if ids == &[404]),
        "{err}"
    );
    // Nothing of the refused step was applied: the same step applies cleanly without it.
    assert!(store.read_history("i").await.expect("reads").is_empty());
    store
        .write(Write::Step(step("i", 0)))
        .await
        .expect("applies");
    assert_eq!(store.read_history("i").await.expect("reads").len(), 1);
}

#[tokio::test]
async fn a_value_too_big_is_fatal_and_spares_the_rest_of_the_batch() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open_with(&dir.path().join("s.db"), |conn| {
        conn.set_limit(rusqlite::limits::Limit::SQLITE_LIMIT_LENGTH, 10_000)?;
        Ok(())
    })
    .expect("opens");
    let mut big = step("a", 0);
    let input = Payload::encode(&"x".repeat(20_000)).expect("encodes");
    big.activities = vec![(0, "act".into(), input)];
    let results = store
        .write_batch(vec![create("a"), Write::Step(big), create("c")])
        .await;
    let err = results[1].as_ref().expect_err("too big");
    assert_eq!(err.class(), ErrorClass::Fatal, "{err}");
    assert!(matches!(err, StoreError::Refused(_)), "{err}");
    assert!(results[0].is_ok() && results[2].is_ok(), "{results:?}");
    let a = store.read_instance("a").await.expect("reads").expect("a");
    assert_eq!(a.runtime_status, RuntimeStatus::Pending);
    assert!(store.read_history("a").await.expect("reads").is_empty());
    assert!(store.read_instance("c").await.expect("reads").is_some());
    let activities = store.pending_activities(0, 10).await.expect("reads");
    assert!(activities.items.is_empty() && activities.corrupt.is_empty());
}

#[tokio::test]
async fn a_write_that_rolls_back_the_transaction_fails_alone() {
    // "b" always takes the whole transaction down with it (as a write too large for the disk
    // would): it must not take the rest of every batch it lands in with it, forever.
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(&dir);
    store.inject_faults(Some(Arc::new(|write: &Write| match write {
        Write::CreateInstance(new) if new.instance_id == "b" => {
            Some(InjectedFault::RollBackTransaction)
        }
        _ => None,
    })));
    let writes = || vec![create("a"), create("b"), create("c")];
    let results = store.write_batch(writes()).await;
    let err = results[1].as_ref().expect_err("rolled back");
    assert_eq!(err.class(), ErrorClass::Transient, "{err}");
    assert!(err.to_string().contains("rolled back"), "{err}");
    results[0].as_ref().expect("a is written");
    results[2].as_ref().expect("c is written");
    assert!(store.read_instance("a").await.expect("reads").is_some());
    assert!(store.read_instance("b").await.expect("reads").is_none());
    assert!(store.read_instance("c").await.expect("reads").is_some());
    // What "a" wrote before "b" rolled the transaction back was written again, once.
    assert_eq!(pending_message_ids(&store).await.len(), 2);
    store.inject_faults(None);
    store.write(create("b")).await.expect("the retry succeeds");
    assert_eq!(pending_message_ids(&store).await.len(), 3);
}

#[tokio::test]
async fn a_failed_commit_fails_every_write_as_unavailable() {
    let dir = tempfile::tempdir().expect("temp dir");
    // A deferred foreign key, checked only at COMMIT, broken by creating instance "doom".
    let store = SqliteStore::open_with(&dir.path().join("s.db"), |conn| {
        conn.execute_batch(
            "PRAGMA foreign_keys = ON;
             CREATE TEMP TABLE parent (id INTEGER PRIMARY KEY);
             CREATE TEMP TABLE child (
                 p INTEGER REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED);
             CREATE TEMP TRIGGER doom AFTER INSERT ON main.instances
                 WHEN new.instance_id = 'doom'
             BEGIN INSERT INTO child VALUES (1); END;",
        )
    })
    .expect("opens");
    let results = store
        .write_batch(vec![create("a"), create("doom"), create("c")])
        .await;
    for result in &results {
        let err = result.as_ref().expect_err("not committed");
        assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
        assert!(err.to_string().contains("commit failed"), "{err}");
    }
    for id in ["a", "doom", "c"] {
        assert!(
            store.read_instance(id).await.expect("reads").is_none(),
            "{id}"
        );
    }
    // The failed transaction was ended: the next batch commits.
    for result in store.write_batch(vec![create("a"), create("c")]).await {
        result.expect("commits");
    }
    assert_eq!(pending_message_ids(&store).await.len(), 2);
}

#[tokio::test]
async fn a_failed_write_is_undone_alone() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(&dir);
    store.inject_faults(Some(Arc::new(|write: &Write| match write {
        Write::CreateInstance(new) if new.instance_id == "b" => Some(InjectedFault::FailWrite),
        _ => None,
    })));
    let results = store
        .write_batch(vec![create("a"), create("b"), create("c")])
        .await;
    assert!(results[0].is_ok() && results[2].is_ok(), "{results:?}");
    let err = results[1].as_ref().expect_err("injected");
    assert_eq!(err.class(), ErrorClass::Transient);
    assert!(store.read_instance("b").await.expect("reads").is_none());
    assert_eq!(pending_message_ids(&store).await.len(), 2);
}

#[tokio::test]
async fn a_step_against_another_history_length_is_fenced() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(&dir);
    let started = message_id(store.write(create("i")).await.expect("created"));
    let mut stale = step("i", 3);
    stale.consumed = vec![started];
    let err = store.write(Write::Step(stale)).await.expect_err("fenced");
    assert_eq!(err.class(), ErrorClass::Conflict, "{err}");
    assert!(matches!(err, StoreError::Fenced(_)), "{err}");
    // Nothing applied: the message is still there, and the right step applies.
    assert_eq!(pending_message_ids(&store).await, vec![started]);
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

#[tokio::test]
async fn a_step_consuming_a_message_already_gone_is_refused_whole() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(&dir);
    let started = message_id(store.write(create("i")).await.expect("created"));
    let event = message_id(store.write(raise("i", None)).await.expect("raised"));
    let mut both = step("i", 0);
    both.consumed = vec![started, event + 100];
    both.timers = vec![(1, 5)];
    let err = store.write(Write::Step(both)).await.expect_err("fenced");
    assert!(
        matches!(err, StoreError::MessagesGone(ref gone) if gone == &[event + 100]),
        "{err}"
    );
    assert_eq!(pending_message_ids(&store).await, vec![started, event]);
    assert!(store.read_history("i").await.expect("reads").is_empty());
    let timers = store
        .pending_timers(DueKey::FIRST, 10)
        .await
        .expect("reads");
    assert!(timers.items.is_empty());
}

#[tokio::test]
async fn only_pending_or_running_instances_move_and_finishing_disarms_timers() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(&dir);
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
    let started = pending_message_ids(&store).await;
    let consume = StepCommit {
        events: Vec::new(),
        consumed: started,
        status: None,
        ..step("i", 2)
    };
    store.write(Write::Step(consume)).await.expect("consumed");
    assert!(pending_message_ids(&store).await.is_empty());
    let status = store.read_runtime_status("i").await.expect("reads");
    assert_eq!(status, Some(RuntimeStatus::Completed));
}

#[tokio::test]
async fn failing_an_instance_disarms_its_timers_and_unknown_instances_are_not_found() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(&dir);
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
    let raw = rusqlite::Connection::open(dir.path().join("s.db")).expect("opens");
    raw.execute(
        "INSERT INTO messages (instance_id, event) VALUES ('ghost', '\"OrchestratorStarted\"')",
        [],
    )
    .expect("inserts");
    let stray = raw.last_insert_rowid();
    let consume = StepCommit {
        events: Vec::new(),
        consumed: vec![stray],
        status: None,
        ..step("ghost", 0)
    };
    store.write(Write::Step(consume)).await.expect("consumed");
    assert!(!pending_message_ids(&store).await.contains(&stray));
}

#[tokio::test]
async fn a_repeated_idempotency_key_records_the_event_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(&dir);
    store.write(create("i")).await.expect("created");
    store.write(create("j")).await.expect("created");
    let first = store.write(raise("i", Some("k"))).await.expect("raised");
    assert!(matches!(first, Written::Delivered(Some(_))), "{first:?}");
    let again = store.write(raise("i", Some("k"))).await.expect("answered");
    assert_eq!(again, Written::Delivered(None));
    // The key is per instance; no key means no deduplication.
    let other = store.write(raise("j", Some("k"))).await.expect("raised");
    assert!(matches!(other, Written::Delivered(Some(_))), "{other:?}");
    for _ in 0..2 {
        let plain = store.write(raise("i", None)).await.expect("raised");
        assert!(matches!(plain, Written::Delivered(Some(_))), "{plain:?}");
    }
    // Two starts, one keyed event for each instance, two plain events.
    assert_eq!(pending_message_ids(&store).await.len(), 6);
    // Within one batch too.
    let results = store
        .write_batch(vec![raise("j", Some("z")), raise("j", Some("z"))])
        .await;
    assert!(
        matches!(results[0], Ok(Written::Delivered(Some(_)))),
        "{results:?}"
    );
    assert!(
        matches!(results[1], Ok(Written::Delivered(None))),
        "{results:?}"
    );
}

#[tokio::test]
async fn completing_an_activity_moves_its_result_into_a_message_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(&dir);
    store.write(create("i")).await.expect("created");
    let mut schedule = step("i", 0);
    schedule.activities = vec![(7, "act".into(), Payload::null())];
    let Written::Step(work) = store.write(Write::Step(schedule)).await.expect("applies") else {
        panic!("not a step answer");
    };
    let item = work.activities[0].id;
    let complete = || Write::CompleteActivity {
        work_item_id: item,
        instance_id: "i".into(),
        event: HistoryEvent::TaskCompleted {
            task_id: 7,
            result: Payload::null(),
        },
    };
    let Written::Delivered(Some(message)) = store.write(complete()).await.expect("done") else {
        panic!("no message");
    };
    assert!(matches!(
        message.event,
        HistoryEvent::TaskCompleted { task_id: 7, .. }
    ));
    assert!(pending_message_ids(&store).await.contains(&message.id));
    assert!(
        store
            .pending_activities(0, 10)
            .await
            .expect("reads")
            .items
            .is_empty()
    );
    let twice = store.write(complete()).await.expect("answered");
    assert_eq!(twice, Written::Delivered(None));
    assert_eq!(pending_message_ids(&store).await.len(), 2);
}

#[tokio::test]
async fn pending_work_is_read_in_pages_and_corrupt_rows_are_reported_not_fatal() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(&dir);
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(message_id(
            store
                .write(create(&format!("i{n}")))
                .await
                .expect("created"),
        ));
    }
    let raw = rusqlite::Connection::open(dir.path().join("s.db")).expect("opens");
    raw.execute(
        "UPDATE messages SET event = 'not json' WHERE id = ?1",
        [ids[1]],
    )
    .expect("corrupts");
    raw.execute(
        "UPDATE messages SET instance_id = X'00' WHERE id = ?1",
        [ids[3]],
    )
    .expect("corrupts");
    let first = store.pending_messages(0, 2).await.expect("reads");
    assert_eq!(first.last_id, Some(ids[1]));
    assert_eq!(
        first.items.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![ids[0]]
    );
    assert_eq!(first.corrupt.len(), 1);
    assert_eq!(first.corrupt[0].id, ids[1]);
    assert_eq!(first.corrupt[0].instance_id.as_deref(), Some("i1"));
    let second = store.pending_messages(ids[1], 2).await.expect("reads");
    assert_eq!(
        second.items.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![ids[2]]
    );
    assert_eq!(second.corrupt[0].id, ids[3]);
    assert_eq!(second.corrupt[0].instance_id, None);
    let third = store.pending_messages(ids[3], 2).await.expect("reads");
    assert_eq!(
        third.items.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![ids[4]]
    );
    let end = store.pending_messages(ids[4], 2).await.expect("reads");
    assert_eq!(end.last_id, None);
    assert!(end.items.is_empty() && end.corrupt.is_empty());
}

#[tokio::test]
async fn the_runtime_status_is_read_alone_and_an_unknown_one_is_corrupt() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(&dir);
    store.write(create("i")).await.expect("created");
    let status = store.read_runtime_status("i").await.expect("reads");
    assert_eq!(status, Some(RuntimeStatus::Pending));
    assert_eq!(store.read_runtime_status("x").await.expect("reads"), None);
    let raw = rusqlite::Connection::open(dir.path().join("s.db")).expect("opens");
    raw.execute("UPDATE instances SET status = 'Sleeping'", [])
        .expect("corrupts");
    raw.execute("UPDATE instance_inputs SET input = 'not json'", [])
        .expect("corrupts");
    let err = store.read_runtime_status("i").await.expect_err("corrupt");
    assert_eq!(err.class(), ErrorClass::Corrupt, "{err}");
    assert!(err.to_string().contains("Sleeping"), "{err}");
}

#[tokio::test]
async fn a_step_of_another_run_is_fenced_and_work_carries_its_run() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(&dir);
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
