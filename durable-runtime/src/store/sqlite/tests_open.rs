//! Tests of opening and closing: the file lock, draining at drop, schema versions.

use super::schema::{APPLICATION_ID, SCHEMA_VERSION};
use super::tests::{create, open, step};
use super::*;
use crate::store::ErrorClass;

#[test]
fn a_second_store_on_the_same_file_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let _first = open(&dir);
    let second = SqliteStore::open(dir.path().join("s.db"));
    assert!(
        matches!(second, Err(StoreError::Locked { .. })),
        "{second:?}"
    );
    assert!(!dir.path().join("s.db.lock").exists(), "no side file");
}

#[cfg(unix)]
#[test]
fn a_second_store_through_a_symlink_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let first = open(&dir);
    let link = dir.path().join("link.db");
    std::os::unix::fs::symlink(dir.path().join("s.db"), &link).expect("links");
    let second = SqliteStore::open(&link);
    assert!(
        matches!(second, Err(StoreError::Locked { .. })),
        "{second:?}"
    );
    drop(first);
    drop(SqliteStore::open(&link).expect("free once the first is gone"));
}

#[test]
fn a_second_store_through_a_hard_link_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let _first = open(&dir);
    let link = dir.path().join("hard.db");
    std::fs::hard_link(dir.path().join("s.db"), &link).expect("links");
    let second = SqliteStore::open(&link);
    assert!(
        matches!(second, Err(StoreError::Locked { .. })),
        "{second:?}"
    );
    // The lock another process would meet is on the file itself, whatever the name.
    let other = std::fs::File::open(&link).expect("opens");
    assert!(matches!(
        other.try_lock(),
        Err(std::fs::TryLockError::WouldBlock)
    ));
}

#[tokio::test]
async fn dropping_the_store_commits_everything_queued_before_releasing_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(&dir);
    let answers: Vec<_> = (0..300)
        .map(|n| store.enqueue(create(&format!("i{n}"))).expect("queued"))
        .collect();
    drop(store);
    let store = open(&dir);
    let mut acknowledged = 0;
    for (n, mut answer) in answers.into_iter().enumerate() {
        // Every answer was sent before the drop returned.
        let result = answer
            .try_recv()
            .expect("answered before the lock was released");
        if result.is_ok() {
            acknowledged += 1;
            let id = format!("i{n}");
            assert!(
                store.read_instance(&id).await.expect("reads").is_some(),
                "{id}"
            );
        }
    }
    assert_eq!(acknowledged, 300);
}

#[test]
fn a_new_file_is_stamped_with_the_application_id_and_version() {
    let dir = tempfile::tempdir().expect("temp dir");
    drop(open(&dir));
    let raw = open_read_only(dir.path().join("s.db")).expect("opens");
    let pragma = |name| -> i32 {
        raw.pragma_query_value(None, name, |row| row.get(0))
            .expect("reads")
    };
    assert_eq!(pragma("application_id"), APPLICATION_ID);
    assert_eq!(pragma("user_version"), SCHEMA_VERSION);
}

fn refused(path: &Path) -> String {
    match SqliteStore::open(path) {
        Err(err @ StoreError::IncompatibleSchema { .. }) => {
            assert_eq!(err.class(), ErrorClass::Fatal);
            err.to_string()
        }
        other => panic!("expected IncompatibleSchema, got {other:?}"),
    }
}

#[test]
fn a_store_of_a_newer_version_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("s.db");
    drop(open(&dir));
    let raw = rusqlite::Connection::open(&path).expect("opens");
    raw.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .expect("sets");
    drop(raw);
    let reason = refused(&path);
    assert!(
        reason.contains(&format!("version {}", SCHEMA_VERSION + 1)) && reason.contains("newer"),
        "{reason}"
    );
}

#[test]
fn a_foreign_file_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().expect("temp dir");
    let other_app = dir.path().join("other.db");
    let raw = rusqlite::Connection::open(&other_app).expect("opens");
    raw.execute_batch("PRAGMA application_id = 4660; CREATE TABLE t (x);")
        .expect("creates");
    drop(raw);
    assert!(refused(&other_app).contains("another application"));
    let no_instances = dir.path().join("plain.db");
    let raw = rusqlite::Connection::open(&no_instances).expect("opens");
    raw.execute_batch("CREATE TABLE notes (x);")
        .expect("creates");
    drop(raw);
    assert!(refused(&no_instances).contains("not a durable store"));
    let raw = open_read_only(&no_instances).expect("opens");
    let mode: String = raw
        .pragma_query_value(None, "journal_mode", |row| row.get(0))
        .expect("reads");
    assert_eq!(mode, "delete", "the journal mode was not changed");
    let text = dir.path().join("text.db");
    std::fs::write(
        &text,
        "this is not a database, not even close to one.".repeat(40),
    )
    .expect("writes");
    assert!(refused(&text).contains("not a SQLite database"));
}

/// The schema as version 1 created it (no application id, no version).
const SCHEMA_V1: &str = "
CREATE TABLE instances (
    instance_id TEXT PRIMARY KEY, name TEXT NOT NULL, version TEXT, status TEXT NOT NULL,
    input TEXT NOT NULL, output TEXT, failure TEXT, created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE history (
    instance_id TEXT NOT NULL, seq INTEGER NOT NULL, timestamp_ms INTEGER NOT NULL,
    event TEXT NOT NULL, PRIMARY KEY (instance_id, seq)
) WITHOUT ROWID;
CREATE TABLE messages (id INTEGER PRIMARY KEY, instance_id TEXT NOT NULL, event TEXT NOT NULL);
CREATE TABLE activities (
    id INTEGER PRIMARY KEY, instance_id TEXT NOT NULL, task_id INTEGER NOT NULL,
    name TEXT NOT NULL, input TEXT NOT NULL
);
CREATE TABLE timers (
    id INTEGER PRIMARY KEY, instance_id TEXT NOT NULL, task_id INTEGER NOT NULL,
    fire_at_ms INTEGER NOT NULL
);
CREATE INDEX instances_by_created ON instances(created_ms);
";

#[test]
fn a_version_1_store_stamped_with_the_application_id_is_migrated_too() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("s.db");
    let raw = rusqlite::Connection::open(&path).expect("opens");
    raw.execute_batch(SCHEMA_V1).expect("v1 schema");
    raw.pragma_update(None, "application_id", APPLICATION_ID)
        .expect("stamps");
    raw.pragma_update(None, "user_version", 1).expect("stamps");
    drop(raw);
    drop(SqliteStore::open(&path).expect("migrates"));
    let raw = open_read_only(&path).expect("opens");
    assert_eq!(user_version(&raw), SCHEMA_VERSION);
}

#[tokio::test]
async fn a_version_1_store_is_migrated_with_its_rows() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("s.db");
    let raw = rusqlite::Connection::open(&path).expect("opens");
    raw.execute_batch(SCHEMA_V1).expect("v1 schema");
    raw.pragma_update(None, "journal_mode", "WAL").expect("wal");
    raw.execute_batch(
        r#"
        INSERT INTO instances VALUES ('i', 'o', NULL, 'Running', 'null', NULL, NULL, 1, 2);
        INSERT INTO history VALUES ('i', 0, 1, '"OrchestratorStarted"');
        INSERT INTO history VALUES ('i', 1, 1, '"OrchestratorStarted"');
        INSERT INTO messages VALUES (40, 'i', '"OrchestratorStarted"');
        INSERT INTO activities VALUES (41, 'i', 0, 'act', 'null');
        INSERT INTO timers VALUES (42, 'i', 1, 1000);
        "#,
    )
    .expect("v1 rows");
    drop(raw);
    let store = SqliteStore::open(&path).expect("migrates");
    assert_eq!(store.read_history("i").await.expect("reads").len(), 2);
    let messages = store.pending_messages(0, 10).await.expect("reads");
    assert_eq!(
        messages.items.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![40]
    );
    let activities = store.pending_activities(0, 10).await.expect("reads");
    assert_eq!(activities.items[0].id, 41);
    assert_eq!(
        store
            .pending_timers(DueKey::FIRST, 10)
            .await
            .expect("reads")
            .items[0]
            .id,
        42
    );
    // The migrated history length fences steps; the run started by version 1 has no id.
    let mut stale = step("i", 0);
    stale.execution_id = "".into();
    let stale = store.write(Write::Step(stale)).await;
    assert!(matches!(stale, Err(StoreError::Fenced(_))), "{stale:?}");
    let mut next = step("i", 2);
    next.execution_id = "".into();
    next.consumed = vec![40];
    store.write(Write::Step(next)).await.expect("applies");
    // Deleted ids are not handed out again.
    let started = store.write(create("j")).await.expect("created");
    assert!(
        matches!(started, Written::Instance(ref m) if m.id > 40),
        "{started:?}"
    );
    drop(store);
    let raw = open_read_only(&path).expect("opens");
    assert_eq!(user_version(&raw), SCHEMA_VERSION);
}

/// What version 3 wrote, frozen here as the migration's starting point.
const SCHEMA_V3: &str = "
CREATE TABLE instances (
    instance_id TEXT PRIMARY KEY, name TEXT NOT NULL, version TEXT, status TEXT NOT NULL,
    input TEXT NOT NULL, output TEXT, failure TEXT, created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL, history_len INTEGER NOT NULL DEFAULT 0,
    execution_id TEXT NOT NULL DEFAULT ''
) WITHOUT ROWID;
CREATE TABLE history (
    instance_id TEXT NOT NULL, seq INTEGER NOT NULL, timestamp_ms INTEGER NOT NULL,
    event TEXT NOT NULL, PRIMARY KEY (instance_id, seq)
) WITHOUT ROWID;
CREATE INDEX instances_by_created ON instances(created_ms);
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
CREATE TRIGGER event_keys_go_with_instance AFTER DELETE ON instances BEGIN
    DELETE FROM event_keys WHERE instance_id = old.instance_id;
END;
";

#[tokio::test]
async fn a_version_3_store_is_migrated_with_its_rows() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("s.db");
    let raw = rusqlite::Connection::open(&path).expect("opens");
    raw.execute_batch(SCHEMA_V3).expect("v3 schema");
    raw.execute_batch(&format!(
        r#"
        PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = 3;
        INSERT INTO instances VALUES ('done', 'o', NULL, 'Completed', '"in"', '"out"', NULL, 1, 2, 2, 'r1');
        INSERT INTO instances VALUES ('running', 'o', NULL, 'Running', '[1]', NULL, NULL, 1, 2, 1, 'r2');
        INSERT INTO history VALUES ('done', 0, 1, '"OrchestratorStarted"');
        INSERT INTO history VALUES ('done', 1, 1, '"OrchestratorStarted"');
        INSERT INTO history VALUES ('running', 0, 1, '"OrchestratorStarted"');
        INSERT INTO timers VALUES (42, 'running', 0, 1000, 'r2');
        INSERT INTO event_keys VALUES ('done', 'k');
        "#
    ))
    .expect("v3 rows");
    drop(raw);
    let store = SqliteStore::open(&path).expect("migrates");
    let done = store
        .read_instance("done")
        .await
        .expect("reads")
        .expect("exists");
    assert_eq!(done.input.as_str(), r#""in""#);
    assert_eq!(done.output.as_ref().map(|o| o.as_str()), Some(r#""out""#));
    let running = store
        .read_instance("running")
        .await
        .expect("reads")
        .expect("exists");
    assert_eq!(running.input.as_str(), "[1]");
    assert!(running.output.is_none());
    assert_eq!(store.read_history("done").await.expect("reads").len(), 2);
    assert_eq!(
        store
            .pending_timers(DueKey::FIRST, 10)
            .await
            .expect("reads")
            .items[0]
            .id,
        42
    );
    // The migrated history length still fences steps.
    let mut stale = step("running", 0);
    stale.execution_id = "r2".into();
    let stale = store.write(Write::Step(stale)).await;
    assert!(matches!(stale, Err(StoreError::Fenced(_))), "{stale:?}");
    drop(store);
    let raw = open_read_only(&path).expect("opens");
    let count = |sql: &str| -> i64 { raw.query_row(sql, [], |row| row.get(0)).expect("counts") };
    assert_eq!(
        count("SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name = 'timers_by_due'"),
        1
    );
    // Deleting an instance takes its payloads and idempotency keys with it.
    drop(raw);
    let raw = rusqlite::Connection::open(&path).expect("opens");
    raw.execute("DELETE FROM instances WHERE instance_id = 'done'", [])
        .expect("deletes");
    let left: i64 = raw
        .query_row(
            "SELECT (SELECT COUNT(*) FROM instance_inputs WHERE instance_id = 'done')
                  + (SELECT COUNT(*) FROM instance_outputs WHERE instance_id = 'done')
                  + (SELECT COUNT(*) FROM event_keys WHERE instance_id = 'done')",
            [],
            |row| row.get(0),
        )
        .expect("counts");
    assert_eq!(left, 0);
    assert_eq!(user_version(&raw), SCHEMA_VERSION);
}

/// What version 4 wrote, frozen here as the migration's starting point.
const SCHEMA_V4: &str = "
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
    history_len INTEGER NOT NULL DEFAULT 0, execution_id TEXT NOT NULL DEFAULT ''
) WITHOUT ROWID;
CREATE INDEX instances_by_created ON instances(created_ms);
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

#[tokio::test]
async fn a_version_4_store_is_migrated_with_its_rows_and_takes_sub_orchestrations() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("s.db");
    let raw = rusqlite::Connection::open(&path).expect("opens");
    raw.execute_batch(SCHEMA_V4).expect("v4 schema");
    raw.execute_batch(&format!(
        r#"
        PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = 4;
        INSERT INTO instances VALUES ('done', 'o', NULL, 'Completed', NULL, 1, 2, 2, 'r1');
        INSERT INTO instances VALUES ('running', 'o', NULL, 'Running', NULL, 1, 2, 1, 'r2');
        INSERT INTO instance_inputs VALUES ('done', '"in"'), ('running', '[1]');
        INSERT INTO instance_outputs VALUES ('done', '"out"');
        INSERT INTO history VALUES ('done', 0, 1, '"OrchestratorStarted"');
        INSERT INTO history VALUES ('done', 1, 1, '"OrchestratorStarted"');
        INSERT INTO history VALUES ('running', 0, 1, '"OrchestratorStarted"');
        INSERT INTO messages VALUES (40, 'running', '"OrchestratorStarted"', 'r2');
        INSERT INTO timers VALUES (42, 'running', 0, 1000, 'r2');
        "#
    ))
    .expect("v4 rows");
    drop(raw);
    let store = SqliteStore::open(&path).expect("migrates");
    let done = store
        .read_instance("done")
        .await
        .expect("reads")
        .expect("exists");
    assert_eq!(done.output.as_ref().map(|o| o.as_str()), Some(r#""out""#));
    assert_eq!(store.read_history("done").await.expect("reads").len(), 2);
    assert_eq!(
        store
            .pending_messages(0, 10)
            .await
            .expect("reads")
            .items
            .iter()
            .map(|m| m.id)
            .collect::<Vec<_>>(),
        vec![40]
    );
    // The running instance (no parent) goes on, and may now create a sub-orchestration.
    let mut next = step("running", 1);
    next.execution_id = "r2".into();
    next.consumed = vec![40];
    next.children = vec![crate::store::NewChild {
        task_id: 3,
        instance: crate::store::NewInstance {
            instance_id: "child".into(),
            execution_id: "c1".into(),
            name: "o".into(),
            version: None,
            input: crate::payload::Payload::null(),
            created_ms: 5,
        },
    }];
    let written = store.write(Write::Step(next)).await.expect("applies");
    assert!(
        matches!(written, Written::Step(ref work) if work.messages.len() == 1),
        "{written:?}"
    );
    drop(store);
    let raw = open_read_only(&path).expect("opens");
    // Each instance with its parent link: instance, execution and task.
    type ParentLink = (String, Option<String>, Option<String>, Option<i64>);
    let parents: Vec<ParentLink> = raw
        .prepare(
            "SELECT instance_id, parent_instance_id, parent_execution_id, parent_task_id
             FROM instances ORDER BY instance_id",
        )
        .expect("prepares")
        .query_map([], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })
        .expect("queries")
        .collect::<Result<_, _>>()
        .expect("reads");
    assert_eq!(
        parents,
        vec![
            (
                "child".to_string(),
                Some("running".to_string()),
                Some("r2".to_string()),
                Some(3)
            ),
            ("done".to_string(), None, None, None),
            ("running".to_string(), None, None, None),
        ]
    );
    let index: i64 = raw
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name = 'instances_by_parent'",
            [],
            |row| row.get(0),
        )
        .expect("counts");
    assert_eq!(index, 1);
    assert_eq!(user_version(&raw), SCHEMA_VERSION);
}

/// The schema version stamped on the file behind `raw`.
fn user_version(raw: &rusqlite::Connection) -> i32 {
    raw.pragma_query_value(None, "user_version", |row| row.get(0))
        .expect("reads")
}

#[test]
fn a_new_store_is_created_in_incremental_vacuum_mode_without_a_rebuild() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("s.db");
    let raw = rusqlite::Connection::open(&path).expect("opens");
    super::schema::create_or_migrate(&raw, &path).expect("creates");
    // Without the `VACUUM` that `prepare` runs on a file in another mode.
    let mode: i32 = raw
        .pragma_query_value(None, "auto_vacuum", |row| row.get(0))
        .expect("reads");
    assert_eq!(mode, 2, "INCREMENTAL");
}
