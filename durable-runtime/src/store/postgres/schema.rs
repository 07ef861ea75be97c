//! The PostgreSQL store's tables, in a schema of their own, and their versioned migrations.
//!
//! Every table lives in one PostgreSQL schema (`durable` unless configured), so several apps
//! can share a database. The schema's `durable_schema` table holds the version of its tables;
//! opening a store creates the schema at [`SCHEMA_VERSION`] or applies the migrations after
//! its version, in one transaction, under an advisory lock so that workers starting together
//! migrate once. A schema of a newer version, or one holding tables that are not a durable
//! store, is refused with [`StoreError::IncompatibleSchema`] and left alone.
//!
//! Ids (instances, entities) are `COLLATE "C"`: listings page by id and a name prefix is an id
//! range, which needs code-point order whatever the database's locale. Work ids come from
//! sequences: never reused, so a stale step naming a deleted id never hits a newer row.

use super::db::{Db, col};
use crate::store::StoreError;

/// The schema version this release reads and writes.
pub const SCHEMA_VERSION: i32 = 2;

/// The migrations, in order: `MIGRATIONS[n]` takes a schema from version `n` to `n + 1`
/// (version 0 is an empty schema). A release that changes the tables appends one and freezes
/// the ones before it.
pub const MIGRATIONS: &[&str] = &[V1, V2];

/// Version 1: the shape of SQLite schema version 8 (instances with their payloads apart,
/// history, the three work queues, idempotency keys, entities).
const V1: &str = r#"
CREATE TABLE instances (
    instance_id         TEXT COLLATE "C" PRIMARY KEY,
    name                TEXT NOT NULL,
    version             TEXT,
    status              TEXT NOT NULL,
    failure             TEXT,
    created_ms          BIGINT NOT NULL,
    updated_ms          BIGINT NOT NULL,
    history_len         BIGINT NOT NULL DEFAULT 0,
    execution_id        TEXT NOT NULL DEFAULT '',
    parent_instance_id  TEXT COLLATE "C",
    parent_execution_id TEXT,
    parent_task_id      BIGINT,
    custom_status       TEXT
);
CREATE INDEX instances_by_created ON instances(created_ms);
CREATE INDEX instances_by_parent ON instances(parent_instance_id)
    WHERE parent_instance_id IS NOT NULL;
CREATE TABLE instance_inputs (
    instance_id TEXT COLLATE "C" PRIMARY KEY,
    input       TEXT NOT NULL
);
CREATE TABLE instance_outputs (
    instance_id TEXT COLLATE "C" PRIMARY KEY,
    output      TEXT NOT NULL
);
CREATE VIEW instance_rows AS
    SELECT i.instance_id AS instance_id, i.name AS name, i.version AS version,
           i.status AS status, inp.input AS input, outp.output AS output,
           i.failure AS failure, i.created_ms AS created_ms, i.updated_ms AS updated_ms,
           i.custom_status AS custom_status
    FROM instances i
    LEFT JOIN instance_inputs inp ON inp.instance_id = i.instance_id
    LEFT JOIN instance_outputs outp ON outp.instance_id = i.instance_id;
CREATE TABLE history (
    instance_id  TEXT COLLATE "C" NOT NULL,
    seq          BIGINT NOT NULL,
    timestamp_ms BIGINT NOT NULL,
    event        TEXT NOT NULL,
    PRIMARY KEY (instance_id, seq)
);
CREATE TABLE messages (
    id           BIGSERIAL PRIMARY KEY,
    instance_id  TEXT COLLATE "C" NOT NULL,
    event        TEXT NOT NULL,
    execution_id TEXT NOT NULL DEFAULT ''
);
CREATE INDEX messages_by_instance ON messages(instance_id);
CREATE TABLE activities (
    id           BIGSERIAL PRIMARY KEY,
    instance_id  TEXT COLLATE "C" NOT NULL,
    task_id      BIGINT NOT NULL,
    name         TEXT NOT NULL,
    input        TEXT NOT NULL,
    execution_id TEXT NOT NULL DEFAULT ''
);
CREATE INDEX activities_by_instance ON activities(instance_id);
CREATE TABLE timers (
    id           BIGSERIAL PRIMARY KEY,
    instance_id  TEXT COLLATE "C" NOT NULL,
    task_id      BIGINT NOT NULL,
    fire_at_ms   BIGINT NOT NULL,
    execution_id TEXT NOT NULL DEFAULT ''
);
CREATE INDEX timers_by_instance ON timers(instance_id);
CREATE INDEX timers_by_due ON timers(fire_at_ms, id);
CREATE TABLE event_keys (
    instance_id TEXT COLLATE "C" NOT NULL,
    key         TEXT NOT NULL,
    PRIMARY KEY (instance_id, key)
);
CREATE TABLE entities (
    entity_id  TEXT COLLATE "C" PRIMARY KEY,
    name       TEXT NOT NULL,
    state      TEXT,
    version    BIGINT NOT NULL,
    op_count   BIGINT NOT NULL DEFAULT 0,
    locked_by  TEXT COLLATE "C",
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL
);
CREATE INDEX entities_by_lock ON entities(locked_by) WHERE locked_by IS NOT NULL;
CREATE TABLE entity_messages (
    id         BIGSERIAL PRIMARY KEY,
    entity_id  TEXT COLLATE "C" NOT NULL,
    operation  TEXT NOT NULL,
    input      TEXT NOT NULL,
    sender     TEXT COLLATE "C" NOT NULL DEFAULT '',
    reply      TEXT,
    created_ms BIGINT NOT NULL
);
CREATE INDEX entity_messages_by_entity ON entity_messages(entity_id, id);
CREATE INDEX entity_lock_requests ON entity_messages(sender)
    WHERE operation = '__durable.lock';
CREATE TABLE entity_log (
    entity_id    TEXT COLLATE "C" NOT NULL,
    seq          BIGINT NOT NULL,
    operation    TEXT NOT NULL,
    sender       TEXT NOT NULL,
    ok           BOOLEAN NOT NULL,
    error        TEXT,
    timestamp_ms BIGINT NOT NULL,
    PRIMARY KEY (entity_id, seq)
);
"#;

/// How many partitions the instances and entities are divided into for leasing (see
/// `lease`): fixed, so every worker computes the same partition for an id.
pub const PARTITIONS: u16 = 16;

/// Version 2: many runtimes on one schema (the `postgres_shared` mode). Instances and entities
/// fall into [`PARTITIONS`] partitions by the first byte of the MD5 of their id (the same
/// function in SQL and in Rust), leased to one worker at a time (`partitions`: owner, an epoch
/// bumped at each change of owner, expiry). Every work row gets its partition (a generated
/// column, indexed) and the worker that created or adopted it (`origin`, from the session's
/// `durable.worker` setting), so that a holder finds the work other processes created for it.
/// A statement that inserts work for a partition the inserting worker does not hold notifies
/// the channel `durable_<schema>` with the partition, and an instance that finishes notifies
/// `durable_done_<schema>` with its id (a client of another process may be waiting for it).
const V2: &str = r#"
CREATE FUNCTION durable_part(id TEXT) RETURNS SMALLINT
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT (get_byte(decode(md5(id), 'hex'), 0) % 16)::smallint $$;
CREATE TABLE partitions (
    part       SMALLINT PRIMARY KEY,
    owner      TEXT,
    epoch      BIGINT NOT NULL DEFAULT 0,
    expires_at TIMESTAMPTZ NOT NULL DEFAULT '-infinity'
);
INSERT INTO partitions (part) SELECT generate_series(0, 15);
CREATE TABLE workers (
    worker_id  TEXT PRIMARY KEY,
    expires_at TIMESTAMPTZ NOT NULL
);
ALTER TABLE messages
    ADD COLUMN part SMALLINT GENERATED ALWAYS AS (durable_part(instance_id)) STORED,
    ADD COLUMN origin TEXT DEFAULT current_setting('durable.worker', true);
ALTER TABLE activities
    ADD COLUMN part SMALLINT GENERATED ALWAYS AS (durable_part(instance_id)) STORED,
    ADD COLUMN origin TEXT DEFAULT current_setting('durable.worker', true);
ALTER TABLE timers
    ADD COLUMN part SMALLINT GENERATED ALWAYS AS (durable_part(instance_id)) STORED,
    ADD COLUMN origin TEXT DEFAULT current_setting('durable.worker', true);
ALTER TABLE entity_messages
    ADD COLUMN part SMALLINT GENERATED ALWAYS AS (durable_part(entity_id)) STORED,
    ADD COLUMN origin TEXT DEFAULT current_setting('durable.worker', true);
CREATE INDEX messages_by_part ON messages(part, origin);
CREATE INDEX activities_by_part ON activities(part, origin);
CREATE INDEX timers_by_part ON timers(part, origin);
CREATE INDEX entity_messages_by_part ON entity_messages(part, origin);
CREATE FUNCTION durable_notify_work() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    me TEXT := coalesce(current_setting('durable.worker', true), '');
    p SMALLINT;
BEGIN
    -- A runtime that owns the schema alone (no worker id) has no one to tell.
    IF me = '' THEN
        RETURN NULL;
    END IF;
    FOR p IN SELECT DISTINCT n.part FROM new_rows n
        WHERE NOT EXISTS (SELECT 1 FROM partitions q WHERE q.part = n.part AND q.owner = me)
    LOOP
        PERFORM pg_notify('durable_' || TG_TABLE_SCHEMA, p::text);
    END LOOP;
    RETURN NULL;
END $$;
CREATE TRIGGER messages_notify AFTER INSERT ON messages
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION durable_notify_work();
CREATE TRIGGER activities_notify AFTER INSERT ON activities
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION durable_notify_work();
CREATE TRIGGER timers_notify AFTER INSERT ON timers
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION durable_notify_work();
CREATE TRIGGER entity_messages_notify AFTER INSERT ON entity_messages
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION durable_notify_work();
CREATE FUNCTION durable_notify_finished() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(current_setting('durable.worker', true), '') <> '' THEN
        PERFORM pg_notify('durable_done_' || TG_TABLE_SCHEMA, NEW.instance_id);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER instances_notify_finished AFTER UPDATE OF status ON instances
    FOR EACH ROW
    WHEN (NEW.status IN ('Completed', 'Failed', 'Terminated')
          AND OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION durable_notify_finished();
"#;

/// Whether `name` may name a schema: it is spliced into SQL (quoted), so only a plain
/// lower-case identifier is accepted.
pub(crate) fn valid_schema_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && name.len() <= 63
}

/// Makes sure `schema` holds a durable store of [`SCHEMA_VERSION`] (the connection's
/// `search_path` is `schema`): creates it, migrates an older one, or refuses anything else.
pub(crate) async fn prepare(
    client: &deadpool_postgres::ClientWrapper,
    schema: &str,
) -> Result<(), StoreError> {
    let db = Db(client);
    db.batch("BEGIN").await?;
    let result = migrate(&db, schema).await;
    let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
    db.batch(end).await?;
    result
}

/// [`prepare`] inside its transaction.
async fn migrate(db: &Db<'_>, schema: &str) -> Result<(), StoreError> {
    // Workers starting together: one migrates, the others wait and find it done.
    db.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
        &[&format!("durable-migrate:{schema}")],
    )
    .await?;
    db.batch(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
        .await?;
    let version = found_version(db, schema).await?;
    if version > SCHEMA_VERSION {
        return Err(incompatible(
            schema,
            format!(
                "has schema version {version}, written by a newer release (this one reads \
                 version {SCHEMA_VERSION} or older); upgrade durable to open it"
            ),
        ));
    }
    if version < SCHEMA_VERSION {
        tracing::info!(
            schema,
            from = version,
            to = SCHEMA_VERSION,
            "migrating the store"
        );
        if version == 0 {
            db.batch("CREATE TABLE durable_schema (version INTEGER NOT NULL)")
                .await?;
            db.execute("INSERT INTO durable_schema (version) VALUES (0)", &[])
                .await?;
        }
        for migration in &MIGRATIONS[usize::try_from(version).unwrap_or(0)..] {
            db.batch(migration).await?;
        }
        db.execute("UPDATE durable_schema SET version = $1", &[&SCHEMA_VERSION])
            .await?;
    }
    Ok(())
}

/// The version of the store in `schema`: 0 for an empty schema.
async fn found_version(db: &Db<'_>, schema: &str) -> Result<i32, StoreError> {
    let tables: Vec<String> = db
        .query(
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1",
            &[&schema],
        )
        .await?
        .iter()
        .map(|row| col(row, 0, "information_schema.tables", schema))
        .collect::<Result<_, _>>()?;
    if !tables.iter().any(|table| table == "durable_schema") {
        if tables.is_empty() {
            return Ok(0);
        }
        return Err(incompatible(
            schema,
            format!(
                "is not a durable store (it holds the tables {tables:?} and no durable_schema)"
            ),
        ));
    }
    let row = db
        .query_opt("SELECT version FROM durable_schema", &[])
        .await?
        .ok_or_else(|| incompatible(schema, "has an empty durable_schema table".into()))?;
    col(&row, 0, "durable_schema", "version")
}

fn incompatible(schema: &str, reason: String) -> StoreError {
    StoreError::IncompatibleSchema {
        path: format!("PostgreSQL schema '{schema}'"),
        reason,
    }
}
