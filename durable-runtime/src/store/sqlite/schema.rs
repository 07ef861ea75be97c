//! The store's tables, how a file is recognised as a durable store, and migrations.
//!
//! A store file carries `PRAGMA application_id` = [`APPLICATION_ID`] and `PRAGMA user_version` =
//! [`SCHEMA_VERSION`]. Version 1 (the first release) set neither: it is recognised by an
//! application id of 0 and its `instances` table, and migrated in place.

use super::error::SqlContext;
use crate::store::StoreError;
use rusqlite::Connection;
use std::path::Path;

/// `PRAGMA application_id` of a durable store: "DURB".
pub const APPLICATION_ID: i32 = 0x4455_5242;

/// The schema version this release reads and writes.
pub const SCHEMA_VERSION: i32 = 10;

/// The version 3 instance and history tables. A new file is created in the version 3 shape and
/// migrated at once, so there is one definition of the current shape: the migrations.
const SCHEMA_V2: &str = "
CREATE TABLE instances (
    instance_id TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    version     TEXT,
    status      TEXT NOT NULL,
    input       TEXT NOT NULL,
    output      TEXT,
    failure     TEXT,
    created_ms  INTEGER NOT NULL,
    updated_ms  INTEGER NOT NULL,
    history_len INTEGER NOT NULL DEFAULT 0,
    execution_id TEXT NOT NULL DEFAULT ''
) WITHOUT ROWID;
CREATE TABLE history (
    instance_id  TEXT NOT NULL,
    seq          INTEGER NOT NULL,
    timestamp_ms INTEGER NOT NULL,
    event        TEXT NOT NULL,
    PRIMARY KEY (instance_id, seq)
) WITHOUT ROWID;
CREATE INDEX instances_by_created ON instances(created_ms);
";

/// Work tables, shared by a new file and the migration from version 1. Their ids are handed out
/// by the writer and never reused in a process (`apply::NextIds`): a stale step or completion
/// naming a deleted id must not hit a newer row.
const WORK_TABLES_V2: &str = "
CREATE TABLE messages (
    id           INTEGER PRIMARY KEY,
    instance_id  TEXT NOT NULL,
    event        TEXT NOT NULL,
    execution_id TEXT NOT NULL DEFAULT ''
);
CREATE TABLE activities (
    id           INTEGER PRIMARY KEY,
    instance_id  TEXT NOT NULL,
    task_id      INTEGER NOT NULL,
    name         TEXT NOT NULL,
    input        TEXT NOT NULL,
    execution_id TEXT NOT NULL DEFAULT ''
);
CREATE TABLE timers (
    id           INTEGER PRIMARY KEY,
    instance_id  TEXT NOT NULL,
    task_id      INTEGER NOT NULL,
    fire_at_ms   INTEGER NOT NULL,
    execution_id TEXT NOT NULL DEFAULT ''
);
CREATE INDEX timers_by_instance ON timers(instance_id);
CREATE TABLE event_keys (
    instance_id TEXT NOT NULL,
    key         TEXT NOT NULL,
    PRIMARY KEY (instance_id, key)
) WITHOUT ROWID;
CREATE TRIGGER event_keys_go_with_instance AFTER DELETE ON instances BEGIN
    DELETE FROM event_keys WHERE instance_id = old.instance_id;
END;
";

/// From version 1: the history length column (filled from the history), run ids (empty for the
/// runs version 1 started), the idempotency keys, and work tables whose ids are never reused
/// (rebuilt with their rows and ids).
const MIGRATE_V1_TO_V2: &str = "
ALTER TABLE instances ADD COLUMN history_len INTEGER NOT NULL DEFAULT 0;
ALTER TABLE instances ADD COLUMN execution_id TEXT NOT NULL DEFAULT '';
UPDATE instances SET history_len =
    (SELECT COALESCE(MAX(seq) + 1, 0) FROM history WHERE history.instance_id = instances.instance_id);
ALTER TABLE messages RENAME TO messages_v1;
ALTER TABLE activities RENAME TO activities_v1;
ALTER TABLE timers RENAME TO timers_v1;
";

/// From version 2 (a development version never released): run ids, empty for the runs it
/// started.
const MIGRATE_V2_TO_V3: &str = "
ALTER TABLE instances ADD COLUMN execution_id TEXT NOT NULL DEFAULT '';
ALTER TABLE messages ADD COLUMN execution_id TEXT NOT NULL DEFAULT '';
ALTER TABLE activities ADD COLUMN execution_id TEXT NOT NULL DEFAULT '';
ALTER TABLE timers ADD COLUMN execution_id TEXT NOT NULL DEFAULT '';
";

/// From version 3. Timers are read in due order, a page at a time. Large payloads leave the
/// rows that change often: an instance's input and output get tables of their own (every step
/// rewrites the instance's row, and a 64 MiB input was rewritten with it). Reads of an instance
/// go through the `instance_rows` view, which puts the payloads back.
///
/// History stays a `WITHOUT ROWID` table. As a rowid table with a separate key, inserting an
/// event next to a large one no longer reads the large one whole (a 64 MiB round trip peaked at
/// 5.0x the payload instead of 6.6x), but every event then costs two B-tree inserts, and the
/// fan-out benchmark (W2) lost 10 % of its throughput. Large events stored out of line would
/// give both.
const MIGRATE_V3_TO_V4: &str = "
CREATE INDEX IF NOT EXISTS timers_by_due ON timers(fire_at_ms);

CREATE TABLE instance_inputs (
    instance_id TEXT PRIMARY KEY,
    input       TEXT NOT NULL
);
CREATE TABLE instance_outputs (
    instance_id TEXT PRIMARY KEY,
    output      TEXT NOT NULL
);
INSERT INTO instance_inputs (instance_id, input) SELECT instance_id, input FROM instances;
INSERT INTO instance_outputs (instance_id, output)
    SELECT instance_id, output FROM instances WHERE output IS NOT NULL;
CREATE TABLE instances_v4 (
    instance_id  TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    version      TEXT,
    status       TEXT NOT NULL,
    failure      TEXT,
    created_ms   INTEGER NOT NULL,
    updated_ms   INTEGER NOT NULL,
    history_len  INTEGER NOT NULL DEFAULT 0,
    execution_id TEXT NOT NULL DEFAULT ''
) WITHOUT ROWID;
INSERT INTO instances_v4
    SELECT instance_id, name, version, status, failure, created_ms, updated_ms, history_len,
           execution_id
    FROM instances;
DROP TABLE instances;
ALTER TABLE instances_v4 RENAME TO instances;
CREATE INDEX instances_by_created ON instances(created_ms);


CREATE VIEW instance_rows AS
    SELECT i.instance_id AS instance_id, i.name AS name, i.version AS version,
           i.status AS status, inp.input AS input, outp.output AS output,
           i.failure AS failure, i.created_ms AS created_ms, i.updated_ms AS updated_ms
    FROM instances i
    LEFT JOIN instance_inputs inp ON inp.instance_id = i.instance_id
    LEFT JOIN instance_outputs outp ON outp.instance_id = i.instance_id;

CREATE TRIGGER IF NOT EXISTS event_keys_go_with_instance AFTER DELETE ON instances BEGIN
    DELETE FROM event_keys WHERE instance_id = old.instance_id;
END;
CREATE TRIGGER payloads_go_with_instance AFTER DELETE ON instances BEGIN
    DELETE FROM instance_inputs WHERE instance_id = old.instance_id;
    DELETE FROM instance_outputs WHERE instance_id = old.instance_id;
END;
";

/// From version 4: sub-orchestrations. A child's row names the parent run and call its outcome
/// goes back to (empty for every instance version 4 created, none of which is a child).
const MIGRATE_V4_TO_V5: &str = "
ALTER TABLE instances ADD COLUMN parent_instance_id TEXT;
ALTER TABLE instances ADD COLUMN parent_execution_id TEXT;
ALTER TABLE instances ADD COLUMN parent_task_id INTEGER;
CREATE INDEX instances_by_parent ON instances(parent_instance_id)
    WHERE parent_instance_id IS NOT NULL;
";

/// From version 5: custom status. A column of the instance's row (written only by a step that
/// changes it, and small: the context caps it like Durable Functions does), shown by the
/// `instance_rows` view that status reads go through.
const MIGRATE_V5_TO_V6: &str = "
ALTER TABLE instances ADD COLUMN custom_status TEXT;
DROP VIEW instance_rows;
CREATE VIEW instance_rows AS
    SELECT i.instance_id AS instance_id, i.name AS name, i.version AS version,
           i.status AS status, inp.input AS input, outp.output AS output,
           i.failure AS failure, i.created_ms AS created_ms, i.updated_ms AS updated_ms,
           i.custom_status AS custom_status
    FROM instances i
    LEFT JOIN instance_inputs inp ON inp.instance_id = i.instance_id
    LEFT JOIN instance_outputs outp ON outp.instance_id = i.instance_id;
";

/// From version 6: purges give space back. The file moves to `auto_vacuum = INCREMENTAL`
/// ([`ensure_incremental_vacuum`], which needs a one-time `VACUUM` outside the migration's
/// transaction) and a purge runs `PRAGMA incremental_vacuum`. No table changes: the version
/// says the file may hold instances purged (gone whole) and terminated, suspended or restarted
/// by clients, which an older release would not know.
fn migrate_from_v6(conn: &Connection) -> Result<(), StoreError> {
    migrate_from_v7(conn)
}

/// From version 7: durable entities. An entity is a row (its state as JSON, readable with
/// `sqlite3`; a version that fences its batches; how many operations it ran, which numbers its
/// log; the orchestration holding its lock) and a queue of operation messages, read per entity
/// in arrival (id) order. The two partial indexes find, when an orchestration ends, the locks
/// it holds or asked for. Its log keeps
/// its last operations for debugging. Listing walks the primary key (`@name@key`), so a name
/// prefix is a key range.
const MIGRATE_V7_TO_V8: &str = "
CREATE TABLE entities (
    entity_id  TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    state      TEXT,
    version    INTEGER NOT NULL,
    op_count   INTEGER NOT NULL DEFAULT 0,
    locked_by  TEXT,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX entities_by_lock ON entities(locked_by) WHERE locked_by IS NOT NULL;
CREATE TABLE entity_messages (
    id         INTEGER PRIMARY KEY,
    entity_id  TEXT NOT NULL,
    operation  TEXT NOT NULL,
    input      TEXT NOT NULL,
    sender     TEXT NOT NULL DEFAULT '',
    reply      TEXT,
    created_ms INTEGER NOT NULL
);
CREATE INDEX entity_messages_by_entity ON entity_messages(entity_id, id);
CREATE INDEX entity_lock_requests ON entity_messages(sender)
    WHERE operation = '__durable.lock';
CREATE TABLE entity_log (
    entity_id    TEXT NOT NULL,
    seq          INTEGER NOT NULL,
    operation    TEXT NOT NULL,
    sender       TEXT NOT NULL,
    ok           INTEGER NOT NULL,
    error        TEXT,
    timestamp_ms INTEGER NOT NULL,
    PRIMARY KEY (entity_id, seq)
) WITHOUT ROWID;
CREATE TRIGGER entity_log_goes_with_entity AFTER DELETE ON entities BEGIN
    DELETE FROM entity_log WHERE entity_id = old.entity_id;
END;
";

fn migrate_from_v7(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch(MIGRATE_V7_TO_V8)?;
    migrate_from_v8(conn)
}

/// From version 8: poison work. Work recovered after a runtime stopped without shutting down
/// counts its attempts (a step that commits sets its instance's count back to 0), and the
/// store remembers whether a runtime runs on it (`store_state`'s `running`: set when one
/// starts, cleared when it has shut down).
const MIGRATE_V8_TO_V9: &str = "
ALTER TABLE instances ADD COLUMN recovery_attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE activities ADD COLUMN recovery_attempts INTEGER NOT NULL DEFAULT 0;
CREATE TABLE store_state (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO store_state (key, value) VALUES ('running', 0);
";

fn migrate_from_v8(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch(MIGRATE_V8_TO_V9)?;
    migrate_from_v9(conn)
}

/// From version 9: history events of 64 KiB or more are stored out of the history B-tree, in
/// `history_large` (see `history_rows`); their `history` row keeps an empty `event`. Events
/// written before stay where they are.
const MIGRATE_V9_TO_V10: &str = "
CREATE TABLE history_large (
    instance_id TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    event       BLOB NOT NULL
);
CREATE UNIQUE INDEX history_large_by_key ON history_large(instance_id, seq);
CREATE TRIGGER history_large_goes_with_its_row AFTER DELETE ON history WHEN old.event = '' BEGIN
    DELETE FROM history_large WHERE instance_id = old.instance_id AND seq = old.seq;
END;
";

fn migrate_from_v9(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch(MIGRATE_V9_TO_V10)?;
    stamp(conn)
}

const COPY_V1_WORK: &str = "
INSERT INTO messages (id, instance_id, event) SELECT id, instance_id, event FROM messages_v1;
INSERT INTO activities (id, instance_id, task_id, name, input)
    SELECT id, instance_id, task_id, name, input FROM activities_v1;
INSERT INTO timers (id, instance_id, task_id, fire_at_ms)
    SELECT id, instance_id, task_id, fire_at_ms FROM timers_v1;
DROP TABLE messages_v1;
DROP TABLE activities_v1;
DROP TABLE timers_v1;
";

/// What an opened file turned out to be.
enum Found {
    /// An empty database: create the schema.
    Empty,
    /// A durable store of this schema version.
    Current,
    /// A durable store of an older version, to migrate.
    Older(i32),
}

/// Makes sure the file behind `conn` is a durable store of [`SCHEMA_VERSION`]: creates the schema
/// in an empty file, migrates an older one in one transaction, and refuses anything else with
/// [`StoreError::IncompatibleSchema`]. Runs before anything else touches the file (not even its
/// journal mode), so a refused file is left as it was.
pub(crate) fn prepare(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    create_or_migrate(conn, path)?;
    ensure_incremental_vacuum(conn, path)
}

/// The schema part of [`prepare`], in one transaction.
pub(super) fn create_or_migrate(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    // In an empty file the mode is written with the first table, so a new store needs no
    // `VACUUM` to get it; in a file with tables this changes nothing (it would take a VACUUM).
    // It cannot be set inside the transaction.
    conn.execute_batch("PRAGMA auto_vacuum = INCREMENTAL")
        .map_err(|err| refuse_unreadable(err, path))?;
    // IMMEDIATE: nothing changes the file between the check and the change.
    conn.execute_batch("BEGIN IMMEDIATE")
        .map_err(|err| refuse_unreadable(err, path))?;
    let result = inspect(conn, path).and_then(|found| match found {
        Found::Current => Ok(()),
        Found::Empty => {
            tracing::info!(path = %path.display(), "creating a new store");
            create(conn)
        }
        Found::Older(version) => {
            tracing::info!(
                path = %path.display(),
                from = version,
                to = SCHEMA_VERSION,
                "migrating the store"
            );
            match version {
                1 => migrate_from_v1(conn),
                2 => migrate_from_v2(conn),
                3 => migrate_from_v3(conn),
                4 => migrate_from_v4(conn),
                5 => migrate_from_v5(conn),
                6 => migrate_from_v6(conn),
                7 => migrate_from_v7(conn),
                8 => migrate_from_v8(conn),
                _ => migrate_from_v9(conn),
            }
        }
    });
    match result {
        Ok(()) => Ok(conn.execute_batch("COMMIT")?),
        Err(err) => {
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            Err(err)
        }
    }
}

/// Puts the file in `auto_vacuum = INCREMENTAL` mode, so that purges can give space back. A
/// file created without it (every file before version 7; a new one is created in that mode)
/// is rebuilt once with `VACUUM`, which cannot run in a transaction.
/// Checked at every open: a process that died between the migration and the `VACUUM` leaves a
/// file this finishes.
fn ensure_incremental_vacuum(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    const INCREMENTAL: i32 = 2;
    let mode: i32 = conn.pragma_query_value(None, "auto_vacuum", |row| row.get(0))?;
    if mode != INCREMENTAL {
        tracing::info!(path = %path.display(), "switching the store to incremental vacuum (one VACUUM)");
        conn.execute_batch("PRAGMA auto_vacuum = INCREMENTAL; VACUUM;")?;
    }
    Ok(())
}

/// A file SQLite cannot read as a database at all is not a store.
fn refuse_unreadable(err: rusqlite::Error, path: &Path) -> StoreError {
    if err.sqlite_error_code() == Some(rusqlite::ErrorCode::NotADatabase) {
        incompatible(
            path,
            "is not a SQLite database (expected a durable store)".into(),
        )
    } else {
        StoreError::from(err)
    }
}

fn incompatible(path: &Path, reason: String) -> StoreError {
    StoreError::IncompatibleSchema {
        path: path.display().to_string(),
        reason,
    }
}

fn inspect(conn: &Connection, path: &Path) -> Result<Found, StoreError> {
    let pragma = |name: &str| -> Result<i32, StoreError> {
        conn.pragma_query_value(None, name, |row| row.get(0))
            .map_err(|err| refuse_unreadable(err, path))
    };
    let application_id = pragma("application_id")?;
    let version = pragma("user_version")?;
    let tables: Vec<String> = {
        let mut stmt = conn.prepare("SELECT name FROM sqlite_schema WHERE type = 'table'")?;
        let rows = stmt.query_map([], |row| row.get(0))?;
        rows.collect::<Result<_, _>>().at("sqlite_schema", "")?
    };
    let expected = format!(
        "expected application id {APPLICATION_ID:#010x} and schema version {SCHEMA_VERSION} or older"
    );
    if application_id == APPLICATION_ID {
        return match version {
            SCHEMA_VERSION => Ok(Found::Current),
            // Version 1 never stamped the id, but a file that has it and version 1 is one.
            1 if tables.iter().any(|t| t == "instances") => Ok(Found::Older(1)),
            2..=9 => Ok(Found::Older(version)),
            v if v > SCHEMA_VERSION => Err(incompatible(
                path,
                format!(
                    "has schema version {v}, written by a newer release ({expected}); \
                     upgrade durable to open it"
                ),
            )),
            v => Err(incompatible(
                path,
                format!("has an unknown schema version {v} ({expected})"),
            )),
        };
    }
    if application_id != 0 {
        return Err(incompatible(
            path,
            format!(
                "belongs to another application (application id {application_id:#010x}; \
                 {expected})"
            ),
        ));
    }
    if tables.is_empty() && version == 0 {
        return Ok(Found::Empty);
    }
    if version == 0 && tables.iter().any(|t| t == "instances") {
        return Ok(Found::Older(1));
    }
    Err(incompatible(
        path,
        format!(
            "is not a durable store (application id 0, user version {version}, tables {tables:?}; \
             {expected})"
        ),
    ))
}

fn stamp(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch(&format!(
        "PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = {SCHEMA_VERSION};"
    ))?;
    Ok(())
}

fn create(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch(SCHEMA_V2)?;
    conn.execute_batch(WORK_TABLES_V2)?;
    migrate_from_v3(conn)
}

/// Version 5 to 6 in one self-contained step; later versions chain after it.
fn migrate_from_v5(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch(MIGRATE_V5_TO_V6)?;
    migrate_from_v6(conn)
}

fn migrate_from_v4(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch(MIGRATE_V4_TO_V5)?;
    migrate_from_v5(conn)
}

fn migrate_from_v3(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch(MIGRATE_V3_TO_V4)?;
    migrate_from_v4(conn)
}

fn migrate_from_v2(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch(MIGRATE_V2_TO_V3)?;
    migrate_from_v3(conn)
}

fn migrate_from_v1(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch(MIGRATE_V1_TO_V2)?;
    conn.execute_batch(WORK_TABLES_V2)?;
    conn.execute_batch(COPY_V1_WORK)?;
    conn.execute_batch("CREATE INDEX IF NOT EXISTS instances_by_created ON instances(created_ms)")?;
    migrate_from_v3(conn)
}
