//! Schema version 7 (purges give space back): a version 5 file, made from version 5's schema
//! frozen below, is migrated when opened: it moves to `auto_vacuum = INCREMENTAL` (one VACUUM)
//! with its instances intact, and purging them shrinks it.
//!
//! Version 6 (custom status, merged separately) sits between the two; its own migration test
//! freezes it.

mod support;

use durable_runtime::PurgeFilter;
use durable_runtime::prelude::*;
use durable_runtime::store::sqlite::schema::{APPLICATION_ID, SCHEMA_VERSION};
use support::{TestStore, WAIT};

/// What version 5 wrote.
const SCHEMA_V5: &str = "
CREATE TABLE history (instance_id TEXT NOT NULL, seq INTEGER NOT NULL,
    timestamp_ms INTEGER NOT NULL, event TEXT NOT NULL, PRIMARY KEY (instance_id, seq))
    WITHOUT ROWID;
CREATE TABLE messages (id INTEGER PRIMARY KEY, instance_id TEXT NOT NULL, event TEXT NOT NULL,
    execution_id TEXT NOT NULL DEFAULT '');
CREATE TABLE activities (id INTEGER PRIMARY KEY, instance_id TEXT NOT NULL,
    task_id INTEGER NOT NULL, name TEXT NOT NULL, input TEXT NOT NULL,
    execution_id TEXT NOT NULL DEFAULT '');
CREATE TABLE timers (id INTEGER PRIMARY KEY, instance_id TEXT NOT NULL,
    task_id INTEGER NOT NULL, fire_at_ms INTEGER NOT NULL, execution_id TEXT NOT NULL DEFAULT '');
CREATE INDEX timers_by_instance ON timers(instance_id);
CREATE TABLE event_keys (instance_id TEXT NOT NULL, key TEXT NOT NULL,
    PRIMARY KEY (instance_id, key)) WITHOUT ROWID;
CREATE INDEX timers_by_due ON timers(fire_at_ms);
CREATE TABLE instance_inputs (instance_id TEXT PRIMARY KEY, input TEXT NOT NULL);
CREATE TABLE instance_outputs (instance_id TEXT PRIMARY KEY, output TEXT NOT NULL);
CREATE TABLE instances (instance_id TEXT PRIMARY KEY, name TEXT NOT NULL, version TEXT,
    status TEXT NOT NULL, failure TEXT, created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL, history_len INTEGER NOT NULL DEFAULT 0,
    execution_id TEXT NOT NULL DEFAULT '', parent_instance_id TEXT, parent_execution_id TEXT,
    parent_task_id INTEGER) WITHOUT ROWID;
CREATE INDEX instances_by_created ON instances(created_ms);
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
CREATE INDEX instances_by_parent ON instances(parent_instance_id)
    WHERE parent_instance_id IS NOT NULL;
";

#[orchestrator]
async fn echo(_ctx: OrchestrationContext, text: String) -> String {
    text
}

fn pragma(store: &TestStore, name: &str) -> i64 {
    let conn = durable_runtime::store::sqlite::open_read_only(store.path()).expect("opens");
    conn.query_row(&format!("PRAGMA {name}"), [], |row| row.get(0))
        .expect("reads")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_5_file_is_migrated_to_incremental_vacuum_and_shrinks_when_purged() {
    let store = TestStore::new();
    let conn = rusqlite::Connection::open(store.path()).expect("open");
    conn.execute_batch(SCHEMA_V5)
        .expect("make a version 5 file");
    conn.pragma_update(None, "application_id", APPLICATION_ID)
        .expect("stamp the application id");
    conn.pragma_update(None, "user_version", 5)
        .expect("stamp version 5");
    let big = format!("\"{}\"", "y".repeat(50_000));
    for n in 0..200 {
        let id = format!("old-{n}");
        conn.execute(
            "INSERT INTO instances (instance_id, name, status, created_ms, updated_ms,
                 history_len, execution_id)
             VALUES (?1, 'echo', 'Completed', 1, 1, 0, 'run')",
            [&id],
        )
        .expect("an instance of version 5");
        conn.execute(
            "INSERT INTO instance_inputs (instance_id, input) VALUES (?1, ?2)",
            [&id, &big],
        )
        .expect("its input");
        conn.execute(
            "INSERT INTO instance_outputs (instance_id, output) VALUES (?1, ?2)",
            [&id, &big],
        )
        .expect("its output");
    }
    drop(conn);
    assert_eq!(pragma(&store, "auto_vacuum"), 0, "version 5 never vacuumed");
    let before = std::fs::metadata(store.path()).expect("stat").len();

    let (runtime, client) = store.start().await;
    let old = client
        .get_status("old-7")
        .await
        .expect("reads")
        .expect("kept");
    assert_eq!(old.runtime_status, RuntimeStatus::Completed);
    assert_eq!(old.output_as::<String>().expect("output").len(), 50_000);
    let id = client.start(echo, "new".into()).await.expect("starts");
    client.wait_for_completion(&id, WAIT).await.expect("runs");
    assert_eq!(
        client
            .purge_by(&PurgeFilter::default())
            .await
            .expect("purges"),
        201
    );
    runtime.shutdown().await;
    drop(client);
    // Closing checkpoints the log (and the vacuum's truncation) into the file.
    let (runtime, client) = store.restart(|b| b).await;
    runtime.shutdown().await;
    drop(client);
    assert_eq!(pragma(&store, "user_version"), i64::from(SCHEMA_VERSION));
    assert_eq!(pragma(&store, "auto_vacuum"), 2, "INCREMENTAL");
    let after = std::fs::metadata(store.path()).expect("stat").len();
    assert!(after < before / 10, "{before} -> {after} bytes");
}
