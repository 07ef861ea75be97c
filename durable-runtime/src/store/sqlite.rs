//! The embedded default store: one SQLite file in WAL mode, fsynced on every commit.
//!
//! All writes go through one writer thread that takes every write waiting in its queue and
//! commits them in one transaction (group commit): one fsync acknowledges many steps, and no
//! two writers ever contend for the file, so a busy database can never fail an instance.
//! Reads use their own connections and never block the writer.

use super::{
    ActivityWorkItem, Backend, Message, NewInstance, PendingPage, StepCommit, StepWork, StoreError,
    TimerWorkItem, Write, Written,
};
use crate::failure::FailureDetails;
use crate::history::{HistoryEvent, HistoryRecord};
use crate::instance::{InstancePage, InstanceQuery, InstanceStatus, RuntimeStatus};
use crate::payload::Payload;
use async_trait::async_trait;
use parking_lot::Mutex;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use tokio::sync::oneshot;

/// Most read connections open at once.
const MAX_READERS: usize = 4;

/// Most writes committed in one transaction; bounds the latency a large batch adds.
const MAX_BATCH: usize = 4096;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS instances (
    instance_id TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    version     TEXT,
    status      TEXT NOT NULL,
    input       TEXT NOT NULL,
    output      TEXT,
    failure     TEXT,
    created_ms  INTEGER NOT NULL,
    updated_ms  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS history (
    instance_id  TEXT NOT NULL,
    seq          INTEGER NOT NULL,
    timestamp_ms INTEGER NOT NULL,
    event        TEXT NOT NULL,
    PRIMARY KEY (instance_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS messages (
    id          INTEGER PRIMARY KEY,
    instance_id TEXT NOT NULL,
    event       TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS activities (
    id          INTEGER PRIMARY KEY,
    instance_id TEXT NOT NULL,
    task_id     INTEGER NOT NULL,
    name        TEXT NOT NULL,
    input       TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS timers (
    id          INTEGER PRIMARY KEY,
    instance_id TEXT NOT NULL,
    task_id     INTEGER NOT NULL,
    fire_at_ms  INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS instances_by_created ON instances(created_ms);
";

/// The embedded store. Cheap to share behind an `Arc`.
///
/// ```no_run
/// # async fn demo() -> Result<(), durable_runtime::store::StoreError> {
/// use durable_runtime::store::sqlite::SqliteStore;
/// let store = SqliteStore::open("durable.db")?;
/// # let _ = store; Ok(()) }
/// ```
pub struct SqliteStore {
    path: PathBuf,
    writer: mpsc::Sender<PendingWrite>,
    readers: Mutex<Vec<Connection>>,
    /// Bounds the read connections (each has its own page cache) however many reads queue.
    reader_slots: tokio::sync::Semaphore,
    // Held for the store's lifetime: the OS releases it when the process dies, even by kill -9.
    _lock: File,
}

struct PendingWrite {
    write: Write,
    reply: oneshot::Sender<Result<Written, StoreError>>,
}

impl SqliteStore {
    /// Opens (creating if needed) the store at `path`, taking an exclusive lock on `path.lock`
    /// so that no second process dispatches the same work.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let lock = take_lock(&path)?;
        let conn = open_connection(&path)?;
        conn.execute_batch(SCHEMA)?;
        let (writer, queue) = mpsc::channel();
        std::thread::Builder::new()
            .name("durable-sqlite-writer".into())
            .spawn(move || run_writer(conn, queue))
            .map_err(|source| StoreError::Io {
                path: path.display().to_string(),
                source,
            })?;
        Ok(SqliteStore {
            path,
            writer,
            readers: Mutex::new(Vec::new()),
            reader_slots: tokio::sync::Semaphore::new(MAX_READERS),
            _lock: lock,
        })
    }

    /// The store file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on a pooled read connection, off the async threads.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let _slot = self
            .reader_slots
            .acquire()
            .await
            .map_err(|_| StoreError::Closed)?;
        let pooled = self.readers.lock().pop();
        let conn = match pooled {
            Some(conn) => conn,
            None => open_connection(&self.path)?,
        };
        let (conn, result) = tokio::task::spawn_blocking(move || {
            let result = f(&conn);
            (conn, result)
        })
        .await
        .map_err(|_| StoreError::Closed)?;
        self.readers.lock().push(conn);
        result
    }
}

fn take_lock(path: &Path) -> Result<File, StoreError> {
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let lock_path = PathBuf::from(lock_path);
    let io_err = |source| StoreError::Io {
        path: lock_path.display().to_string(),
        source,
    };
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io_err)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Locked {
            path: path.display().to_string(),
        }),
        Err(std::fs::TryLockError::Error(source)) => Err(io_err(source)),
    }
}

fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    // WAL + synchronous=FULL: a commit returns only after the log is fsynced.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    Ok(conn)
}

/// The writer thread: commit whatever is queued, together, until every sender is gone.
fn run_writer(mut conn: Connection, queue: mpsc::Receiver<PendingWrite>) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let results = commit_batch(&mut conn, &batch);
        for (pending, result) in batch.into_iter().zip(results) {
            // A caller that stopped waiting is not an error: the write is durable regardless.
            let _ = pending.reply.send(result);
        }
    }
}

/// Applies every write in one transaction. A write that fails on its own (a duplicate
/// instance id) is rolled back to its savepoint without disturbing the others; if the commit
/// itself fails, every write in the batch fails.
fn commit_batch(conn: &mut Connection, batch: &[PendingWrite]) -> Vec<Result<Written, StoreError>> {
    let tx = match conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(err) => return batch.iter().map(|_| Err(clone_error(&err))).collect(),
    };
    let mut results = Vec::with_capacity(batch.len());
    for pending in batch {
        let result = (|| {
            tx.execute_batch("SAVEPOINT w")?;
            match apply_write(&tx, &pending.write) {
                Ok(written) => {
                    tx.execute_batch("RELEASE w")?;
                    Ok(written)
                }
                Err(err) => {
                    tx.execute_batch("ROLLBACK TO w; RELEASE w")?;
                    Err(err)
                }
            }
        })();
        results.push(result);
    }
    match tx.commit() {
        Ok(()) => results,
        Err(err) => {
            tracing::error!(error = %err, "store commit failed; the batch is not durable");
            batch.iter().map(|_| Err(clone_error(&err))).collect()
        }
    }
}

fn clone_error(err: &rusqlite::Error) -> StoreError {
    StoreError::Unavailable(err.to_string())
}

impl From<rusqlite::Error> for StoreError {
    fn from(err: rusqlite::Error) -> Self {
        StoreError::Unavailable(err.to_string())
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|err| StoreError::Corrupt {
        table: "write",
        key: String::new(),
        reason: format!("does not serialize: {err}"),
    })
}

fn insert_message(
    tx: &rusqlite::Transaction<'_>,
    instance_id: &str,
    event: &HistoryEvent,
) -> Result<Message, StoreError> {
    tx.prepare_cached("INSERT INTO messages (instance_id, event) VALUES (?1, ?2)")?
        .execute(params![instance_id, to_json(event)?])?;
    Ok(Message {
        id: tx.last_insert_rowid(),
        instance_id: instance_id.to_string(),
        event: event.clone(),
    })
}

fn apply_write(tx: &rusqlite::Transaction<'_>, write: &Write) -> Result<Written, StoreError> {
    match write {
        Write::CreateInstance(new) => create_instance(tx, new),
        Write::Step(step) => apply_step(tx, step),
        Write::FailInstance {
            instance_id,
            failure,
            timestamp_ms,
        } => {
            tx.prepare_cached(
                "UPDATE instances SET status = ?2, failure = ?3, updated_ms = ?4 WHERE instance_id = ?1",
            )?
            .execute(params![
                instance_id,
                RuntimeStatus::Failed.as_str(),
                to_json(failure)?,
                timestamp_ms
            ])?;
            Ok(Written::Delivered(None))
        }
        Write::CompleteActivity {
            work_item_id,
            instance_id,
            event,
        } => {
            let deleted = tx
                .prepare_cached("DELETE FROM activities WHERE id = ?1")?
                .execute(params![work_item_id])?;
            if deleted == 0 {
                return Ok(Written::Delivered(None));
            }
            Ok(Written::Delivered(Some(insert_message(
                tx,
                instance_id,
                event,
            )?)))
        }
        Write::RaiseEvent {
            instance_id,
            name,
            input,
            ..
        } => {
            let status: Option<String> = tx
                .prepare_cached("SELECT status FROM instances WHERE instance_id = ?1")?
                .query_row(params![instance_id], |row| row.get(0))
                .optional()?;
            let Some(status) = status else {
                return Err(StoreError::InstanceNotFound(instance_id.clone()));
            };
            let status: RuntimeStatus = status
                .parse()
                .map_err(|err| corrupt("instances", instance_id.clone(), err))?;
            if status.is_terminal() {
                return Err(StoreError::InstanceFinished {
                    instance_id: instance_id.clone(),
                    status,
                });
            }
            let event = HistoryEvent::EventRaised {
                name: name.clone(),
                input: input.clone(),
            };
            Ok(Written::Delivered(Some(insert_message(
                tx,
                instance_id,
                &event,
            )?)))
        }
        Write::FireTimer {
            timer_id,
            instance_id,
            task_id,
        } => {
            let deleted = tx
                .prepare_cached("DELETE FROM timers WHERE id = ?1")?
                .execute(params![timer_id])?;
            if deleted == 0 {
                return Ok(Written::Delivered(None));
            }
            let fired = HistoryEvent::TimerFired { task_id: *task_id };
            Ok(Written::Delivered(Some(insert_message(
                tx,
                instance_id,
                &fired,
            )?)))
        }
    }
}

fn create_instance(
    tx: &rusqlite::Transaction<'_>,
    new: &NewInstance,
) -> Result<Written, StoreError> {
    let inserted = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO instances
             (instance_id, name, version, status, input, created_ms, updated_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
        )?
        .execute(params![
            new.instance_id,
            new.name,
            new.version,
            RuntimeStatus::Pending.as_str(),
            new.input.as_str(),
            new.created_ms
        ])?;
    if inserted == 0 {
        return Err(StoreError::InstanceExists(new.instance_id.clone()));
    }
    let started = HistoryEvent::ExecutionStarted {
        name: new.name.clone(),
        version: new.version.clone(),
        input: new.input.clone(),
    };
    Ok(Written::Instance(insert_message(
        tx,
        &new.instance_id,
        &started,
    )?))
}

fn apply_step(tx: &rusqlite::Transaction<'_>, step: &StepCommit) -> Result<Written, StoreError> {
    {
        let mut append = tx.prepare_cached(
            "INSERT INTO history (instance_id, seq, timestamp_ms, event) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for (offset, event) in step.events.iter().enumerate() {
            append.execute(params![
                step.instance_id,
                step.first_seq + offset as u64,
                step.timestamp_ms,
                to_json(event)?
            ])?;
        }
    }
    {
        let mut consume = tx.prepare_cached("DELETE FROM messages WHERE id = ?1")?;
        for id in &step.consumed {
            consume.execute(params![id])?;
        }
        let mut complete = tx.prepare_cached("DELETE FROM activities WHERE id = ?1")?;
        let mut gone = Vec::new();
        for id in &step.completed_activities {
            if complete.execute(params![id])? == 0 {
                gone.push(*id);
            }
        }
        if !gone.is_empty() {
            return Err(StoreError::AlreadyRecorded(gone));
        }
    }
    let mut activities = Vec::with_capacity(step.activities.len());
    {
        let mut enqueue = tx.prepare_cached(
            "INSERT INTO activities (instance_id, task_id, name, input) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for (task_id, name, input) in &step.activities {
            enqueue.execute(params![step.instance_id, task_id, name, input.as_str()])?;
            activities.push(ActivityWorkItem {
                id: tx.last_insert_rowid(),
                instance_id: step.instance_id.clone(),
                task_id: *task_id,
                name: name.clone(),
                input: input.clone(),
            });
        }
    }
    let mut timers = Vec::with_capacity(step.timers.len());
    {
        let mut arm = tx.prepare_cached(
            "INSERT INTO timers (instance_id, task_id, fire_at_ms) VALUES (?1, ?2, ?3)",
        )?;
        for (task_id, fire_at_ms) in &step.timers {
            arm.execute(params![step.instance_id, task_id, fire_at_ms])?;
            timers.push(TimerWorkItem {
                id: tx.last_insert_rowid(),
                instance_id: step.instance_id.clone(),
                task_id: *task_id,
                fire_at_ms: *fire_at_ms,
            });
        }
    }
    if let Some(status) = step.status {
        let failure = step.failure.as_ref().map(to_json).transpose()?;
        tx.prepare_cached(
            "UPDATE instances SET status = ?2, output = ?3, failure = ?4, updated_ms = ?5
             WHERE instance_id = ?1",
        )?
        .execute(params![
            step.instance_id,
            status.as_str(),
            step.output.as_ref().map(Payload::as_str),
            failure,
            step.timestamp_ms
        ])?;
    }
    Ok(Written::Step(StepWork { activities, timers }))
}

fn corrupt(table: &'static str, key: impl Into<String>, reason: impl ToString) -> StoreError {
    StoreError::Corrupt {
        table,
        key: key.into(),
        reason: reason.to_string(),
    }
}

fn parse_event(
    table: &'static str,
    key: impl Into<String>,
    json: &str,
) -> Result<HistoryEvent, StoreError> {
    serde_json::from_str(json)
        .map_err(|err| corrupt(table, key, format!("event does not decode: {err}")))
}

fn parse_payload(table: &'static str, key: &str, json: String) -> Result<Payload, StoreError> {
    Payload::from_json(json)
        .map_err(|err| corrupt(table, key, format!("payload is not JSON: {err}")))
}

const INSTANCE_COLUMNS: &str =
    "instance_id, name, version, status, input, output, failure, created_ms, updated_ms";

fn instance_from_row(row: &rusqlite::Row<'_>) -> Result<InstanceStatus, StoreError> {
    let instance_id: String = row.get(0)?;
    let status: String = row.get(3)?;
    let runtime_status: RuntimeStatus = status
        .parse()
        .map_err(|err| corrupt("instances", instance_id.clone(), err))?;
    let output = row
        .get::<_, Option<String>>(5)?
        .map(|json| parse_payload("instances", &instance_id, json))
        .transpose()?;
    let failure = row
        .get::<_, Option<String>>(6)?
        .map(|json| {
            serde_json::from_str::<FailureDetails>(&json)
                .map_err(|err| corrupt("instances", instance_id.clone(), err))
        })
        .transpose()?;
    Ok(InstanceStatus {
        name: row.get(1)?,
        version: row.get(2)?,
        runtime_status,
        input: parse_payload("instances", &instance_id, row.get(4)?)?,
        output,
        failure,
        created_ms: row.get(7)?,
        last_updated_ms: row.get(8)?,
        history: None,
        instance_id,
    })
}

#[async_trait]
impl Backend for SqliteStore {
    async fn write(&self, write: Write) -> Result<Written, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.writer
            .send(PendingWrite { write, reply })
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    async fn read_instance(&self, instance_id: &str) -> Result<Option<InstanceStatus>, StoreError> {
        let instance_id = instance_id.to_string();
        self.read(move |conn| {
            let sql = format!("SELECT {INSTANCE_COLUMNS} FROM instances WHERE instance_id = ?1");
            let mut stmt = conn.prepare_cached(&sql)?;
            let mut rows = stmt.query(params![instance_id])?;
            match rows.next()? {
                Some(row) => instance_from_row(row).map(Some),
                None => Ok(None),
            }
        })
        .await
    }

    async fn read_history(&self, instance_id: &str) -> Result<Vec<HistoryRecord>, StoreError> {
        let instance_id = instance_id.to_string();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT seq, timestamp_ms, event FROM history WHERE instance_id = ?1 ORDER BY seq",
            )?;
            let mut rows = stmt.query(params![instance_id])?;
            let mut history = Vec::new();
            while let Some(row) = rows.next()? {
                let seq: i64 = row.get(0)?;
                let json: String = row.get(2)?;
                history.push(HistoryRecord {
                    seq: seq as u64,
                    timestamp_ms: row.get(1)?,
                    event: parse_event("history", format!("{instance_id}#{seq}"), &json)?,
                });
            }
            Ok(history)
        })
        .await
    }

    async fn list_instances(&self, query: &InstanceQuery) -> Result<InstancePage, StoreError> {
        let query = query.clone();
        self.read(move |conn| list(conn, &query)).await
    }

    async fn read_runtime_status(
        &self,
        instance_id: &str,
    ) -> Result<Option<RuntimeStatus>, StoreError> {
        Ok(self
            .read_instance(instance_id)
            .await?
            .map(|i| i.runtime_status))
    }

    async fn pending_messages(
        &self,
        after_id: i64,
        limit: usize,
    ) -> Result<PendingPage<Message>, StoreError> {
        self.read(move |conn| {
            let mut page = PendingPage {
                items: Vec::new(),
                corrupt: Vec::new(),
                last_id: None,
            };
            let mut stmt = conn.prepare(
                "SELECT id, instance_id, event FROM messages WHERE id > ?1 ORDER BY id LIMIT ?2",
            )?;
            let mut rows = stmt.query(params![after_id, limit as i64])?;
            while let Some(row) = rows.next()? {
                let id: i64 = row.get(0)?;
                let json: String = row.get(2)?;
                page.last_id = Some(id);
                page.items.push(Message {
                    id,
                    instance_id: row.get(1)?,
                    event: parse_event("messages", id.to_string(), &json)?,
                });
            }
            Ok(page)
        })
        .await
    }

    async fn pending_activities(
        &self,
        after_id: i64,
        limit: usize,
    ) -> Result<PendingPage<ActivityWorkItem>, StoreError> {
        self.read(move |conn| {
            let mut page = PendingPage { items: Vec::new(), corrupt: Vec::new(), last_id: None };
            let mut stmt = conn.prepare(
                "SELECT id, instance_id, task_id, name, input FROM activities WHERE id > ?1 ORDER BY id LIMIT ?2",
            )?;
            let mut rows = stmt.query(params![after_id, limit as i64])?;
            while let Some(row) = rows.next()? {
                let id: i64 = row.get(0)?;
                let task_id: i64 = row.get(2)?;
                page.last_id = Some(id);
                page.items.push(ActivityWorkItem {
                    id,
                    instance_id: row.get(1)?,
                    task_id: task_id as u64,
                    name: row.get(3)?,
                    input: parse_payload("activities", &id.to_string(), row.get(4)?)?,
                });
            }
            Ok(page)
        })
        .await
    }

    async fn pending_timers(
        &self,
        after_id: i64,
        limit: usize,
    ) -> Result<PendingPage<TimerWorkItem>, StoreError> {
        self.read(move |conn| {
            let mut page = PendingPage { items: Vec::new(), corrupt: Vec::new(), last_id: None };
            let mut stmt = conn.prepare(
                "SELECT id, instance_id, task_id, fire_at_ms FROM timers WHERE id > ?1 ORDER BY id LIMIT ?2",
            )?;
            let mut rows = stmt.query(params![after_id, limit as i64])?;
            while let Some(row) = rows.next()? {
                let id: i64 = row.get(0)?;
                let task_id: i64 = row.get(2)?;
                page.last_id = Some(id);
                page.items.push(TimerWorkItem {
                    id,
                    instance_id: row.get(1)?,
                    task_id: task_id as u64,
                    fire_at_ms: row.get(3)?,
                });
            }
            Ok(page)
        })
        .await
    }
}

fn list(conn: &Connection, query: &InstanceQuery) -> Result<InstancePage, StoreError> {
    let mut sql = format!("SELECT {INSTANCE_COLUMNS} FROM instances WHERE 1=1");
    let mut args: Vec<rusqlite::types::Value> = Vec::new();
    if !query.statuses.is_empty() {
        let marks = vec!["?"; query.statuses.len()].join(",");
        sql.push_str(&format!(" AND status IN ({marks})"));
        args.extend(query.statuses.iter().map(|s| s.as_str().to_string().into()));
    }
    if let Some(from) = query.created_from_ms {
        sql.push_str(" AND created_ms >= ?");
        args.push(from.into());
    }
    if let Some(to) = query.created_to_ms {
        sql.push_str(" AND created_ms < ?");
        args.push(to.into());
    }
    if let Some(prefix) = &query.instance_id_prefix {
        // Range on the primary key instead of LIKE, so `%` and `_` in ids are literal.
        sql.push_str(" AND instance_id >= ? AND instance_id < ?");
        args.push(prefix.clone().into());
        args.push(format!("{prefix}\u{10FFFF}").into());
    }
    if let Some(name) = &query.name {
        sql.push_str(" AND name = ?");
        args.push(name.clone().into());
    }
    if let Some(after) = &query.continuation_token {
        sql.push_str(" AND instance_id > ?");
        args.push(after.clone().into());
    }
    let page_size = query.page_size.max(1);
    sql.push_str(&format!(
        " ORDER BY instance_id LIMIT {}",
        u64::from(page_size) + 1
    ));
    let mut stmt = conn.prepare(&sql)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(args))?;
    let mut instances = Vec::new();
    while let Some(row) = rows.next()? {
        instances.push(instance_from_row(row)?);
    }
    let continuation_token = if instances.len() > page_size as usize {
        instances.truncate(page_size as usize);
        instances.last().map(|i| i.instance_id.clone())
    } else {
        None
    };
    Ok(InstancePage {
        instances,
        continuation_token,
    })
}

/// Opens an existing store for reading only, without the process lock: for inspection tools
/// and tests while no runtime (or a dead one) holds the file.
pub fn open_read_only(path: impl AsRef<Path>) -> Result<Connection, StoreError> {
    Ok(Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY,
    )?)
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(instance_id: &str, completed_activities: Vec<i64>) -> StepCommit {
        StepCommit {
            instance_id: instance_id.to_string(),
            first_seq: 0,
            timestamp_ms: 1,
            events: vec![HistoryEvent::OrchestratorStarted],
            consumed: Vec::new(),
            completed_activities,
            activities: Vec::new(),
            timers: Vec::new(),
            status: Some(RuntimeStatus::Running),
            output: None,
            failure: None,
        }
    }

    #[tokio::test]
    async fn a_step_recording_a_result_twice_is_refused_whole() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::open(dir.path().join("s.db")).expect("opens");
        let new = NewInstance {
            instance_id: "i".into(),
            name: "o".into(),
            version: None,
            input: Payload::null(),
            created_ms: 0,
        };
        store
            .write(Write::CreateInstance(new))
            .await
            .expect("created");
        let err = store
            .write(Write::Step(step("i", vec![404])))
            .await
            .expect_err("no such work item");
        assert!(
            matches!(err, StoreError::AlreadyRecorded(ref ids) if ids == &[404]),
            "{err}"
        );
        // Nothing of the refused step was applied: the same step applies cleanly without it.
        assert!(store.read_history("i").await.expect("reads").is_empty());
        store
            .write(Write::Step(step("i", vec![])))
            .await
            .expect("applies");
        assert_eq!(store.read_history("i").await.expect("reads").len(), 1);
    }

    #[test]
    fn a_second_store_on_the_same_file_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("s.db");
        let _first = SqliteStore::open(&path).expect("opens");
        assert!(matches!(
            SqliteStore::open(&path),
            Err(StoreError::Locked { .. })
        ));
    }
}
