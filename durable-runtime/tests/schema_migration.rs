//! A file of schema version 2 (a development version, before runs had ids) is migrated when
//! opened, and a schema the store does not expect is a permanent error, never retried forever
//! (SQLite's generic SQLITE_ERROR, "no such column", is not transient).
//!
//! The version 2 file is made from version 2's schema, frozen below.

mod support;

use durable_runtime::prelude::*;
use durable_runtime::store::ErrorClass;
use durable_runtime::store::sqlite::SqliteStore;
use durable_runtime::store::sqlite::schema::APPLICATION_ID;
use support::{TestStore, WAIT};

/// What version 2 wrote.
const SCHEMA_V2: &str = "
CREATE TABLE instances (
    instance_id TEXT PRIMARY KEY, name TEXT NOT NULL, version TEXT, status TEXT NOT NULL,
    input TEXT NOT NULL, output TEXT, failure TEXT, created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL, history_len INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE history (
    instance_id TEXT NOT NULL, seq INTEGER NOT NULL, timestamp_ms INTEGER NOT NULL,
    event TEXT NOT NULL, PRIMARY KEY (instance_id, seq)
) WITHOUT ROWID;
CREATE INDEX instances_by_created ON instances(created_ms);
CREATE TABLE messages (id INTEGER PRIMARY KEY, instance_id TEXT NOT NULL, event TEXT NOT NULL);
CREATE TABLE activities (id INTEGER PRIMARY KEY, instance_id TEXT NOT NULL,
    task_id INTEGER NOT NULL, name TEXT NOT NULL, input TEXT NOT NULL);
CREATE TABLE timers (id INTEGER PRIMARY KEY, instance_id TEXT NOT NULL, task_id INTEGER NOT NULL,
    fire_at_ms INTEGER NOT NULL);
CREATE INDEX timers_by_instance ON timers(instance_id);
CREATE TABLE event_keys (instance_id TEXT NOT NULL, key TEXT NOT NULL,
    PRIMARY KEY (instance_id, key)) WITHOUT ROWID;
CREATE TRIGGER event_keys_go_with_instance AFTER DELETE ON instances BEGIN
    DELETE FROM event_keys WHERE instance_id = old.instance_id;
END;
";

#[orchestrator]
async fn trivial(_ctx: OrchestrationContext, n: u32) -> u32 {
    n + 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_2_file_without_run_ids_is_migrated_or_refused() {
    let store = TestStore::new();
    let conn = rusqlite::Connection::open(store.path()).expect("open");
    conn.execute_batch(SCHEMA_V2)
        .expect("make a version 2 file");
    conn.pragma_update(None, "application_id", APPLICATION_ID)
        .expect("stamp the application id");
    conn.pragma_update(None, "user_version", 2)
        .expect("stamp version 2");
    drop(conn);

    let runtime = store.builder().start().await.expect("migrated and started");
    let client = runtime.client();
    let started = client.start(trivial, 1).await;
    let outcome = match started {
        Ok(id) => client
            .wait_for_completion(&id, WAIT)
            .await
            .map(|s| format!("{:?}", s.runtime_status)),
        Err(err) => {
            let class = match &err {
                durable_runtime::Error::Store(store_err) => Some(store_err.class()),
                _ => None,
            };
            runtime.shutdown().await;
            panic!(
                "the file opened as current, then the start failed: {err} (class {class:?}; \
                 Transient means every step would be retried forever) — expected a migration \
                 or a refusal at open (class {:?} for the start would at least not retry)",
                ErrorClass::Fatal
            );
        }
    };
    runtime.shutdown().await;
    assert_eq!(outcome.expect("finished"), "Completed");
}

#[test]
fn a_missing_column_is_a_permanent_error() {
    let store = TestStore::new();
    drop(SqliteStore::open(store.path()).expect("create"));
    let conn = rusqlite::Connection::open(store.path()).expect("open");
    let err = conn
        .execute("INSERT INTO instances (no_such_column) VALUES (1)", [])
        .expect_err("no such column");
    let err = durable_runtime::store::StoreError::from(err);
    assert_eq!(err.class(), ErrorClass::Fatal, "{err}");
}
