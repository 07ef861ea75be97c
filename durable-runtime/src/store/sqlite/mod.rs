//! The embedded default store: one SQLite file in WAL mode, fsynced on every commit.
//!
//! All writes go through one writer thread that takes every write waiting in its queue and
//! commits them in one transaction (group commit): one fsync acknowledges many steps, and no
//! two writers ever contend for the file, so a busy database can never fail an instance.
//! Reads use their own connections and never block the writer.
//!
//! The store locks the database file itself for its whole life (the `lock` module), recognises its
//! files by application id and schema version ([`schema`]), and, when dropped, lets the
//! writer commit everything queued before it releases the file.

mod apply;
mod check;
mod children;
mod continue_as_new;
mod entity;
mod error;
mod history_rows;
mod large_values;
mod lock;
mod manage;
mod purge;
mod read;
mod rewind;
pub mod schema;
mod writer;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_migrate_v6;
#[cfg(test)]
mod tests_open;
#[cfg(test)]
mod tests_timers;

use super::{
    ActivityWorkItem, Backend, CurrentRun, DueKey, EntityLogEntry, EntityPage, EntityQuery,
    EntityRecord, EntitySnapshot, Message, PendingPage, StoreError, TimerWorkItem, Watermarks,
    Write, Written,
};
use crate::history::HistoryRecord;
use crate::instance::{InstancePage, InstanceQuery, InstanceStatus};
use async_trait::async_trait;
use lock::FileLock;
use parking_lot::Mutex;
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, mpsc};
use tokio::sync::oneshot;
use writer::{FaultSlot, Job, PendingWrite};

/// Most read connections open at once.
const MAX_READERS: usize = 4;

/// Statements kept prepared per connection (every write kind's statements fit).
const STATEMENT_CACHE: usize = 64;

/// Decides, for each write the writer applies, whether to inject a fault (tests only).
#[doc(hidden)]
pub type FaultHook = Arc<dyn Fn(&Write) -> Option<InjectedFault> + Send + Sync>;

/// A fault the writer injects into one write (tests only).
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InjectedFault {
    /// The write is applied, then fails (and is rolled back to its savepoint).
    FailWrite,
    /// The writer executes `ROLLBACK` mid-batch, as SQLite itself does on a full disk, an I/O
    /// error or no memory, then fails the write.
    RollBackTransaction,
}

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
    /// `None` once dropping: closing it stops the writer after it drains.
    writer: Option<mpsc::Sender<Job>>,
    writer_thread: Option<std::thread::JoinHandle<()>>,
    readers: Mutex<Vec<Reader>>,
    /// Bounds the read connections (each has its own page cache) however many reads queue.
    reader_slots: tokio::sync::Semaphore,
    /// Read connections alive, pooled or in use.
    live_readers: Arc<Live>,
    faults: FaultSlot,
    /// Released last, once every connection is closed.
    lock: Option<FileLock>,
}

/// Counts read connections, so the store can wait for the last one to close.
#[derive(Default)]
struct Live {
    count: std::sync::Mutex<usize>,
    zero: Condvar,
}

impl Live {
    fn enter(self: &Arc<Self>) -> LiveGuard {
        *self.count.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        LiveGuard(self.clone())
    }

    fn wait_for_none(&self) {
        let mut count = self.count.lock().unwrap_or_else(|e| e.into_inner());
        while *count > 0 {
            count = self.zero.wait(count).unwrap_or_else(|e| e.into_inner());
        }
    }
}

struct LiveGuard(Arc<Live>);

impl Drop for LiveGuard {
    fn drop(&mut self) {
        let mut count = self.0.count.lock().unwrap_or_else(|e| e.into_inner());
        *count = count.saturating_sub(1);
        if *count == 0 {
            self.0.zero.notify_all();
        }
    }
}

/// A read connection; the connection closes before the guard counts it gone (field order).
struct Reader {
    conn: Connection,
    _live: LiveGuard,
}

impl SqliteStore {
    /// Opens (creating if needed) the store at `path`, taking an exclusive lock on the database
    /// file itself (whatever symlink or hard link reaches it) so that no second runtime
    /// dispatches the same work. A file written by a newer release, or that is not a durable
    /// store, is refused with [`StoreError::IncompatibleSchema`]; one of an older schema is
    /// migrated.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(path.as_ref(), |_| Ok(()))
    }

    /// Opens the store, running `setup` on the writer's connection before it starts.
    fn open_with(
        path: &Path,
        setup: impl FnOnce(&Connection) -> rusqlite::Result<()>,
    ) -> Result<Self, StoreError> {
        let path = path.to_path_buf();
        let lock = lock::lock(&path)?;
        // Declared after the lock: on an error below it closes before the lock is released.
        let conn = connect(&path)?;
        schema::prepare(&conn, &path)?;
        // WAL + synchronous=FULL: a commit returns only after the log is fsynced.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        setup(&conn)?;
        let ids = apply::NextIds::load(&conn)?;
        let faults = FaultSlot::default();
        let (writer, queue) = mpsc::channel();
        let writer_faults = faults.clone();
        let writer_thread = std::thread::Builder::new()
            .name("durable-sqlite-writer".into())
            .spawn(move || writer::run_writer(conn, ids, queue, writer_faults))
            .map_err(|source| StoreError::Io {
                path: path.display().to_string(),
                source,
            })?;
        Ok(SqliteStore {
            path,
            writer: Some(writer),
            writer_thread: Some(writer_thread),
            readers: Mutex::new(Vec::new()),
            reader_slots: tokio::sync::Semaphore::new(MAX_READERS),
            live_readers: Arc::default(),
            faults,
            lock: Some(lock),
        })
    }

    /// The store file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Installs (or with `None` removes) a hook the writer consults before committing each
    /// write, to inject faults. For fault-injection tests only.
    #[doc(hidden)]
    pub fn inject_faults(&self, hook: Option<FaultHook>) {
        *self.faults.lock() = hook;
    }

    /// Applies `writes` in one group-commit batch (one transaction) and answers each, in order.
    /// For tests of batch behaviour; [`Backend::write`] batches by itself.
    #[doc(hidden)]
    pub async fn write_batch(&self, writes: Vec<Write>) -> Vec<Result<Written, StoreError>> {
        let mut pending = Vec::with_capacity(writes.len());
        let mut answers = Vec::with_capacity(writes.len());
        for write in writes {
            let (reply, answer) = oneshot::channel();
            pending.push(PendingWrite { write, reply });
            answers.push(answer);
        }
        let sent = self
            .writer
            .as_ref()
            .is_some_and(|writer| writer.send(Job::Together(pending)).is_ok());
        let mut results = Vec::with_capacity(answers.len());
        for answer in answers {
            results.push(match sent {
                true => answer.await.unwrap_or(Err(StoreError::Closed)),
                false => Err(StoreError::Closed),
            });
        }
        results
    }

    /// Queues `write` for the writer; the answer arrives once it is durable (or failed).
    fn enqueue(
        &self,
        write: Write,
    ) -> Result<oneshot::Receiver<Result<Written, StoreError>>, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.writer
            .as_ref()
            .ok_or(StoreError::Closed)?
            .send(Job::Write(PendingWrite { write, reply }))
            .map_err(|_| StoreError::Closed)?;
        Ok(answer)
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
        let reader = match pooled {
            Some(reader) => reader,
            None => Reader {
                _live: self.live_readers.enter(),
                conn: connect(&self.path)?,
            },
        };
        let (reader, result) = tokio::task::spawn_blocking(move || {
            let result = f(&reader.conn);
            (reader, result)
        })
        .await
        .map_err(|_| StoreError::Closed)?;
        self.readers.lock().push(reader);
        result
    }
}

impl Drop for SqliteStore {
    /// Stops the writer after it has committed everything queued, closes every connection, and
    /// only then releases the file lock: a runtime that opens the file next finds all of it.
    fn drop(&mut self) {
        drop(self.writer.take());
        if let Some(thread) = self.writer_thread.take()
            && thread.join().is_err()
        {
            tracing::error!(path = %self.path.display(), "the store writer panicked");
        }
        self.readers.lock().clear();
        // A read whose caller gave up may still hold a connection on a blocking thread.
        self.live_readers.wait_for_none();
        drop(self.lock.take());
    }
}

/// Opens a connection to `path` with the settings every connection of the store uses. The
/// file's journal mode is set by the writer, after the file is known to be a store.
fn connect(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|err| match err.sqlite_error_code() {
        Some(rusqlite::ErrorCode::CannotOpen) => StoreError::Io {
            path: path.display().to_string(),
            source: std::io::Error::other(err.to_string()),
        },
        _ => StoreError::from(err),
    })?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

#[async_trait]
impl Backend for SqliteStore {
    async fn write(&self, write: Write) -> Result<Written, StoreError> {
        self.enqueue(write)?.await.map_err(|_| StoreError::Closed)?
    }

    async fn read_instance(&self, instance_id: &str) -> Result<Option<InstanceStatus>, StoreError> {
        let instance_id = instance_id.to_string();
        self.read(move |conn| read::instance(conn, &instance_id))
            .await
    }

    async fn read_history(&self, instance_id: &str) -> Result<Vec<HistoryRecord>, StoreError> {
        let instance_id = instance_id.to_string();
        self.read(move |conn| read::history(conn, &instance_id))
            .await
    }

    async fn list_instances(&self, query: &InstanceQuery) -> Result<InstancePage, StoreError> {
        let query = query.clone();
        self.read(move |conn| read::list(conn, &query)).await
    }

    async fn read_current_run(&self, instance_id: &str) -> Result<Option<CurrentRun>, StoreError> {
        let instance_id = instance_id.to_string();
        self.read(move |conn| read::current_run(conn, &instance_id))
            .await
    }

    async fn work_watermarks(&self) -> Result<Watermarks, StoreError> {
        self.read(read::watermarks).await
    }

    async fn pending_messages(
        &self,
        after_id: i64,
        limit: usize,
    ) -> Result<PendingPage<Message>, StoreError> {
        self.read(move |conn| read::pending_messages(conn, after_id, limit))
            .await
    }

    async fn pending_activities(
        &self,
        after_id: i64,
        limit: usize,
    ) -> Result<PendingPage<ActivityWorkItem>, StoreError> {
        self.read(move |conn| read::pending_activities(conn, after_id, limit))
            .await
    }

    async fn pending_timers(
        &self,
        after: DueKey,
        limit: usize,
    ) -> Result<PendingPage<TimerWorkItem>, StoreError> {
        self.read(move |conn| read::pending_timers(conn, after, limit))
            .await
    }

    async fn load_entity(&self, entity_id: &str) -> Result<EntitySnapshot, StoreError> {
        let entity_id = entity_id.to_string();
        self.read(move |conn| entity::load(conn, &entity_id)).await
    }

    async fn read_entity(&self, entity_id: &str) -> Result<Option<EntityRecord>, StoreError> {
        let entity_id = entity_id.to_string();
        self.read(move |conn| entity::read(conn, &entity_id)).await
    }

    async fn entities_with_pending(
        &self,
        after: &str,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let after = after.to_string();
        self.read(move |conn| entity::with_pending(conn, &after, limit))
            .await
    }

    async fn list_entities(&self, query: &EntityQuery) -> Result<EntityPage, StoreError> {
        let query = query.clone();
        self.read(move |conn| entity::list(conn, &query)).await
    }

    async fn entity_log(&self, entity_id: &str) -> Result<Vec<EntityLogEntry>, StoreError> {
        let entity_id = entity_id.to_string();
        self.read(move |conn| entity::log(conn, &entity_id)).await
    }
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
