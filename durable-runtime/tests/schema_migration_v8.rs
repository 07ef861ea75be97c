//! Schema version 8 (durable entities): a version 7 file, made from version 7's schema frozen
//! below, is migrated when opened: its instances are kept, it gains the entity tables, and
//! entities work on it at once; an older release's check refuses the result (version 8).

mod support;

use durable_runtime::prelude::*;
use durable_runtime::store::sqlite::schema::{APPLICATION_ID, SCHEMA_VERSION};
use support::TestStore;
use support::entities::until_state;

/// What version 7 wrote (version 5's tables, version 6's custom status, incremental vacuum).
const SCHEMA_V7: &str = "
PRAGMA auto_vacuum = INCREMENTAL;
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
    parent_task_id INTEGER, custom_status TEXT) WITHOUT ROWID;
CREATE INDEX instances_by_created ON instances(created_ms);
CREATE VIEW instance_rows AS
    SELECT i.instance_id AS instance_id, i.name AS name, i.version AS version,
           i.status AS status, inp.input AS input, outp.output AS output,
           i.failure AS failure, i.created_ms AS created_ms, i.updated_ms AS updated_ms,
           i.custom_status AS custom_status
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

#[entity]
async fn tally(ctx: &mut EntityContext<u64>) {
    *ctx.state_mut() += 1;
}

fn pragma(store: &TestStore, name: &str) -> i64 {
    let conn = durable_runtime::store::sqlite::open_read_only(store.path()).expect("opens");
    conn.query_row(&format!("PRAGMA {name}"), [], |row| row.get(0))
        .expect("reads")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_7_file_is_migrated_and_takes_entities() {
    let store = TestStore::new();
    let conn = rusqlite::Connection::open(store.path()).expect("open");
    conn.execute_batch(SCHEMA_V7)
        .expect("make a version 7 file");
    conn.pragma_update(None, "application_id", APPLICATION_ID)
        .expect("stamp the application id");
    conn.pragma_update(None, "user_version", 7)
        .expect("stamp version 7");
    conn.execute(
        "INSERT INTO instances (instance_id, name, status, created_ms, updated_ms, history_len,
             execution_id, custom_status)
         VALUES ('old', 'echo', 'Completed', 1, 1, 0, 'run', '\"half way\"')",
        [],
    )
    .expect("an instance of version 7");
    conn.execute_batch(
        "INSERT INTO instance_inputs (instance_id, input) VALUES ('old', 'null');
         INSERT INTO instance_outputs (instance_id, output) VALUES ('old', '\"kept\"');",
    )
    .expect("its input and output");
    drop(conn);

    let (runtime, client) = store.start().await;
    let old = client
        .get_status("old")
        .await
        .expect("reads")
        .expect("kept");
    assert_eq!(old.runtime_status, RuntimeStatus::Completed);
    assert_eq!(old.output_as::<String>().expect("output"), "kept");
    let id = EntityId::new("tally", "t");
    for _ in 0..3 {
        client
            .signal_entity_by_name(&id, "hit", ())
            .await
            .expect("durable");
    }
    assert_eq!(
        until_state::<u64>(&client, &id, |s| s == Some(&3)).await,
        Some(3)
    );
    runtime.shutdown().await;
    drop(client);
    assert_eq!(pragma(&store, "user_version"), i64::from(SCHEMA_VERSION));
    let conn = durable_runtime::store::sqlite::open_read_only(store.path()).expect("opens");
    let state: String = conn
        .query_row(
            "SELECT state FROM entities WHERE entity_id = '@tally@t'",
            [],
            |row| row.get(0),
        )
        .expect("the state is a row, readable as JSON");
    assert_eq!(state, "3");
}
