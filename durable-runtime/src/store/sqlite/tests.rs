//! Tests of writes: error classes, batches, fencing, idempotency and paged recovery.

use super::*;
use crate::history::HistoryEvent;
use crate::instance::RuntimeStatus;
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
