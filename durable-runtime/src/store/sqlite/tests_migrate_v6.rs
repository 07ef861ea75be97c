//! Version 5 to 6 (custom status), from a frozen copy of version 5, and the store's side of
//! `continue_as_new` on the migrated file: one atomic replacement of the run.

use super::schema::{APPLICATION_ID, SCHEMA_VERSION};
use super::tests::step;
use super::*;
use crate::history::{CarriedEvent, HistoryEvent, ParentInstance};
use crate::instance::RuntimeStatus;
use crate::payload::Payload;
use crate::store::{ContinueAsNew, ErrorClass};

/// What version 5 wrote (version 4 plus the parent link), frozen.
const SCHEMA_V5: &str = "
CREATE TABLE messages (id INTEGER PRIMARY KEY, instance_id TEXT NOT NULL, event TEXT NOT NULL,
    execution_id TEXT NOT NULL DEFAULT '');
CREATE TABLE activities (id INTEGER PRIMARY KEY, instance_id TEXT NOT NULL,
    task_id INTEGER NOT NULL, name TEXT NOT NULL, input TEXT NOT NULL,
    execution_id TEXT NOT NULL DEFAULT '');
CREATE TABLE timers (id INTEGER PRIMARY KEY, instance_id TEXT NOT NULL, task_id INTEGER NOT NULL,
    fire_at_ms INTEGER NOT NULL, execution_id TEXT NOT NULL DEFAULT '');
CREATE INDEX timers_by_instance ON timers(instance_id);
CREATE TABLE event_keys (instance_id TEXT NOT NULL, key TEXT NOT NULL,
    PRIMARY KEY (instance_id, key)) WITHOUT ROWID;
CREATE INDEX timers_by_due ON timers(fire_at_ms);
CREATE TABLE instance_inputs (instance_id TEXT PRIMARY KEY, input TEXT NOT NULL);
CREATE TABLE instance_outputs (instance_id TEXT PRIMARY KEY, output TEXT NOT NULL);
CREATE TABLE instances (
    instance_id TEXT PRIMARY KEY, name TEXT NOT NULL, version TEXT, status TEXT NOT NULL,
    failure TEXT, created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL,
    history_len INTEGER NOT NULL DEFAULT 0, execution_id TEXT NOT NULL DEFAULT '',
    parent_instance_id TEXT, parent_execution_id TEXT, parent_task_id INTEGER
) WITHOUT ROWID;
CREATE INDEX instances_by_created ON instances(created_ms);
CREATE INDEX instances_by_parent ON instances(parent_instance_id)
    WHERE parent_instance_id IS NOT NULL;
CREATE TABLE history (instance_id TEXT NOT NULL, seq INTEGER NOT NULL,
    timestamp_ms INTEGER NOT NULL, event TEXT NOT NULL, PRIMARY KEY (instance_id, seq))
    WITHOUT ROWID;
CREATE VIEW instance_rows AS
    SELECT i.instance_id AS instance_id, i.name AS name, i.version AS version,
           i.status AS status, inp.input AS input, outp.output AS output,
           i.failure AS failure, i.created_ms AS created_ms, i.updated_ms AS updated_ms
    FROM instances i
    LEFT JOIN instance_inputs inp ON inp.instance_id = i.instance_id
    LEFT JOIN instance_outputs outp ON outp.instance_id = i.instance_id;
CREATE TRIGGER event_keys_go_with_instance AFTER DELETE ON instances BEGIN
    DELETE FROM event_keys WHERE instance_id = old.instance_id;
END;
CREATE TRIGGER payloads_go_with_instance AFTER DELETE ON instances BEGIN
    DELETE FROM instance_inputs WHERE instance_id = old.instance_id;
    DELETE FROM instance_outputs WHERE instance_id = old.instance_id;
END;
";

/// A version 5 file: a parent `p` and its running child `c` (run `r1`, two history events, a
/// timer, a queued activity, a raised event waiting).
fn version_5_file(dir: &tempfile::TempDir) -> std::path::PathBuf {
    let path = dir.path().join("s.db");
    let raw = rusqlite::Connection::open(&path).expect("opens");
    raw.execute_batch(SCHEMA_V5).expect("v5 schema");
    raw.execute_batch(&format!(
        r#"
        PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = 5;
        INSERT INTO instances VALUES ('p', 'o', NULL, 'Running', NULL, 1, 2, 1, 'p1',
                                      NULL, NULL, NULL);
        INSERT INTO instances VALUES ('c', 'child', '2', 'Running', NULL, 1, 2, 2, 'r1',
                                      'p', 'p1', 4);
        INSERT INTO instance_inputs VALUES ('p', 'null'), ('c', '0');
        INSERT INTO history VALUES ('p', 0, 1, '"OrchestratorStarted"');
        INSERT INTO history VALUES ('c', 0, 1, '"OrchestratorStarted"');
        INSERT INTO history VALUES ('c', 1, 1, '"OrchestratorStarted"');
        INSERT INTO timers VALUES (7, 'c', 0, 99999999, 'r1');
        INSERT INTO activities VALUES (8, 'c', 1, 'a', 'null', 'r1');
        INSERT INTO messages VALUES (9, 'c', '{{"EventRaised":{{"name":"e","input":1}}}}', '');
        "#
    ))
    .expect("v5 rows");
    path
}

#[tokio::test]
async fn a_version_5_store_is_migrated_and_a_step_continues_as_new_atomically() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = version_5_file(&dir);
    let store = SqliteStore::open(&path).expect("migrates");
    let child = store
        .read_instance("c")
        .await
        .expect("reads")
        .expect("exists");
    assert_eq!(child.custom_status, None, "no status before version 6");

    let next = ContinueAsNew {
        execution_id: "r2".into(),
        input: Payload::encode(&1).expect("encodes"),
        carried_events: vec![CarriedEvent {
            name: "kept".into(),
            input: Payload::null(),
        }],
    };
    // Refused whole: the wrong status, work of the ending run, a stale run.
    let mut wrong_status = step("c", 2);
    wrong_status.execution_id = "r1".into();
    wrong_status.continue_as_new = Some(Box::new(next.clone()));
    let err = store
        .write(Write::Step(wrong_status.clone()))
        .await
        .expect_err("refused");
    assert_eq!(err.class(), ErrorClass::Fatal, "{err}");
    let mut with_work = wrong_status.clone();
    with_work.status = Some(RuntimeStatus::ContinuedAsNew);
    with_work.timers = vec![(5, 10)];
    let err = store
        .write(Write::Step(with_work))
        .await
        .expect_err("refused");
    assert_eq!(err.class(), ErrorClass::Fatal, "{err}");
    let mut stale = wrong_status.clone();
    stale.status = Some(RuntimeStatus::ContinuedAsNew);
    stale.execution_id = "r0".into();
    let err = store.write(Write::Step(stale)).await.expect_err("fenced");
    assert_eq!(err.class(), ErrorClass::Conflict, "{err}");

    let mut last = wrong_status;
    last.status = Some(RuntimeStatus::ContinuedAsNew);
    last.custom_status = Some(Payload::encode(&"half way").expect("encodes"));
    let written = store.write(Write::Step(last)).await.expect("applies");
    let Written::Step(work) = written else {
        panic!("a step's answer: {written:?}");
    };
    assert!(work.activities.is_empty() && work.timers.is_empty());
    assert_eq!(work.messages.len(), 1);
    let start = &work.messages[0];
    assert_eq!(
        (start.instance_id.as_str(), &*start.execution_id),
        ("c", "r2")
    );
    let HistoryEvent::ExecutionStarted(started) = &start.event else {
        panic!("not a start: {:?}", start.event);
    };
    assert_eq!(started.name, "child");
    assert_eq!(started.version.as_deref(), Some("2"));
    assert_eq!(started.input.as_str(), "1");
    assert_eq!(
        started.parent,
        Some(ParentInstance {
            instance_id: "p".into(),
            execution_id: "p1".into(),
            task_id: 4,
        }),
        "the new run keeps its parent link"
    );
    assert_eq!(started.carried_events, next.carried_events);

    let child = store
        .read_instance("c")
        .await
        .expect("reads")
        .expect("exists");
    assert_eq!(child.runtime_status, RuntimeStatus::ContinuedAsNew);
    assert_eq!(child.input.as_str(), "1");
    assert_eq!(
        child.custom_status.as_ref().map(|s| s.as_str()),
        Some(r#""half way""#)
    );
    assert!(store.read_history("c").await.expect("reads").is_empty());
    assert_eq!(store.read_history("p").await.expect("reads").len(), 1);
    // The raised event waits for the new run; the old run's timer and activity are gone.
    let pending = store.pending_messages(0, 10).await.expect("reads");
    let ids: Vec<i64> = pending.items.iter().map(|m| m.id).collect();
    assert_eq!(ids, vec![9, start.id]);
    assert!(
        store
            .pending_activities(0, 10)
            .await
            .expect("reads")
            .items
            .is_empty()
    );
    assert!(
        store
            .pending_timers(crate::store::DueKey::FIRST, 10)
            .await
            .expect("reads")
            .items
            .is_empty()
    );
    // The parent heard nothing: the child has not finished.
    assert!(store.read_instance("p").await.expect("reads").is_some());
    assert!(pending.items.iter().all(|m| m.instance_id == "c"));

    // The new run's first step moves it on; a step of the old run is fenced off.
    let mut first = step("c", 0);
    first.execution_id = "r2".into();
    first.consumed = vec![start.id, 9];
    store.write(Write::Step(first)).await.expect("applies");
    let child = store
        .read_instance("c")
        .await
        .expect("reads")
        .expect("exists");
    assert_eq!(child.runtime_status, RuntimeStatus::Running);
    let mut old = step("c", 1);
    old.execution_id = "r1".into();
    let err = store.write(Write::Step(old)).await.expect_err("fenced");
    assert_eq!(err.class(), ErrorClass::Conflict, "{err}");
    drop(store);

    let raw = open_read_only(&path).expect("opens");
    let version: i32 = raw
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .expect("reads");
    assert_eq!(version, SCHEMA_VERSION);
}
